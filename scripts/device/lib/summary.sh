# shellcheck shell=bash disable=SC2154  # OUT and build come from the sourcing script
# Sourced by the scripts/device/*-gpu.sh that end with a summary table, from the repository root
# once they have set OUT (the logs' folder) and build (the build-on-device.sh build):
#   verdict CODE             pass, or FAIL CODE
#   note NAME RESULT         a row of the summary table: NAME in 34 columns, then RESULT
#   gpu_tests LINES TEST...  runs each $build/tests/gpu/TEST into $OUT/TEST.log and notes its verdict;
#                            a failing test's last LINES log lines go to stdout
#   timed_gpu_tests NAME...  the same for each dsk_gpu_NAME (log $OUT/NAME.log, 40 lines on a
#                            failure), with DSK_SOURCE_DIR set and its seconds beside the verdict
summary=()
note() { summary+=("$(printf '%-34s %s' "$1" "$2")"); }
verdict() { [ "$1" = 0 ] && echo pass || echo "FAIL $1"; }

gpu_tests() {
  local lines=$1 test code
  shift
  for test in "$@"; do
    "$build/tests/gpu/$test" >"$OUT/$test.log" 2>&1
    code=$?
    note "$test" "$(verdict $code)"
    [ $code = 0 ] || tail -"$lines" "$OUT/$test.log"
  done
}

timed_gpu_tests() {
  local test start code
  for test in "$@"; do
    start=$(date +%s)
    DSK_SOURCE_DIR="$PWD" "$build/tests/gpu/dsk_gpu_$test" >"$OUT/$test.log" 2>&1
    code=$?
    note "dsk_gpu_$test" "$(verdict $code) ($(( $(date +%s) - start ))s)"
    [ $code = 0 ] || tail -40 "$OUT/$test.log"
  done
}
