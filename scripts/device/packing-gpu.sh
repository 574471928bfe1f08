#!/usr/bin/env bash
# Packing (dsk-finetune data.packing) on the GPU machine, in one call (carry .carry/gpu-data and
# .carry/devlibs, made by scripts/device/pack-gpu-data.sh):
#   scripts/device/packing-gpu.sh
#  1. build (scripts/device/build-on-device.sh) dsk-finetune, dsk-train, dsk-tokenize and the
#     attention GPU tests;
#  2. ops: tests/gpu segment_attention (CUDA attention over packed rows vs the CPU reference, fp32
#     SIMT 1e-5 and bf16 2e-2 relative L2, forward and backward, with and without prefix keys;
#     all-zero starts give the bits of plain causal attention) and attention (plain causal, to
#     see that the kernels it shares did not move);
#  3. cli: tests/cli/dsk-finetune-packing.sh with DSK_TEST_DEVICE=cuda (packed and padded rows
#     give the same validation loss within 5e-3 in bf16; a packed run learns);
#  4. bench: scripts/bench/packed_attention_bench.cu, forward + backward of packed rows (examples
#     of 128/256/512 positions) against plain causal on the same rows (llama-1b, MLA, dense-124m
#     shapes): packed_ms should be below causal_ms and fall towards the "pairs" share.
# Env: PARTS (default "ops cli bench"). Writes $OUT/packing-gpu.txt (and logs); prints a summary.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-packing-gpu}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"
data="$PWD/.carry/gpu-data"
export PATH="$build/tools:$data/bin:$PATH" DSK_SOURCE_DIR="$PWD"
parts=" ${PARTS:-ops cli bench} "
source scripts/device/lib/summary.sh

scripts/device/build-on-device.sh dsk-finetune dsk-train dsk-tokenize dsk_gpu_segment_attention dsk_gpu_attention ||
  exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"

if [[ $parts == *" ops "* ]]; then
  gpu_tests 40 dsk_gpu_segment_attention dsk_gpu_attention
fi

if [[ $parts == *" cli "* ]]; then
  DSK_TEST_DEVICE=cuda bash tests/cli/dsk-finetune-packing.sh >"$OUT/cli.log" 2>&1
  code=$?
  note "dsk-finetune-packing.sh (cuda)" "$(verdict $code)"
  [ $code = 0 ] || tail -20 "$OUT/cli.log"
fi

if [[ $parts == *" bench "* ]]; then
  nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib \
    scripts/bench/packed_attention_bench.cu kernels/cuda/attention.cu kernels/cuda/common.cu \
    -o "$OUT/packed_attention_bench" >"$OUT/bench-build.log" 2>&1 || { tail -20 "$OUT/bench-build.log"; exit 1; }
  "$OUT/packed_attention_bench" >"$OUT/bench.txt" 2>"$OUT/bench.err"
  note "packed attention bench" "$(verdict $?) (table below)"
  rm -f "$OUT/packed_attention_bench"
fi

{
  echo "== packing on the GPU"
  printf '%s\n' "${summary[@]}"
  [ -f "$OUT/bench.txt" ] && cat "$OUT/bench.txt"
} | tee "$OUT/packing-gpu.txt"
