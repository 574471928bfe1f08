#!/usr/bin/env bash
# The persistent decode kernel (kernels/cuda/decode_layers.cuh) on the GPU machine, in one call
# (about 2.5 minutes on one H200; carry .carry/devlibs and .carry/gpu-data: scripts/device/pack-gpu-data.sh):
#   scripts/device/decode-layers-gpu.sh
#  1. builds tests/gpu/decode_layers_test.cpp and dsk_serve_bench (scripts/device/build-on-device.sh)
#     and scripts/bench/decode_layers_bench.cu twice with nvcc (timed, and traced per phase);
#  2. the test: the kernel's logits against the same decode steps op by op (fp32 1e-4, bf16 3e-2);
#  3. the kernel alone on llama-1b's layers against the weights-over-copy-bandwidth bound, with
#     the traced build's per-phase table; then dsk_serve_bench with graphs, op by op and fused.
# Env: WARPS, KEYS, STAGES and IN_FLIGHT (the kernel's consumer warps, keys in flight, ring
# stages and weight stages in flight, for a sweep); ABLATE=1 also
# times the kernel with parts of it removed (decode_layers.cu's DSK_DECODE_ABLATE_*: wrong results,
# for where the time goes): no grid barriers and no attention, then no products or no weight loads
# as well.
# Writes $OUT/decode-layers-gpu.txt (the summary, printed last) and the logs beside it.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-decode-layers-gpu}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
source scripts/device/lib/summary.sh

tuning=()
[ -n "${WARPS:-}" ] && tuning+=("-DDSK_DECODE_CONSUMER_WARPS=$WARPS")
[ -n "${KEYS:-}" ] && tuning+=("-DDSK_DECODE_KEYS_IN_FLIGHT=$KEYS")
[ -n "${STAGES:-}" ] && tuning+=("-DDSK_DECODE_STAGES=$STAGES")
[ -n "${IN_FLIGHT:-}" ] && tuning+=("-DDSK_DECODE_IN_FLIGHT=$IN_FLIGHT")
# The bench binaries go outside $OUT: the device tool brings back a limited number of files.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
build_bench() {  # binary, extra nvcc flags...
  local binary=$1
  shift
  nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib -Iscripts/bench \
    "${tuning[@]}" "$@" scripts/bench/decode_layers_bench.cu kernels/cuda/decode_layers.cu kernels/cuda/common.cu \
    -o "$binary"
}
build_bench "$bin/bench" >"$OUT/bench-build.log" 2>&1 &
timed=$!
build_bench "$bin/bench-trace" -DDSK_DECODE_TRACE >"$OUT/bench-trace-build.log" 2>&1 &
traced=$!
scripts/device/build-on-device.sh dsk_gpu_decode_layers dsk_serve_bench 2>&1 | tee "$OUT/build.log" | tail -5 ||
  { echo "decode-layers-gpu: the build failed ($OUT/build.log)"; exit 1; }
wait $timed || { tail -20 "$OUT/bench-build.log"; echo "decode-layers-gpu: the bench did not build"; }
wait $traced || tail -20 "$OUT/bench-trace-build.log"
ablations=()
if [ "${ABLATE:-0}" = 1 ]; then
  synchronization=(-DDSK_DECODE_ABLATE_BARRIERS -DDSK_DECODE_ABLATE_ATTENTION)
  build_bench "$bin/bench-no-sync" "${synchronization[@]}" >"$OUT/ablate-build.log" 2>&1 &
  build_bench "$bin/bench-no-sync-no-products" "${synchronization[@]}" -DDSK_DECODE_ABLATE_PRODUCTS \
    >>"$OUT/ablate-build.log" 2>&1 &
  build_bench "$bin/bench-no-sync-no-loads" "${synchronization[@]}" -DDSK_DECODE_ABLATE_LOADS >>"$OUT/ablate-build.log" 2>&1 &
  wait
  ablations=(bench-no-sync bench-no-sync-no-products bench-no-sync-no-loads)
fi

timed_gpu_tests decode_layers
for run in bench bench-trace "${ablations[@]}"; do
  echo "== $run"
  [ -x "$bin/$run" ] && "$bin/$run" >"$OUT/$run.txt" 2>&1
  cat "$OUT/$run.txt" 2>/dev/null
done
for run in bench "${ablations[@]}"; do
  step=$(sed -n 's/^N 1: \([0-9.]*\) us a step.* \([0-9.]*\) of the bound/\1 us (\2 of the bound)/p' "$OUT/$run.txt" 2>/dev/null)
  note "layers alone, llama-1b, 1 sequence${run#bench}" "${step:-?}"
done
"$build/lib/serve/dsk_serve_bench" .carry/gpu-data/shapes/llama-1b/config.json --graphs on --fused both \
  >"$OUT/serve.txt" 2>"$OUT/serve.log" || tail -20 "$OUT/serve.log"
cat "$OUT/serve.txt"
for label in "dsk graphs" "dsk graphs fused"; do
  rate=$(sed -n "s/^$label batch 1 decode_tokens_per_s \([0-9.]*\) of_bound \([0-9.]*\).*/\1 tokens\/s (\2 of the bound)/p" "$OUT/serve.txt")
  note "engine batch 1, ${label#dsk }" "${rate:-?}"
done
printf '%s\n' "${summary[@]}" | tee "$OUT/decode-layers-gpu.txt"
