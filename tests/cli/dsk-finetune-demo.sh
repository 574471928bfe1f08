#!/usr/bin/env bash
# dsk-finetune end to end at demo size: a tiny llama made by dsk-train (with the tiny GPT-2
# fixture tokenizer), LoRA on the bundled instruction set (assets/finetune: which book a KJV verse
# is from), the flat config keys users write, a resume that ends bit-identical to a run that never
# stopped, eval (record, table, --json), merge into a plain checkpoint that dsk-train sample loads
# and that gives the adapter's loss, and the errors of bad input.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMP_NUM_THREADS=2  # the same reduction order in both runs of the resume check
make_shards

# The base: a tiny llama after two steps of dsk-train (its checkpoint carries the tokenizer).
base=$(make_tiny_base)
[ -f "$base/tokenizer.json" ] || fail "the base checkpoint has no tokenizer"

assets="$DSK_SOURCE_DIR/assets/finetune"
head -24 "$assets/test.jsonl" >val.jsonl
printf '%s\n' "model_name: $base" "peft_method: lora" "lora_r: 4" "lora_alpha: 16" "lora_dropout: 0.1" \
  "batch_size: 4" "gradient_accumulation_steps: 2" "learning_rate: 3e-3" "warmup_steps: 2" \
  "data:" "  train: $assets/train.jsonl" "  val: val.jsonl" "  seq_len: 160" "steps: 8" \
  "eval:" "  every: 4" "checkpoint:" "  dir: run" "  every: 3" "logging:" "  every: 1" \
  "device: cpu" >lora.yaml  # the reference backend, also on a machine with a GPU: exact comparisons below

# --print-config: the flat keys say where they went, and the printed config reads back the same.
dsk-finetune train -c lora.yaml --print-config >printed.yaml
grep -qx "# lora_r -> lora.r (lora.yaml:3)" printed.yaml || fail "mapping not shown: $(head -12 printed.yaml)"
grep -qx "  r: 4" printed.yaml && grep -qx "  micro_batch: 4" printed.yaml && grep -qx "  lr: 0.003" printed.yaml ||
  fail "flat keys not mapped: $(cat printed.yaml)"
dsk-finetune train -c printed.yaml --print-config | grep -v '^#' >reprinted.yaml
grep -v '^#' printed.yaml | diff - reprinted.yaml || fail "--print-config does not read back"

# The bundled example (configs/finetune-lora.yaml: flat keys, packing) trains as written, on this base.
dsk-finetune train -q -c "$DSK_SOURCE_DIR/configs/finetune-lora.yaml" --base "$base" --steps 2 -o example \
  --set eval.every=0 --set data.seq_len=128 --device cpu >example.yaml || fail "configs/finetune-lora.yaml does not train"
[ "$(field kind example.yaml)" = adapter ] && [ -f example/adapter/adapter_config.json ] ||
  fail "configs/finetune-lora.yaml: $(cat example.yaml)"

# The straight run.
losses() { metric_lines "$1" loss grad_norm lr; }
dsk-finetune train -q -c lora.yaml >straight.yaml
[ "$(field kind straight.yaml)" = adapter ] && [ "$(field step straight.yaml)" = 8 ] || fail "record: $(cat straight.yaml)"
[ "$(field peft_type straight.yaml)" = LORA ] && [ "$(field r straight.yaml)" = 4 ] || fail "record: $(cat straight.yaml)"
[ "$(field trainable_parameters straight.yaml)" = 4096 ] || fail "trainable parameters: $(cat straight.yaml)"
[ "$(field path straight.yaml)" = run/adapter ] && [ -f run/adapter/adapter_config.json ] &&
  [ -f run/adapter/adapter_model.safetensors ] || fail "adapter directory: $(ls -R run)"
# Checkpoints hold the adapter and the optimizer state, not the base.
[ "$(ls run/checkpoints/step-000008 | tr '\n' ' ')" = "adapter_config.json adapter_model.safetensors dsk " ] ||
  fail "checkpoint contents: $(ls run/checkpoints/step-000008)"
python3 - run/adapter/adapter_config.json <<'PY' || fail "adapter_config.json: $(cat run/adapter/adapter_config.json)"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["peft_type"] == "LORA" and c["r"] == 4 and c["lora_alpha"] == 16 and c["lora_dropout"] == 0.1, c
assert sorted(c["target_modules"]) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"], c
PY
losses run/metrics.jsonl >straight.losses
python3 - straight.losses <<'PY' || fail "the training loss did not fall: $(cat straight.losses)"
import sys
rows = [line.split() for line in open(sys.argv[1])]
first, last = float(rows[0][1]), sum(float(r[1]) for r in rows[-3:]) / 3
assert len(rows) == 8 and last < first, (first, last)
PY
cp run/adapter/adapter_model.safetensors straight.safetensors
mv run straight

# Interrupted by SIGTERM after a few steps, then resumed by the same command: the same losses and
# the same adapter bytes.
stop_after_lines 3 run/metrics.jsonl dsk-finetune train -q -c lora.yaml
[ "$(field interrupted interrupted.yaml)" = true ] && [ -f "$(field path interrupted.yaml)/adapter_config.json" ] ||
  fail "interrupted record: $(cat interrupted.yaml)"
dsk-finetune train -q -c lora.yaml >resumed.yaml
losses run/metrics.jsonl | diff straight.losses - || fail "losses differ after the resume"
cmp straight.safetensors run/adapter/adapter_model.safetensors || fail "the resumed adapter differs"
[ "$(field val_loss straight.yaml)" = "$(field val_loss resumed.yaml)" ] || fail "val_loss differs"

# eval: a record on stdout, a table on stderr, JSON on request.
dsk-finetune eval - --data val.jsonl --limit 6 --max-new-tokens 3 --json eval.json --device cpu <straight.yaml \
  >eval.yaml 2>eval.err || fail "eval: $(cat eval.err)"
[ "$(field kind eval.yaml)" = eval ] && [ "$(field examples eval.yaml)" = 6 ] || fail "eval record: $(cat eval.yaml)"
grep -q "time to first token" eval.err || fail "eval table: $(cat eval.err)"
python3 - eval.json <<'PY' || fail "eval.json: $(cat eval.json)"
import json, math, sys
r = json.load(open(sys.argv[1]))
assert r["examples"] == 6 and r["loss_tokens"] > 0 and math.isfinite(r["loss"]) and 0 <= r["exact_match"] <= 1, r
assert r["latency"]["first_token"]["samples"] == 6 and r["latency"]["per_token"]["p95_ms"] >= r["latency"]["per_token"]["p50_ms"]
PY

# merge: a plain checkpoint (F32, so that it gives the adapter's very loss), sampled by dsk-train.
dsk-finetune merge "$base" - -o merged --dtype F32 <straight.yaml >merged.yaml
[ "$(field kind merged.yaml)" = checkpoint ] && [ -f merged/model.safetensors ] && [ -f merged/tokenizer.json ] ||
  fail "merge: $(cat merged.yaml)"
dsk-train sample merged -p "Verse: In the beginning" -n 5 --temperature 0 >sample.txt && [ -s sample.txt ] ||
  fail "dsk-train sample of the merged checkpoint"
dsk-finetune eval merged --data val.jsonl --limit 6 --max-new-tokens 1 --device cpu -q >merged-eval.yaml
python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); assert abs(a - b) <= 1e-4 * abs(a), (a, b)" \
  "$(field loss eval.yaml)" "$(field loss merged-eval.yaml)" || fail "merged loss differs from the adapter's"

# Bottleneck adapters: the same loop and files, another method.
dsk-finetune train -q -c lora.yaml --set peft.method=bottleneck --set bottleneck.size=8 --steps 2 -o adapters \
  >bottleneck.yaml
[ "$(field peft_type bottleneck.yaml)" = BOTTLENECK ] && [ "$(field trainable_parameters bottleneck.yaml)" = 2208 ] ||
  fail "bottleneck record: $(cat bottleneck.yaml)"
grep -q '"peft_type": "BOTTLENECK"' adapters/adapter/adapter_config.json || fail "bottleneck adapter_config.json"
dsk-finetune eval adapters/adapter --data val.jsonl --limit 2 --max-new-tokens 1 --device cpu -q >bottleneck-eval.yaml
[ "$(field kind bottleneck-eval.yaml)" = eval ] || fail "bottleneck eval: $(cat bottleneck-eval.yaml)"

# Bad input: clear errors and exit codes.
echo '{"messages": [{"role": "user", "content": "hi"}]}' >chat.jsonl
expect_error 3 "chat.jsonl:1: nothing to train on" dsk-finetune train -c lora.yaml --data chat.jsonl -o bad1
echo '{"prompt": 1, "completion": "x"}' >typed.jsonl
expect_error 3 "typed.jsonl:1: field 'prompt': expected a string" dsk-finetune train -c lora.yaml --data typed.jsonl -o bad2
{ cat lora.yaml; printf 'lora:\n  r: 8\n'; } >both.yaml  # a flat key and its nested key disagree in one file
expect_error 2 "lora_r and lora.r" dsk-finetune train -c both.yaml -o bad3
expect_error 3 "no such" dsk-finetune train -c lora.yaml --base nowhere/ -o bad4
expect_error 2 "match no Linear" dsk-finetune train -c lora.yaml --set 'lora.target_modules=[lm_head]' -o bad5
expect_error 3 "adapter_config.json" dsk-finetune merge "$base" "$base" -o bad6
expect_error 2 "not dsk-finetune's" dsk-finetune train -c lora.yaml -o base-run
[ ! -e bad6 ] || fail "a failed merge left its output"
expect_error 3 "is not LORA" dsk-finetune merge "$base" adapters/adapter -o bad7
echo ok
