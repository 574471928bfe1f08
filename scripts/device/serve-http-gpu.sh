#!/usr/bin/env bash
# dsk-serve end to end on the GPU machine: the tool tests of the HTTP layer with the engines on CUDA
# (fp32, so that greedy tokens are compared exactly with dsk-train sample on the same device):
#   scripts/device/serve-http-gpu.sh      (carry .carry/devlibs and .carry/gpu-data: scripts/device/pack-gpu-data.sh)
#  1. builds dsk-serve, dsk-train, dsk-tokenize and dsk-scale with CUDA (scripts/device/build-on-device.sh);
#  2. runs tests/cli/dsk-serve-api.sh (greedy completion and chat equal dsk-train sample's, errors,
#     SIGHUP, SIGTERM drain) and tests/cli/dsk-serve-fallback.sh (fallback under overload) with
#     DSK_SERVE_DEVICE=cuda; tests/cli/dsk-serve-load.sh (256 concurrent streams) too when node is there.
# Env: DSK_SERVE_PRECISION (default fp32; bf16 compares bf16 engine and bf16 sample).
# Writes $OUT/serve-http-gpu.txt (one line per test: ok, FAIL or skipped) and each test's log.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-serve-http-gpu}"
mkdir -p "$OUT"
scripts/device/build-on-device.sh dsk-serve dsk-train dsk-tokenize dsk-scale 2>&1 | tee "$OUT/build.log" | tail -3
export PATH="$PWD/build-gpu/tools:$PWD/.carry/gpu-data/bin:$PATH"
export DSK_SOURCE_DIR=$PWD DSK_BUILD_DIR=$PWD/build-gpu DSK_SERVE_DEVICE=cuda DSK_SERVE_PRECISION=${DSK_SERVE_PRECISION:-fp32}
: >"$OUT/serve-http-gpu.txt"
for test in dsk-serve-api dsk-serve-fallback dsk-serve-load; do
  status=0
  timeout 600 bash "tests/cli/$test.sh" >"$OUT/$test.log" 2>&1 || status=$?
  case $status in
    0) result=ok ;;
    77) result="skipped ($(tail -1 "$OUT/$test.log"))" ;;
    *) result="FAIL (exit $status; see $test.log)" ;;
  esac
  echo "$test: $result" | tee -a "$OUT/serve-http-gpu.txt"
done
