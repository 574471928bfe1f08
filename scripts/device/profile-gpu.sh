#!/usr/bin/env bash
# Per-kernel-class time of one dsk-train step on the GPU machine, measured by Nsight Compute
# (ncu, with the clocks left as they are), after scripts/device/build-on-device.sh:
#   scripts/device/profile-gpu.sh [SHAPE] [BxT]      (default dense-124m 16x1024)
# One optimizer step (no validation split, so no evaluation) of the bench shape, every kernel
# timed; scripts/bench/ncu_breakdown.py groups them. Writes $OUT/profile-SHAPE.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-profile}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"
data="$PWD/.carry/gpu-data"
export PATH="$build/tools:$data/bin:$PATH"
shape=${1:-dense-124m} size=${2:-16x1024}
B=${size%x*} T=${size#*x}
work=$(mktemp -d)
cp tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json "$work/"
echo '{"eos_token": "<|endoftext|>", "add_bos_token": false}' >"$work/tokenizer_config.json"
dsk-tokenize -q -t "$work/tokenizer.json" -o "$work/shards" --documents paragraph --val-fraction 0 \
  assets/corpus/kjv.txt.zst >/dev/null
ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
  dsk-train -q --set model.config_json="$data/shapes/$shape/config.json" --set data.train="[$work/shards]" \
  --set data.seq_len=$T --set data.micro_batch=$B --set steps=1 --set checkpoint.every=0 -o "$work/run" \
  >"$work/ncu.csv" 2>"$OUT/profile-$shape.log"
python3 scripts/bench/ncu_breakdown.py "$work/ncu.csv" | tee "$OUT/profile-$shape.txt"
