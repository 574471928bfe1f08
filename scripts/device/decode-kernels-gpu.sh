#!/usr/bin/env bash
# The decode step's latency-bound kernels on the GPU machine, in one call (about 4 minutes on one H200):
#   scripts/device/decode-kernels-gpu.sh      (carry .carry/devlibs: scripts/device/pack-gpu-data.sh;
#                                              and .carry/base-kernels for the "before" column, below)
#  1. builds the three GPU tests (scripts/device/build-on-device.sh) and scripts/bench/decode_kernels_bench.cu
#     (nvcc, the line in its header) against this tree's kernels, and again against the kernels of
#     a base commit when .carry/base-kernels/kernels holds them (made on the build machine with
#       rm -rf .carry/base-kernels && mkdir -p .carry/base-kernels && git archive BASE kernels scripts/bench | tar -x -C .carry/base-kernels
#     ) or this copy is a git checkout (BASE, default: git merge-base HEAD main);
#  2. tests/gpu/paged_attention_test.cu (fp32 1e-5, bf16 1e-2 relative L2 against the CPU; batch-1
#     and ragged decodes over 1..20000 keys, key partitions, graph-sized grids, MLA's absorbed
#     shape), tests/gpu/rope_test.cu (same tolerances; decode shapes; a row's bits alone = in a
#     batch), tests/gpu/rmsnorm_test.cu (out 1e-5/1e-2, rstd and dweight 1e-5; decode rows; a row's
#     bits alone = in a batch);
#  3. the bench: us per launch of rmsnorm_forward, rope_forward (q) and paged_attention at N = 1,
#     32 (and prefill sizes), llama-1b's shape, bf16: before, after and the speedup.
# Writes $OUT/decode-kernels-gpu.txt (the table, printed last) and the logs beside it.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-decode-kernels-gpu}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
source scripts/device/lib/summary.sh

bench_sources=(kernels/cuda/paged_attention.cu kernels/cuda/rope.cu kernels/cuda/rmsnorm.cu kernels/cuda/common.cu)
build_bench() {  # tree root (its kernels/, and its scripts/bench/ when it has one: the kernels' API changes), binary
  local bench="$1/scripts/bench/decode_kernels_bench.cu"
  [ -f "$bench" ] || bench=scripts/bench/decode_kernels_bench.cu
  nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -I"$1/kernels" -Ilib \
    "$bench" "${bench_sources[@]/#/$1/}" -o "$2"
}
base="$PWD/.carry/base-kernels"
if [ ! -d "$base/kernels" ] && git rev-parse --git-dir >/dev/null 2>&1; then
  commit=${BASE:-$(git merge-base HEAD main 2>/dev/null)}
  [ -n "$commit" ] && mkdir -p "$OUT/base" && git archive "$commit" kernels scripts/bench | tar -x -C "$OUT/base" && base="$OUT/base"
fi
build_bench . "$OUT/bench-after" >"$OUT/bench-build.log" 2>&1 &
after_build=$!
before_build=
if [ -d "$base/kernels" ]; then
  build_bench "$base" "$OUT/bench-before" >"$OUT/bench-build-before.log" 2>&1 &
  before_build=$!
fi
scripts/device/build-on-device.sh dsk_gpu_paged_attention dsk_gpu_rope dsk_gpu_rmsnorm 2>&1 | tee "$OUT/build.log" |
  tail -5 || { echo "decode-kernels-gpu: the build failed ($OUT/build.log)"; exit 1; }
wait $after_build || { tail -20 "$OUT/bench-build.log"; echo "decode-kernels-gpu: the bench did not build"; }
[ -z "$before_build" ] || wait $before_build || { tail -20 "$OUT/bench-build-before.log"; rm -f "$OUT/bench-before"; }

timed_gpu_tests paged_attention rope rmsnorm

[ -x "$OUT/bench-after" ] && "$OUT/bench-after" >"$OUT/bench-after.txt" 2>"$OUT/bench-after.log"
[ -x "$OUT/bench-before" ] && "$OUT/bench-before" >"$OUT/bench-before.txt" 2>"$OUT/bench-before.log"
cat "$OUT/bench-after.log" 2>/dev/null
# One line per case: the after table's columns, then before, after and before / after.
table=$(python3 - "$OUT/bench-before.txt" "$OUT/bench-after.txt" <<'PY'
import sys
def read(path):
    try:
        rows = [line.split() for line in open(path)][1:]
    except OSError:
        return {}
    return {tuple(r[:-1]): float(r[-1]) for r in rows if len(r) == 5}
before, after = read(sys.argv[1]), read(sys.argv[2])
print(f"{'kernel':<16} {'N':>5} {'keys':>5} {'grid_keys':>9} {'before_us':>10} {'after_us':>9} {'speedup':>8}")
for key, us in after.items():
    was = before.get(key)
    print(f"{key[0]:<16} {key[1]:>5} {key[2]:>5} {key[3]:>9} {was if was is not None else '?':>10} {us:>9.2f} "
          f"{(f'{was / us:.2f}x' if was else '?'):>8}")
PY
)
echo "== summary" | tee "$OUT/decode-kernels-gpu.txt"
printf '%s\n' "${summary[@]}" "$table" | tee -a "$OUT/decode-kernels-gpu.txt"
