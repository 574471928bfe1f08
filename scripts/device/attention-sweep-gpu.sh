#!/usr/bin/env bash
# The tile-configuration sweep of the bf16 flash-attention kernels on one GPU, the attention parity
# tests with the production choice, and PyTorch's SDPA on the same shapes for the ratio:
#   scripts/device/attention-sweep-gpu.sh      (carry .carry/bin: the binaries below, built here)
# 1. .carry/bin/attention_sweep (scripts/bench/attention_sweep.cu): every candidate ForwardConfig,
#    KeyConfig and QueryConfig on the four attention_bench shapes: kernel ms, fwd+bwd ms, relative
#    L2 error against the baseline (FAIL above 1e-2); last, the TileChoice to paste into
#    kernels/cuda/attention.cu per head-dim pair. If it stops on an error (a one-pass ORDERED_DQ
#    kernel whose turn never came traps after ~10 s), it runs again without those candidates.
# 2. .carry/bin/attention_bench (production choice) and, when torch is importable,
#    scripts/bench/attention_torch.py --dsk with its ratio torch_ms / dsk_ms.
# 3. the parity tests .carry/bin/dsk_gpu_attention and dsk_gpu_segment_attention (tests/gpu).
# The binaries are built on the 2-core machine (BUILD=1 builds them here instead, with nvcc):
#   nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib \
#     scripts/bench/attention_sweep.cu kernels/cuda/attention.cu kernels/cuda/common.cu -o .carry/bin/attention_sweep
#   (and the same for attention_bench.cu; the tests as in build_test below)
# Writes $OUT/sweep.txt, bench.txt, torch.txt and the tests' logs; prints them.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-attention-sweep}"
mkdir -p "$OUT"
bin="$PWD/.carry/bin"
nvcc_flags=(-O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib)
attention_sources=(kernels/cuda/attention.cu kernels/cuda/common.cu)
build_test() {  # tests/gpu/<name>_test.cu -> $bin/dsk_gpu_<name>, against the CPU reference
  nvcc "${nvcc_flags[@]}" -Itests/gpu -DDSK_SOURCE_DIR="\"$PWD\"" "tests/gpu/$1_test.cu" tests/gpu/gpu_main.cu \
    "${attention_sources[@]}" kernels/cpu/attention.cpp -o "$bin/dsk_gpu_$1"
}
if [ "${BUILD:-0}" = 1 ]; then
  mkdir -p "$bin"
  start=$(date +%s)
  nvcc "${nvcc_flags[@]}" scripts/bench/attention_sweep.cu "${attention_sources[@]}" -o "$bin/attention_sweep" &
  nvcc "${nvcc_flags[@]}" scripts/bench/attention_bench.cu "${attention_sources[@]}" -o "$bin/attention_bench" &
  build_test attention &
  build_test segment_attention &
  wait
  echo "attention-sweep-gpu: built in $(( $(date +%s) - start ))s"
fi
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$OUT/machine.txt"
summary=()
run() {  # name, then the command; stdout to $OUT/name.txt
  local name=$1 start code
  shift
  start=$(date +%s)
  timeout 300 "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"
  code=$?
  summary+=("$(printf '%-26s %s (%ss)' "$name" "$([ $code = 0 ] && echo pass || echo "FAIL $code")" $(( $(date +%s) - start )))")
  cat "$OUT/$name.txt"
  [ $code = 0 ] || tail -20 "$OUT/$name.err"
}
run sweep "$bin/attention_sweep"
if grep -q "error" "$OUT/sweep.err"; then  # a one-pass (ORDERED_DQ) kernel that trapped ends the process
  run sweep-no-ordered-dq "$bin/attention_sweep" --no-ordered-dq
fi
run bench "$bin/attention_bench"
if python3 -c "import torch" 2>/dev/null; then
  run torch python3 scripts/bench/attention_torch.py --dsk "$OUT/bench.txt"
fi
for test in attention segment_attention; do
  run "dsk_gpu_$test" "$bin/dsk_gpu_$test"
done
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
