#!/usr/bin/env bash
# dsk-finetune on the GPU machine, in one call (carry .carry/gpu-data and .carry/devlibs, made by
# scripts/device/pack-gpu-data.sh):
#   scripts/device/finetune-gpu.sh
#  1. build (scripts/device/build-on-device.sh) dsk-finetune, dsk-train, dsk-tokenize, the LoRA
#     GPU tests and dsk_unit_finetune;
#  2. ops: tests/gpu dropout (CUDA vs CPU, exact), tanh (prefix tuning's MLP: fp32 1e-5, bf16
#     1e-2) and adapter_parity (CUDA LoRA, bottleneck adapters and prefix tuning with and without
#     its MLP, forward/backward on a frozen base vs the CPU: fp32 1e-4, bf16 loss 1% and gradients
#     5e-2; llama and deepseek_v3);
#  3. peft: the round trip with PEFT 0.21 / transformers 5: dsk_unit_finetune's round-trip test
#     exports dsk-saved adapters with dsk's logits, which tests/fixtures/make_peft_fixtures.py
#     --check loads with PeftModel.from_pretrained (fp32 1e-4); then --out writes the PEFT-made
#     fixtures to $OUT/peft (commit them as tests/fixtures/peft) and dsk_unit_finetune loads them;
#     LoRA on llama, qwen2, deepseek_v3 and prefix tuning (prefix-llama, prefix-qwen2: dsk's folded
#     reparameterisation, PEFT's PrefixTuningConfig with prefix_projection) both ways;
#  4. cuda: a short dsk-finetune run on CUDA (tiny base made by dsk-train, the bundled set), eval
#     and merge of its adapter; bottleneck adapters and prefix tuning (with its MLP) trained there
#     too, the prefix adapter evaluated;
#  5. bench: llama-1b of ../shared/bench-shapes (random bf16 base), LoRA r16 alpha 32 on all linear
#     layers, dropout 0, 8 x 1024, bf16: dsk-finetune against PEFT eager and PEFT + torch.compile
#     (scripts/bench/finetune_gpu_peft.py) on the same base, tokens/s and peak memory, and the ratios.
# Env: PARTS (default "ops peft cuda bench"), STEPS (dsk bench steps, default 30).
# Writes $OUT/finetune-gpu.txt (and logs); prints a summary table last.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-finetune-gpu}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"
data="$PWD/.carry/gpu-data"
export PATH="$build/tools:$data/bin:$PATH" DSK_SOURCE_DIR="$PWD"
parts=" ${PARTS:-ops peft cuda bench} "
source scripts/device/lib/summary.sh

scripts/device/build-on-device.sh dsk-finetune dsk-train dsk-tokenize dsk_gpu_dropout dsk_gpu_tanh \
  dsk_gpu_adapter_parity dsk_unit_finetune || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"

if [[ $parts == *" ops "* ]]; then
  gpu_tests 30 dsk_gpu_dropout dsk_gpu_tanh dsk_gpu_adapter_parity
fi

if [[ $parts == *" peft "* ]]; then
  "$build/tests/dsk_unit_finetune" -tc="a PEFT adapter saved by dsk*" >"$OUT/peft-export.log" 2>&1
  python3 tests/fixtures/make_peft_fixtures.py --check "$build/peft-export" >"$OUT/peft-check.log" 2>&1
  code=$?
  cat "$OUT/peft-check.log" | grep "peft round trip" || tail -20 "$OUT/peft-check.log"
  note "dsk adapter in PEFT (1e-4)" "$(verdict $code)"
  rm -rf "$OUT/peft" tests/fixtures/peft
  python3 tests/fixtures/make_peft_fixtures.py --out "$OUT/peft" >"$OUT/peft-make.log" 2>&1
  code=$?
  [ $code = 0 ] || tail -20 "$OUT/peft-make.log"
  cp -r "$OUT/peft" tests/fixtures/peft
  tar -C "$OUT" -czf "$OUT/peft-fixtures.tgz" peft  # one file: the folders are too deep to come back
  "$build/tests/dsk_unit_finetune" --no-skip -tc="adapters written by PEFT*" >"$OUT/peft-load.log" 2>&1
  code2=$?
  [ $code2 = 0 ] || tail -20 "$OUT/peft-load.log"
  note "PEFT adapter in dsk (1e-4)" "$(verdict $(( code + code2 )))"
fi

if [[ $parts == *" cuda "* ]]; then
  work=$(mktemp -d)
  (
    set -e
    cd "$work"
    source "$DSK_SOURCE_DIR/tests/cli/lib/train-fixture.sh"
    make_shards
    write_config base.yaml llama
    sed -i "s/^steps: 40$/steps: 2/; s/^  dir: run$/  dir: base-run/" base.yaml
    dsk-train -q -c base.yaml --device cpu >base.out
    dsk-finetune train --base "$(field path base.out)" --data "$DSK_SOURCE_DIR/assets/finetune/train.jsonl" \
      --val "$DSK_SOURCE_DIR/assets/finetune/test.jsonl" --device cuda --steps 30 -o run \
      --set data.seq_len=160 --set lora.r=8 --set optim.lr=3e-3 >lora.out
    dsk-finetune train --base "$(field path base.out)" --data "$DSK_SOURCE_DIR/assets/finetune/train.jsonl" \
      --device cuda --steps 10 -o adapters --set data.seq_len=160 --set peft.method=bottleneck >adapters.out
    dsk-finetune train --base "$(field path base.out)" --data "$DSK_SOURCE_DIR/assets/finetune/train.jsonl" \
      --device cuda --steps 10 -o prefix --set data.seq_len=160 --set peft.method=prefix \
      --set prefix.projection=true --set optim.lr=1e-2 >prefix.out
    dsk-finetune eval - --data "$DSK_SOURCE_DIR/assets/finetune/test.jsonl" --device cuda --max-new-tokens 4 \
      --limit 4 <prefix.out >/dev/null
    dsk-finetune eval - --data "$DSK_SOURCE_DIR/assets/finetune/test.jsonl" --device cuda --max-new-tokens 4 <lora.out
    dsk-finetune merge "$(field path base.out)" - -o merged <lora.out >/dev/null
    dsk-train sample merged -n 4 --temperature 0 --device cuda >/dev/null
  ) >"$OUT/cuda.log" 2>&1
  code=$?
  [ $code = 0 ] || tail -30 "$OUT/cuda.log"
  note "train/eval/merge on cuda" "$(verdict $code) $(grep -E '^(val_loss|loss|exact_match):' "$OUT/cuda.log" | tr '\n' ' ')"
fi

if [[ $parts == *" bench "* ]]; then
  work=$(mktemp -d)
  config="$data/shapes/llama-1b/config.json"
  python3 scripts/bench/finetune_gpu_peft.py --save-base "$config" "$work/base" >"$OUT/bench-base.log" 2>&1 ||
    tail -20 "$OUT/bench-base.log"
  cp tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json "$work/"
  echo '{"eos_token": "<|endoftext|>", "add_bos_token": false}' >"$work/tokenizer_config.json"
  # Rows full of completion: 64 examples of a short prompt and 1,500 characters of the corpus (the
  # byte-level fixture tokenizer makes about one token of each), cut at 1,024 positions.
  zstdcat assets/corpus/kjv.txt.zst | head -c 400000 | python3 -c '
import json, sys
text = sys.stdin.read().replace("\n", " ")
for i in range(64):
    start = i * 6000
    print(json.dumps({"prompt": "Continue: " + text[start:start + 100], "completion": text[start + 100:start + 1600]}))' \
    >"$work/train.jsonl"
  # dsk twice: keeping every activation, and recomputing attention's in backward (less memory).
  line="llama-1b LoRA r16 all-linear 8x1024 bf16:"
  dsk_tps=0 dsk_gib=0
  for recompute in none attention; do
    rm -rf "$work/run"
    dsk-finetune train --base "$work/base" --data "$work/train.jsonl" --device cuda --precision bf16 \
      --steps "${STEPS:-30}" -o "$work/run" --set data.tokenizer="$work/tokenizer.json" --set data.seq_len=1024 \
      --set data.micro_batch=8 --set lora.r=16 --set lora.alpha=32 --set lora.dropout=0 \
      --set 'lora.target_modules=[all-linear]' --set eval.every=0 --set checkpoint.every=0 --set logging.every=1 \
      --set train.recompute=$recompute >"$OUT/bench-dsk-$recompute.yaml" 2>"$OUT/bench-dsk-$recompute.log"
    tps=$(python3 - "$work/run/metrics.jsonl" 2>>"$OUT/bench-dsk-$recompute.log" <<'PY'
import json, statistics, sys
steps = [json.loads(line) for line in open(sys.argv[1])]
print("%.0f" % statistics.median(step["tokens_per_s"] for step in steps[5:]))
PY
)
    gib=$(sed -n 's/.*peak device memory \([0-9.]*\) GiB.*/\1/p' "$OUT/bench-dsk-$recompute.log" | tail -1)
    line="$line dsk (recompute $recompute) ${tps:-?} tok/s ${gib:-?} GiB |"
    # The ratios below are of the first (fastest) configuration.
    [ "$recompute" = none ] && dsk_tps=${tps:-0} dsk_gib=${gib:-0}
  done
  for mode in "" --compile; do
    peft=$(python3 scripts/bench/finetune_gpu_peft.py "$work/base" --batch 8 --seq 1024 --rank 16 --alpha 32 \
      --steps 20 $mode 2>>"$OUT/bench-peft.log")
    echo "$peft" >>"$OUT/bench-peft.log"
    tps=$(echo "$peft" | sed -n 's/.*tokens_per_s \([0-9.]*\).*/\1/p')
    gib=$(echo "$peft" | sed -n 's/.*peak_gib \([0-9.]*\).*/\1/p')
    line="$line | $(echo "$peft" | cut -d' ' -f2) $tps tok/s $gib GiB: dsk x$(python3 -c "print(f'{$dsk_tps/$tps:.2f}')" 2>/dev/null) speed, x$(python3 -c "print(f'{$dsk_gib/$gib:.2f}')" 2>/dev/null) memory"
  done
  echo "$line" | tee "$OUT/bench.txt"
  note "bench" "see below"
fi

{
  echo "== dsk-finetune on the GPU"
  printf '%s\n' "${summary[@]}"
  [ -f "$OUT/bench.txt" ] && cat "$OUT/bench.txt"
} | tee "$OUT/finetune-gpu.txt"
