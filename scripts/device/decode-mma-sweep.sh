#!/usr/bin/env bash
# The persistent decode kernel's tensor-core products swept on the GPU machine (branch
# decode-mma-groups; about 2 minutes on one H200):
#   scripts/device/decode-mma-sweep.sh
# times scripts/bench/decode_layers_bench.cu built with DSK_DECODE_TILE_GROUP (tiles a block
# barrier) 1, 2, 4, 8 and DSK_DECODE_MMA_MIN_ROWS 1 (one token on the tensor cores too) or 2, each
# whole and with the barriers, attention and weight loads left out (the products alone).
# Writes $OUT/decode-mma-sweep.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-decode-mma-sweep}"
mkdir -p "$OUT"
bin=$(mktemp -d)
alone=(-DDSK_DECODE_ABLATE_BARRIERS -DDSK_DECODE_ABLATE_ATTENTION -DDSK_DECODE_ABLATE_LOADS)
build() {  # name, flags...
  local name=$1
  shift
  nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib -Iscripts/bench \
    "$@" scripts/bench/decode_layers_bench.cu kernels/cuda/decode_layers.cu kernels/cuda/common.cu \
    -o "$bin/$name" >"$OUT/$name.build.log" 2>&1 || echo "$name: the build failed ($OUT/$name.build.log)"
}
variants=()
for group in 1 2 4 8; do
  for rows in 1 2; do
    name=group$group-rows$rows
    build "$name" -DDSK_DECODE_TILE_GROUP=$group -DDSK_DECODE_MMA_MIN_ROWS=$rows &
    build "$name-alone" -DDSK_DECODE_TILE_GROUP=$group -DDSK_DECODE_MMA_MIN_ROWS=$rows "${alone[@]}" &
    variants+=("$name" "$name-alone")
  done
done
wait
for name in "${variants[@]}"; do
  [ -x "$bin/$name" ] || continue
  steps=$(timeout 60 "$bin/$name" | sed -n 's/^N \([14]\): \([0-9.]*\) us a step.* \([0-9.]*\) of the bound/N \1 \2 us (\3)/p' | paste -sd ' ')
  printf '%-20s %s\n' "$name" "$steps" | tee -a "$OUT/decode-mma-sweep.txt"
done
rm -rf "$bin"
