#!/usr/bin/env bash
# Data-parallel scaling of dsk-train against torchrun + DDP of the same model, in the same run, on
# the model shapes of ../shared/bench-shapes, at the same per-GPU batch for 1, 2, 4, ... GPUs (as
# many as the machine has). Build first with build-on-device.sh; carry .carry/gpu-data.
#   scripts/device/bench-dp.sh
# dsk-train: --nproc-per-node N, one micro-batch per rank per step (data.grad_accum = N), so each
# GPU does the same work as the 1-GPU run; tokens/s is the run's (all ranks). Two views of the
# exposed communication per step: "+X over 1 GPU" (step time on N GPUs - on 1 GPU, the same work
# per GPU) and "exposed comm" (comm_wait_s of metrics.jsonl: the time the compute stream stalled
# on NCCL's stream, CUDA events; median over steps 6 on). With several GPUs each
# gradient wire dtype of GRAD_DTYPES runs (dist.grad_dtype: bf16, fp32, int8 with error
# feedback): step time, exposed communication and the loss after STEPS steps (the same data and
# init, so the loss column is compression's effect on loss).
# HF: scripts/bench/train_gpu_hf.py under torchrun (DDP, bf16 autocast, torch.compile).
# Env: SHAPES (default "dense-124m:16x1024 moe-16e:8x1024"), STEPS (30), GPUS ("1 2 4 8", capped
# by nvidia-smi), GRAD_DTYPES ("bf16 fp32 int8"), DSK_SET (more --set for dsk-train, e.g.
# "dist.zero=1 dist.bucket_mb=0"), HF=0 (dsk only).
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

median_step() {  # tokens/s, step ms, exposed comm ms (medians, steps 6 on) and the last loss of a metrics.jsonl
  python3 - "$1" "$2" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
steps = lines[5:]
tps = statistics.median(s["tokens_per_s"] for s in steps) if steps else float("nan")
wait = statistics.median(s.get("comm_wait_s", 0.0) for s in steps) if steps else float("nan")
loss = lines[-1]["loss"] if lines else float("nan")
print(f"{tps:.0f} {int(sys.argv[2]) / tps * 1e3:.1f} {wait * 1e3:.1f} {loss:.4f}")
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
    hf_tps=""
    if [ "${HF:-1}" != 0 ]; then
      hf=$(torchrun --standalone --nproc-per-node "$n" scripts/bench/train_gpu_hf.py "$config" --batch $B --seq $T \
        --steps 20 --compile 2>>"$OUT/hf-$shape-$n.log")
      hf_tps=$(echo "$hf" | sed -n 's/.*tokens_per_s \([0-9.]*\).*/\1/p')
      [ -n "$hf_base" ] || hf_base=$hf_tps
    fi
    # One rank sends nothing: its wire dtype changes nothing, so it runs once.
    for wire in $([ "$n" = 1 ] && echo bf16 || echo ${GRAD_DTYPES:-bf16 fp32 int8}); do
      run="$work/$shape-$size-$n-$wire"
      dsk-train --nproc-per-node "$n" --set model.config_json="$config" --set data.train="[$work/shards]" \
        --set data.seq_len=$T --set data.micro_batch=$B --set data.grad_accum=$n --set steps=$steps \
        --set eval.every=0 --set eval.batches=1 --set checkpoint.every=0 --set logging.every=1 \
        --set dist.grad_dtype=$wire $(for kv in ${DSK_SET:-}; do echo --set "$kv"; done) -o "$run" >"$run.yaml" \
        2>"$OUT/dsk-$shape-$n-$wire.log"
      read -r tps ms wait_ms loss < <(median_step "$run/metrics.jsonl" $((B * T * n)))
      [ -n "$base_tps" ] || { base_tps=$tps; base_ms=$ms; }
      line="$shape $size x $n GPU, grad $wire: dsk tokens/s $tps (x$(python3 -c "print(f'{$tps/$base_tps:.2f}')")), step ${ms} ms (+$(python3 -c "print(f'{$ms-$base_ms:.1f}')") over 1 GPU), exposed comm ${wait_ms} ms, loss@$steps $loss"
      [ -z "$hf_tps" ] ||
        line="$line | torchrun DDP+compile $hf_tps (x$(python3 -c "print(f'{$hf_tps/$hf_base:.2f}')" 2>/dev/null)) dsk/ddp $(python3 -c "print(f'{$tps/$hf_tps:.2f}')" 2>/dev/null)"
      table+=("$line")
      echo "$line"
    done
  done
done
echo "== data-parallel scaling ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), $available GPUs)" | tee "$OUT/bench-dp.txt"
printf '%s\n' "${table[@]}" | tee -a "$OUT/bench-dp.txt"
