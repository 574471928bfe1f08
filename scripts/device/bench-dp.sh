#!/usr/bin/env bash
# Data-parallel scaling of dsk-train against torchrun + DDP of the same model, in the same run, on
# the model shapes of ../shared/bench-shapes, at the same per-GPU batch for 1, 2, 4, ... GPUs (as
# many as the machine has). Build first with build-on-device.sh; carry .carry/gpu-data.
#   scripts/device/bench-dp.sh
# dsk-train: --nproc-per-node N, one micro-batch per rank per step (data.grad_accum = N), so each
# GPU does the same work as the 1-GPU run; tokens/s is the run's (all ranks). Exposed
# communication per step = step time on N GPUs - step time on 1 GPU (the same work per GPU).
# HF: scripts/bench/train_gpu_hf.py under torchrun (DDP, bf16 autocast, torch.compile).
# Env: SHAPES (default "dense-124m:16x1024 moe-16e:8x1024"), STEPS (30), GPUS ("1 2 4 8", capped
# by nvidia-smi), DSK_SET (more --set for dsk-train, e.g. "dist.zero=1"), HF=0 (dsk only).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-bench-dp}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"
data="$PWD/.carry/gpu-data"
export PATH="$build/tools:$data/bin:$PATH"
steps=${STEPS:-30}
available=$(nvidia-smi -L | wc -l)
work=$(mktemp -d)
cp tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json "$work/"
echo '{"eos_token": "<|endoftext|>", "add_bos_token": false}' >"$work/tokenizer_config.json"
dsk-tokenize -q -t "$work/tokenizer.json" -o "$work/shards" --documents paragraph --val-fraction 0.01 \
  assets/corpus/kjv.txt.zst >/dev/null

median_step() {  # tokens/s and step ms of a run's metrics.jsonl, steps 6 on
  python3 - "$1" "$2" <<'PY'
import json, statistics, sys
steps = [json.loads(l) for l in open(sys.argv[1])][5:]
tps = statistics.median(s["tokens_per_s"] for s in steps) if steps else float("nan")
print(f"{tps:.0f} {int(sys.argv[2]) / tps * 1e3:.1f}")
PY
}

table=()
for spec in ${SHAPES:-dense-124m:16x1024 moe-16e:8x1024}; do
  shape=${spec%%:*} size=${spec#*:}
  B=${size%x*} T=${size#*x}
  config="$data/shapes/$shape/config.json"
  base_tps="" base_ms="" hf_base=""
  for n in ${GPUS:-1 2 4 8}; do
    [ "$n" -le "$available" ] || continue
    run="$work/$shape-$size-$n"
    dsk-train --nproc-per-node "$n" --set model.config_json="$config" --set data.train="[$work/shards]" \
      --set data.seq_len=$T --set data.micro_batch=$B --set data.grad_accum=$n --set steps=$steps \
      --set eval.every=0 --set eval.batches=1 --set checkpoint.every=0 --set logging.every=1 \
      $(for kv in ${DSK_SET:-}; do echo --set "$kv"; done) -o "$run" >"$run.yaml" 2>"$OUT/dsk-$shape-$n.log"
    read -r tps ms < <(median_step "$run/metrics.jsonl" $((B * T * n)))
    [ -n "$base_tps" ] || { base_tps=$tps; base_ms=$ms; }
    line="$shape $size x $n GPU: dsk tokens/s $tps (x$(python3 -c "print(f'{$tps/$base_tps:.2f}')")), step ${ms} ms, exposed comm $(python3 -c "print(f'{$ms-$base_ms:.1f}')") ms"
    if [ "${HF:-1}" != 0 ]; then
      hf=$(torchrun --standalone --nproc-per-node "$n" scripts/bench/train_gpu_hf.py "$config" --batch $B --seq $T \
        --steps 20 --compile 2>>"$OUT/hf-$shape-$n.log")
      hf_tps=$(echo "$hf" | sed -n 's/.*tokens_per_s \([0-9.]*\).*/\1/p')
      [ -n "$hf_base" ] || hf_base=$hf_tps
      line="$line | torchrun DDP+compile $hf_tps (x$(python3 -c "print(f'{$hf_tps/$hf_base:.2f}')" 2>/dev/null)) dsk/ddp $(python3 -c "print(f'{$tps/$hf_tps:.2f}')" 2>/dev/null)"
    fi
    table+=("$line")
    echo "$line"
  done
done
echo "== data-parallel scaling ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), $available GPUs)" | tee "$OUT/bench-dp.txt"
printf '%s\n' "${table[@]}" | tee -a "$OUT/bench-dp.txt"
