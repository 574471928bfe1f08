# Sourced by tests/cli/dsk-train-*.sh that start ranks with mpirun and signal one of them.
#   rank_pid PID RANK      the pid of rank RANK among the descendants of PID (timeout -> mpirun ->
#                          ranks, or the ranks of --nproc-per-node)
#   checkpoint_is_whole D  fails unless checkpoint directory D has every file, the optimizer state
#                          whole: dsk/optimizer.bin.zst or the manifest and every rank's part
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

rank_pid() {
  local child
  for child in $(pgrep -P "$1"); do
    if grep -qzE "^(OMPI_COMM_WORLD_RANK|RANK)=$2\$" "/proc/$child/environ" 2>/dev/null; then echo "$child"; return; fi
    rank_pid "$child" "$2"
  done
}

checkpoint_is_whole() {
  local checkpoint=$1 file part
  for file in config.json model.safetensors dsk/state.yaml; do
    [ -s "$checkpoint/$file" ] || fail "$checkpoint has no $file"
  done
  if [ -f "$checkpoint/dsk/optimizer.yaml" ]; then
    for part in $(sed -n 's/^ *- file: //p' "$checkpoint/dsk/optimizer.yaml"); do
      zstd -tq "$checkpoint/dsk/$part" || fail "$checkpoint's optimizer part $part is missing or truncated"
    done
  else
    zstd -tq "$checkpoint/dsk/optimizer.bin.zst" || fail "$checkpoint's optimizer state is missing or truncated"
  fi
}
