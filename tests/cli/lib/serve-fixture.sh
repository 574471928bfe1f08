# Shared by tests/cli/dsk-serve-*.sh: a tiny llama checkpoint trained on the KJV fixture (40 steps,
# a few seconds on one core) and dsk-serve started on a free loopback port.
#   start_serve_test                  a work directory (removed on exit) with the checkpoint
#   make_checkpoint                   ./run/checkpoints/step-000040 (CHECKPOINT)
#   start_server LOG ARGS...          dsk-serve ARGS --port 0 in the background; sets SERVER_PID,
#                                     BASE (http://127.0.0.1:PORT); returns once /ready answers 200
#   stop_server [SIGNAL]              sends SIGNAL (TERM) and sets SERVER_STATUS to the exit code
#   greedy CHECKPOINT PROMPT N        dsk-train sample's greedy continuation of PROMPT (without it)
# The engines run on DSK_SERVE_DEVICE (cpu; scripts/device/serve-http-gpu.sh sets cuda) in
# DSK_SERVE_PRECISION (fp32), and dsk-train sample, the reference, on the same.
source "$(dirname "${BASH_SOURCE[0]}")/train-fixture.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
DEVICE=${DSK_SERVE_DEVICE:-cpu}
PRECISION=${DSK_SERVE_PRECISION:-fp32}
device_flags=(--device "$DEVICE" --set "engine.precision=$PRECISION")

greedy() {
  local output
  output=$(dsk-train sample "$1" --prompt "$2" -n "$3" --temperature 0 --device "$DEVICE" --precision "$PRECISION")
  printf '%s' "${output#"$2"}"
}

# The start of most dsk-serve tests: a fresh work directory as the current one (removed on exit,
# after the server is stopped) holding the checkpoint.
start_serve_test() {
  work=$(mktemp -d)
  trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
  cd "$work"
  make_checkpoint
}

make_checkpoint() {
  make_shards
  write_config train.yaml llama
  dsk-train -q -c train.yaml >checkpoint.yaml
  CHECKPOINT=$(field path checkpoint.yaml)
}

start_server() {
  local log=$1
  shift
  dsk-serve "$@" --port 0 2>"$log" &
  SERVER_PID=$!
  BASE=
  for _ in $(seq 600); do
    if [ -z "$BASE" ]; then
      BASE=$(sed -n 's/^dsk-serve: listening on \(http:[^ ]*\)$/\1/p' "$log")
    elif [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/ready")" = 200 ]; then
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; fail "dsk-serve exited while starting"; }
    sleep 0.1
  done
  cat "$log" >&2
  fail "dsk-serve did not become ready"
}

stop_server() {
  kill "-${1:-TERM}" "$SERVER_PID" 2>/dev/null || true
  SERVER_STATUS=0
  wait "$SERVER_PID" || SERVER_STATUS=$?
}

# POST a JSON body; prints the body, and the status on the last line.
post() {  # post PATH JSON [curl args...]
  local path=$1 body=$2
  shift 2
  curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' "$@" -d "$body" "$BASE$path"
}
