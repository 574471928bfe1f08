#!/usr/bin/env bash
# The tile-configuration sweep of the bf16 flash-attention kernels on one GPU, the attention parity
# tests, and PyTorch's SDPA on the same shapes for the ratio (binaries carried in .carry/bin):
#   scripts/device/attention-sweep-gpu.sh
# 1. .carry/bin/attention_sweep (scripts/bench/attention_sweep.cu): every candidate ForwardConfig,
#    KeyConfig and QueryConfig on the four attention_bench shapes: kernel ms, fwd+bwd ms, relative
#    L2 error against the baseline (FAIL above 1e-2); last, the TileChoice specializations to paste
#    into kernels/cuda/attention.cu. If it stops on an error (a one-pass ORDERED_DQ kernel whose
#    turn never came traps after ~10 s), it runs again without those candidates.
# 2. .carry/bin/attention_bench (the production TileChoice) and, when torch is importable,
#    scripts/bench/attention_torch.py --dsk with the ratio torch_ms / dsk_ms.
# 3. the parity tests tests/gpu/attention_test.cu and segment_attention_test.cu (against the CPU
#    reference, packed rows included) three times: built with the production TileChoice
#    (.carry/bin/dsk_gpu_attention, dsk_gpu_segment_attention); when nvcc is here, built here
#    with the TileChoice the sweep printed ($OUT/tile_choice.cuh; ..._choice); and built with
#    scripts/bench/attention_test_tile_choice.cuh (..._alt: 8-warp and one-pass kernels).
# The carried binaries are built on the 2-core machine (BUILD=1 builds them here), from the root:
#   F="-O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib"
#   nvcc $F scripts/bench/attention_sweep.cu kernels/cuda/attention.cu kernels/cuda/common.cu -o .carry/bin/attention_sweep
#   (attention_bench.cu the same way; the tests as build_tests below does)
# Writes $OUT/*.txt (sweep, bench, torch, tests) and $OUT/summary.txt; prints them.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-attention-sweep}"
mkdir -p "$OUT"
bin="$PWD/.carry/bin"
export PATH="$PATH:/usr/local/cuda/bin"
# .carry/include: doctest's header (copied from /usr/include/doctest) in case the GPU machine lacks it
flags=(-O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib -I.carry/include)
# build_tests DIR SUFFIX [nvcc flags choosing the TileChoice]: DIR/dsk_gpu_attention$SUFFIX and
# DIR/dsk_gpu_segment_attention$SUFFIX, each object compiled in parallel.
build_tests() {
  local dir=$1 suffix=$2 objects
  shift 2
  objects=$(mktemp -d)
  nvcc "${flags[@]}" "$@" -c kernels/cuda/attention.cu -o "$objects/attention.o" &
  nvcc "${flags[@]}" -c kernels/cuda/common.cu -o "$objects/common.o" &
  nvcc "${flags[@]}" -c kernels/cpu/attention.cpp -o "$objects/cpu_attention.o" &
  nvcc "${flags[@]}" -c tests/gpu/gpu_main.cu -o "$objects/gpu_main.o" &
  for test in attention segment_attention; do
    nvcc "${flags[@]}" -Itests/gpu -c "tests/gpu/${test}_test.cu" -o "$objects/${test}_test.o" &
  done
  wait
  for test in attention segment_attention; do
    nvcc "${flags[@]}" "$objects/${test}_test.o" "$objects"/{gpu_main,attention,common,cpu_attention}.o \
      -o "$dir/dsk_gpu_$test$suffix" || return 1
  done
}
if [ "${BUILD:-0}" = 1 ]; then
  mkdir -p "$bin"
  start=$(date +%s)
  nvcc "${flags[@]}" scripts/bench/attention_sweep.cu kernels/cuda/attention.cu kernels/cuda/common.cu \
    -o "$bin/attention_sweep" &
  nvcc "${flags[@]}" scripts/bench/attention_bench.cu kernels/cuda/attention.cu kernels/cuda/common.cu \
    -o "$bin/attention_bench" &
  build_tests "$bin" ""
  build_tests "$bin" _alt -DDSK_ATTENTION_TILE_CHOICE='"../../scripts/bench/attention_test_tile_choice.cuh"'
  wait
  echo "attention-sweep-gpu: built in $(( $(date +%s) - start ))s"
fi
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$OUT/machine.txt"
summary=()
run() {  # name, then the command: stdout to $OUT/name.txt, stderr to $OUT/name.err
  local name=$1 start code
  shift
  start=$(date +%s)
  timeout 300 "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"
  code=$?
  summary+=("$(printf '%-36s %s (%ss)' "$name" "$([ $code = 0 ] && echo pass || echo "FAIL $code")" $(( $(date +%s) - start )))")
  echo "== $name"
  cat "$OUT/$name.txt"
  [ $code = 0 ] || tail -20 "$OUT/$name.err"
}
run sweep "$bin/attention_sweep"
if grep -q "attention_sweep: error" "$OUT/sweep.err"; then
  run sweep-no-ordered-dq "$bin/attention_sweep" --no-ordered-dq
fi
# The sweep's choice: built here (in the background, while the rest runs) and tested last.
choice="$OUT/tile_choice.cuh"
sweep_out="$OUT/sweep.txt"
[ -s "$OUT/sweep-no-ordered-dq.txt" ] && sweep_out="$OUT/sweep-no-ordered-dq.txt"
sed -n '/^template <>$/,$p' "$sweep_out" >"$choice"
work=$(mktemp -d)
choice_build=
if [ -s "$choice" ] && ! grep -q "none passed" "$choice" && command -v nvcc >/dev/null; then
  build_tests "$work" _choice -DDSK_ATTENTION_TILE_CHOICE="\"$choice\"" >"$OUT/build-choice.log" 2>&1 &
  choice_build=$!
fi
run bench "$bin/attention_bench"
if python3 -c "import torch" 2>/dev/null; then
  run torch python3 scripts/bench/attention_torch.py --dsk "$OUT/bench.txt"
fi
for test in attention segment_attention; do run "dsk_gpu_$test" "$bin/dsk_gpu_$test"; done
if [ -n "$choice_build" ]; then
  if wait "$choice_build"; then
    for test in attention segment_attention; do run "dsk_gpu_${test}_choice" "$work/dsk_gpu_${test}_choice"; done
  else
    summary+=("build with the sweep's choice: FAIL (build-choice.log)")
    tail -20 "$OUT/build-choice.log"
  fi
fi
for test in attention segment_attention; do run "dsk_gpu_${test}_alt" "$bin/dsk_gpu_${test}_alt"; done
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
