#!/usr/bin/env bash
# Asynchronous checkpoints survive kill -9 at any moment: a run killed at random moments (while
# training, while a checkpoint is being written in the background) and rerun each time leaves only
# whole checkpoints behind, and the run finished that way is bit-identical to one never killed (the
# same losses at every step and the same final optimizer state). Twice: one rank, and 2 ZeRO-1
# ranks under mpirun (each writes its part of the optimizer state; a random rank is killed, and
# mpirun stops the other), where a checkpoint missing a rank's part must never count as whole.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
source "$(dirname "$0")/lib/mpi-ranks.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMP_NUM_THREADS=2  # the same reductions in every run
make_shards
write_config base.yaml llama
# Slow enough steps (8 micro-batches of 4 x 64 tokens) and a checkpoint every 2 steps, so that kills
# land in the middle of steps and of background writes alike.
sed -i 's/^  grad_accum: 2$/  grad_accum: 8/; s/^  seq_len: 32$/  seq_len: 64/; s/^  every: 5$/  every: 2/; s/^steps: 40$/steps: 24/' base.yaml
grep -q "grad_accum: 8" base.yaml && grep -q "^  every: 2" base.yaml && grep -q "^steps: 24" base.yaml ||
  fail "config fixture changed"
dsk-train -c base.yaml --print-config | grep -q "^  async: true" || fail "checkpoints are not asynchronous by default"

losses() { metric_lines "$1" loss grad_norm lr; }
# The final checkpoint's optimizer state: one file, or every rank's part.
optimizer_files() { cat "$1"/dsk/optimizer*.zst; }

seed=${DSK_TEST_SEED:-$RANDOM}
echo "kill moments from seed $seed (DSK_TEST_SEED=$seed reproduces them)"
RANDOM=$seed
logged() { [ -f run/metrics.jsonl ] && wc -l <run/metrics.jsonl || echo 0; }

# kill_rounds NAME COMMAND...: a straight run, then runs killed at random moments, then the rest.
kill_rounds() {
  local name=$1 kills=0 round target pid victim
  shift
  "$@" >straight.yaml
  losses run/metrics.jsonl >straight.losses
  optimizer_files run/checkpoints/step-000024 >straight.opt
  mv run "straight-$name"
  for round in $(seq 8); do
    # Kill after 1 to 4 more logged steps, then 0 to 29 ms more: a moment inside some step or some
    # background write, however fast the machine (a fixed delay let fast machines finish first).
    target=$(( $(logged) + 1 + RANDOM % 4 ))
    [ "$target" -lt 24 ] || break
    "$@" >/dev/null 2>round.err &
    pid=$!
    # The rank to kill is looked up while the run starts, not at the moment: the lookup walks
    # /proc and takes longer than a step (0.4 s against 30 ms on a loaded 2-core machine), which
    # let runs finish before the kill landed. mpirun stops the other rank.
    victim=$pid rank=$((RANDOM % 2))
    [ "$name" = "1 rank" ] || victim=
    for _ in $(seq 3000); do
      [ -n "$victim" ] || victim=$(rank_pid "$pid" "$rank")
      [ -n "$victim" ] && [ "$(logged)" -ge "$target" ] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.01
    done
    sleep "0.0$((RANDOM % 3))$((RANDOM % 10))"
    if [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null || true
    # Whatever is listed as a checkpoint is whole.
    for checkpoint in run/checkpoints/step-*; do
      [ -d "$checkpoint" ] || continue
      case $checkpoint in *.tmp-*|*.old-*) continue ;; esac
      checkpoint_is_whole "$checkpoint" || fail "$name, round $round: $checkpoint is not whole"
    done
  done
  [ "$kills" -ge 4 ] || fail "$name: only $kills runs were still going when killed: the test proves little"

  "$@" >final.yaml 2>final.err || fail "$name: the last rerun failed: $(cat final.err)"
  [ "$(field step final.yaml)" = 24 ] || fail "$name: final record: $(cat final.yaml)"
  losses run/metrics.jsonl >final.losses
  cmp straight.losses final.losses ||
    fail "$name: a run killed $kills times differs from one never killed: $(diff straight.losses final.losses | head -5)"
  cmp straight.opt <(optimizer_files run/checkpoints/step-000024) || fail "$name: final optimizer state differs"
  mv run "killed-$name"
  echo "dsk-train kill -9, $name: ok ($kills kills)"
}

kill_rounds "1 rank" dsk-train -q -c base.yaml
if command -v mpirun >/dev/null; then
  export OMP_NUM_THREADS=1
  kill_rounds "2 ranks" timeout 300 mpirun --oversubscribe -np 2 --mca btl self,vader \
    dsk-train -q -c base.yaml --set dist.zero=1
  [ -f "killed-2 ranks/checkpoints/step-000024/dsk/optimizer.yaml" ] || fail "2 ranks: no optimizer parts were written"
else
  echo "no mpirun (OpenMPI): the 2-rank part is skipped"
fi
