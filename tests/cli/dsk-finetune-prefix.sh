#!/usr/bin/env bash
# dsk-finetune prefix tuning on a tiny llama (made by dsk-train): PEFT's flat keys, training with
# the reparameterisation MLP (its trainable count, the loss falling), the adapter saved folded in
# PEFT's PREFIX_TUNING layout, a SIGTERM and resume that ends bit-identical to a straight run, eval
# of the adapter (loss below the base's, generation through the KV cache), training without the
# MLP from the same config, and the errors:
# merge refuses a prefix adapter, a bad prefix length.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
in_scratch_dir
export OMP_NUM_THREADS=2  # the same reduction order in both runs of the resume check
make_shards
base=$(make_tiny_base)

assets="$DSK_SOURCE_DIR/assets/finetune"
head -12 "$assets/test.jsonl" >val.jsonl
printf '%s\n' "model_name: $base" "peft_method: prefix" "num_virtual_tokens: 8" "prefix_projection: true" \
  "encoder_hidden_size: 32" "batch_size: 4" "learning_rate: 1e-2" "warmup_steps: 1" \
  "data:" "  train: $assets/train.jsonl" "  val: val.jsonl" "  seq_len: 96" "steps: 6" \
  "eval:" "  every: 3" "checkpoint:" "  dir: run" "  every: 2" "logging:" "  every: 1" "device: cpu" >prefix.yaml

dsk-finetune train -c prefix.yaml --print-config >printed.yaml
grep -qx "# num_virtual_tokens -> prefix.num_virtual_tokens (prefix.yaml:3)" printed.yaml &&
  grep -qx "  num_virtual_tokens: 8" printed.yaml && grep -qx "  projection: true" printed.yaml &&
  grep -qx "  encoder_hidden_size: 32" printed.yaml && grep -qx "  method: prefix" printed.yaml ||
  fail "flat keys not mapped: $(cat printed.yaml)"

losses() { metric_lines "$1" loss grad_norm; }
dsk-finetune train -c prefix.yaml >straight.yaml 2>straight.err
# token_dim = 2 K/V heads x 8 = 16, 2 layers: the MLP 8x16 + 32x16 + 32 + 64x32 + 64 trained ...
[ "$(field peft_type straight.yaml)" = PREFIX_TUNING ] && [ "$(field num_virtual_tokens straight.yaml)" = 8 ] &&
  [ "$(field trainable_parameters straight.yaml)" = 2784 ] || fail "record: $(cat straight.yaml)"
grep -q "prefix tuning, 8 virtual tokens on 2 layers (reparameterised through an MLP of 32): 2784 trainable" straight.err ||
  fail "the trainable parameters are not reported: $(cat straight.err)"
# ... and saved folded: prompt_embeddings [8, 2 x 2 x 16], prefix_projection false.
python3 - run/adapter <<'PY' || fail "adapter: $(cat run/adapter/adapter_config.json)"
import json, struct, sys
c = json.load(open(sys.argv[1] + "/adapter_config.json"))
want = {"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 8, "token_dim": 16, "num_layers": 2,
        "num_attention_heads": 2, "num_transformer_submodules": 1, "prefix_projection": False, "task_type": "CAUSAL_LM"}
assert all(c[k] == v for k, v in want.items()), c
raw = open(sys.argv[1] + "/adapter_model.safetensors", "rb").read()
header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
header.pop("__metadata__", None)
assert list(header) == ["prompt_embeddings"] and header["prompt_embeddings"]["shape"] == [8, 64], header
PY
losses run/metrics.jsonl >straight.losses
python3 - straight.losses <<'PY' || fail "the training loss did not fall: $(cat straight.losses)"
import sys
rows = [line.split() for line in open(sys.argv[1])]
assert len(rows) == 6 and float(rows[-1][1]) < float(rows[0][1]), rows
PY
cp run/adapter/adapter_model.safetensors straight.safetensors
mv run straight

# SIGTERM after a few steps, then the same command resumes: the same losses, the same adapter bytes
# (the checkpoint keeps the MLP in the optimizer state; the adapter files hold its folded output).
stop_after_lines 3 run/metrics.jsonl dsk-finetune train -q -c prefix.yaml
dsk-finetune train -q -c prefix.yaml >resumed.yaml
losses run/metrics.jsonl | diff straight.losses - || fail "losses differ after the resume"
cmp straight.safetensors run/adapter/adapter_model.safetensors || fail "the resumed adapter differs"
[ "$(field val_loss straight.yaml)" = "$(field val_loss resumed.yaml)" ] || fail "val_loss differs"

# eval of the adapter (the base named in its config) and of the base alone: the prefix helps.
dsk-finetune eval - --data val.jsonl --max-new-tokens 2 --device cpu -q <straight.yaml >eval.yaml
[ "$(field kind eval.yaml)" = eval ] && [ "$(field examples eval.yaml)" = 12 ] || fail "eval: $(cat eval.yaml)"
dsk-finetune eval "$base" --data val.jsonl --max-new-tokens 1 --device cpu -q >base-eval.yaml
python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); assert a < b, (a, b)" \
  "$(field loss eval.yaml)" "$(field loss base-eval.yaml)" ||
  fail "the adapter's loss $(field loss eval.yaml) is not below the base's $(field loss base-eval.yaml)"

# Without the MLP: the prefixes themselves are trained (P x num_layers x 2 x token_dim).
dsk-finetune train -q -c prefix.yaml --set prefix.projection=false --steps 2 -o plain >plain.yaml
[ "$(field trainable_parameters plain.yaml)" = 512 ] || fail "plain prefix record: $(cat plain.yaml)"

expect_error 2 "prefix-tuning adapter cannot be merged" dsk-finetune merge "$base" straight/adapter -o merged
[ ! -e merged ] || fail "a refused merge left its output"
expect_error 2 "num_virtual_tokens" dsk-finetune train -c prefix.yaml --set prefix.num_virtual_tokens=0 -o bad
echo ok
