#!/usr/bin/env bash
# dsk-train on one GPU against PyTorch + HF transformers on the same GPU, in the same run, on the
# model shapes of ../shared/bench-shapes (carried in .carry/gpu-data/shapes by scripts/device/pack-gpu-data.sh; build first with build-on-device.sh):
#   scripts/device/bench-gpu.sh
# For each shape: dsk-train (bf16, random init, token shards of the bundled corpus) and
# scripts/bench/train_gpu_hf.py (bf16 autocast, sdpa, fused AdamW; eager and torch.compile), with
# tokens/s, MFU against PEAK_TFLOPS (default 790, the bf16 matmul peak measured on the H200 here)
# and peak GPU memory. Also the kernel benchmarks (attention, grouped GEMM) when built.
# Env: SHAPES (default "dense-124m:16x1024 moe-16e:8x1024 dense-124m:4x4096"), STEPS (default 30),
# DSK_SET (more --set arguments for dsk-train, e.g. "train.recompute=full"), HF=0 (dsk only).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-bench-gpu}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"  # scripts/device/build-on-device.sh
data="$PWD/.carry/gpu-data"            # scripts/device/pack-gpu-data.sh
export PATH="$build/tools:$data/bin:$PATH"
steps=${STEPS:-30}
work=$(mktemp -d)
cp tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json "$work/"
echo '{"eos_token": "<|endoftext|>", "add_bos_token": false}' >"$work/tokenizer_config.json"
dsk-tokenize -q -t "$work/tokenizer.json" -o "$work/shards" --documents paragraph --val-fraction 0.01 \
  assets/corpus/kjv.txt.zst >/dev/null
table=()
for spec in ${SHAPES:-dense-124m:16x1024 moe-16e:8x1024 dense-124m:4x4096}; do
  shape=${spec%%:*} size=${spec#*:}
  B=${size%x*} T=${size#*x}
  config="$data/shapes/$shape/config.json"
  run="$work/$shape-$size"
  dsk-train --set model.config_json="$config" --set data.train="[$work/shards]" --set data.seq_len=$T \
    --set data.micro_batch=$B --set steps=$steps --set eval.every=0 --set eval.batches=1 --set checkpoint.every=0 \
    --set logging.every=1 --set checkpoint.dtype=BF16 $(for kv in ${DSK_SET:-}; do echo --set "$kv"; done) \
    -o "$run" >"$run.yaml" 2>"$OUT/dsk-$shape-$size.log"
  dsk=$(python3 - "$run/metrics.jsonl" "$config" "$T" <<'PY'
import json, statistics, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
tps = statistics.median(s["tokens_per_s"] for s in steps[5:]) if len(steps) > 5 else float("nan")
print(f"{tps:.0f}")
PY
)
  memory=$(sed -n 's/.*peak device memory \([0-9.]*\) GiB.*/\1/p' "$OUT/dsk-$shape-$size.log" | tail -1)
  line="$shape $size: dsk tokens/s $dsk peak ${memory:-?} GiB"
  modes=("" --compile)
  [ "${HF:-1}" = 0 ] && modes=()
  for mode in "${modes[@]}"; do
    hf=$(python3 scripts/bench/train_gpu_hf.py "$config" --batch $B --seq $T --steps 20 $mode 2>>"$OUT/hf-$shape-$size.log")
    echo "$hf" >>"$OUT/hf-$shape-$size.log"
    tps=$(echo "$hf" | sed -n 's/.*tokens_per_s \([0-9.]*\).*/\1/p')
    line="$line | $(echo "$hf" | cut -d' ' -f2) $tps ($(echo "$hf" | sed -n 's/.*peak_gib \([0-9.]*\).*mfu \([0-9.]*\).*/\1 GiB, mfu \2/p')) dsk/x $(python3 -c "print(f'{$dsk/$tps:.2f}')" 2>/dev/null)"
  done
  table+=("$line")
  echo "$line"
done
echo "== bench (tokens/s; PEAK_TFLOPS ${PEAK_TFLOPS:-790})" | tee "$OUT/bench.txt"
printf '%s\n' "${table[@]}" | tee -a "$OUT/bench.txt"
