#!/usr/bin/env bash
# The GPU parity tests, on the GPU machine, after scripts/device/build-on-device.sh, with .carry/gpu-data carried:
#   scripts/device/gpu-tests.sh
#  1. every tests/gpu binary: each CUDA op against its CPU reference, the CUDA model against the CPU
#     model on the HF fixtures (fp32 1e-4, bf16 loss 1%), generation, AdamW;
#  2. tests/cli/dsk-train-resume.sh with device cuda: an interrupted and resumed GPU run is
#     bit-identical to an uninterrupted one;
#  3. the demo config (configs/tiny-deepseek.yaml) trained 200 steps on CUDA (bf16) and on the CPU
#     from the same init: final validation losses within 2% of each other;
#  4. checkpoints cross devices: a GPU run resumed on the CPU and a CPU run resumed on the GPU go
#     on to their last step, and `dsk-train eval` of one checkpoint on both devices agrees (fp32);
#  5. out of GPU memory (a micro-batch of 2M tokens of dense-124m) is exit 4 with the sizes.
# Writes $OUT/gpu-tests.txt (and each binary's log); prints a summary table last.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-gpu-tests}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"  # scripts/device/build-on-device.sh
data="$PWD/.carry/gpu-data"            # scripts/device/pack-gpu-data.sh
export PATH="$build/tools:$data/bin:$PATH" DSK_SOURCE_DIR="$PWD"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
summary=()
parts=" ${PARTS:-ops resume demo interchange oom} "

if [[ $parts == *" ops "* ]]; then
  for test in "$build"/tests/gpu/dsk_gpu_${ONLY:-*}; do  # ONLY=moe runs dsk_gpu_moe alone
    name=$(basename "$test")
    start=$(date +%s)
    "$test" >"$OUT/$name.log" 2>&1
    code=$?
    summary+=("$(printf '%-26s %s (%ss)' "$name" "$([ $code = 0 ] && echo pass || echo "FAIL $code")" $(( $(date +%s) - start )))")
    [ $code = 0 ] || tail -40 "$OUT/$name.log"
  done
fi

if [[ $parts == *" resume "* ]]; then
  start=$(date +%s)
  bash tests/cli/dsk-train-resume.sh >"$OUT/resume.log" 2>&1
  code=$?
  summary+=("$(printf '%-26s %s (%ss)' "resume bit-exact (cuda)" "$([ $code = 0 ] && echo pass || echo "FAIL $code")" $(( $(date +%s) - start )))")
  [ $code = 0 ] || tail -20 "$OUT/resume.log"
fi

if [[ $parts == *" demo "* ]]; then
  work=$(mktemp -d)
  dsk-tokenize -q -t "$data/tokenizer/tokenizer.json" -o "$work/shards" --documents paragraph --val-fraction 0.05 \
    --seed 0 assets/corpus/kjv.txt.zst >/dev/null
  for device in cuda cpu; do
    start=$(date +%s)
    dsk-train -q -c configs/tiny-deepseek.yaml --set data.train="[$work/shards]" --set device=$device \
      -o "$work/demo-$device" >"$work/demo-$device.yaml" 2>"$OUT/demo-$device.log"
    echo "$device: $(sed -n 's/^val_loss: //p' "$work/demo-$device.yaml") in $(( $(date +%s) - start ))s" | tee -a "$OUT/demo.txt"
  done
  verdict=$(python3 - "$work/demo-cuda.yaml" "$work/demo-cpu.yaml" <<'PY'
import sys
val = [float(next(l.split()[1] for l in open(p) if l.startswith("val_loss:"))) for p in sys.argv[1:]]
gap = abs(val[0] - val[1]) / val[1]
print(f"{'pass' if gap <= 0.02 else 'FAIL'} (cuda {val[0]:.4f} cpu {val[1]:.4f}, {100 * gap:.2f}% apart)")
PY
)
  summary+=("$(printf '%-26s %s' "demo 200 steps cuda~cpu" "$verdict")")
  for device in cuda cpu; do cp "$work/demo-$device/metrics.jsonl" "$OUT/demo-$device.metrics.jsonl"; done
fi

if [[ $parts == *" interchange "* ]]; then
  work=$(mktemp -d)
  (
    set -e
    cd "$work"
    source "$DSK_SOURCE_DIR/tests/cli/lib/train-fixture.sh"
    make_shards
    write_config base.yaml deepseek_v3
    for pair in "cuda cpu" "cpu cuda"; do
      read -r first second <<<"$pair"
      dsk-train -q -c base.yaml --device "$first" --steps 20 -o "run-$first" >/dev/null
      dsk-train -q -c base.yaml --device "$second" --steps 30 -o "run-$first" >"resumed-$first.yaml"
      [ "$(field step "resumed-$first.yaml")" = 30 ] || fail "$first -> $second: $(cat "resumed-$first.yaml")"
    done
    checkpoint=$(field path resumed-cuda.yaml)
    for device in cpu cuda; do
      dsk-train eval "$checkpoint" --data shards --device "$device" --precision fp32 --seq-len 32 --batches 4 >"eval-$device.yaml"
    done
    python3 - eval-cpu.yaml eval-cuda.yaml <<'PY'
import sys
loss = [float(next(l.split()[1] for l in open(p) if l.startswith("val_loss:"))) for p in sys.argv[1:]]
assert abs(loss[0] - loss[1]) <= 1e-4 * abs(loss[0]), f"eval cpu {loss[0]} cuda {loss[1]}"
print(f"eval cpu {loss[0]:.6f} cuda {loss[1]:.6f}")
PY
  ) >"$OUT/interchange.log" 2>&1
  code=$?
  summary+=("$(printf '%-26s %s' "checkpoints cpu<->cuda" "$([ $code = 0 ] && echo "pass ($(tail -1 "$OUT/interchange.log"))" || echo "FAIL $code")")")
  [ $code = 0 ] || tail -20 "$OUT/interchange.log"
fi

if [[ $parts == *" oom "* ]]; then
  work=$(mktemp -d)
  cp tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json "$work/"
  echo '{"eos_token": "<|endoftext|>"}' >"$work/tokenizer_config.json"
  dsk-tokenize -q -t "$work/tokenizer.json" -o "$work/shards" --val-fraction 0 assets/corpus/kjv.txt.zst >/dev/null
  code=0
  dsk-train -q --set model.config_json="$data/shapes/dense-124m/config.json" --set data.train="[$work/shards]" \
    --set data.seq_len=1024 --set data.micro_batch=2048 --set steps=1 --device cuda -o "$work/run" \
    >/dev/null 2>"$OUT/oom.log" || code=$?
  verdict="FAIL (exit $code: $(head -c 300 "$OUT/oom.log"))"
  [ $code = 4 ] && grep -q "out of GPU memory" "$OUT/oom.log" && verdict="pass ($(head -c 160 "$OUT/oom.log"))"
  summary+=("$(printf '%-26s %s' "out of GPU memory exit 4" "$verdict")")
fi

echo "== summary" | tee "$OUT/gpu-tests.txt"
printf '%s\n' "${summary[@]}" | tee -a "$OUT/gpu-tests.txt"
