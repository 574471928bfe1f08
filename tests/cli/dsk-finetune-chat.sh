#!/usr/bin/env bash
# dsk-finetune on chat records: a tiny base whose tokenizer directory carries Qwen2's chat template
# (tests/fixtures/chat), LoRA trained on {"messages"} records made from the bundled set
# (assets/finetune), eval on chat records (loss and exact match of the last assistant turn), the
# same run through prompt/completion records for comparison, and the errors: a conversation with no
# assistant turn, and chat records for a base without a template.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
in_scratch_dir
make_shards
plain=$(make_tiny_base)
cp -r "$plain" chat-base
python3 - "$DSK_SOURCE_DIR/tests/fixtures/chat/qwen2/tokenizer_config.json" chat-base/tokenizer_config.json <<'PY'
import json, sys
template = json.load(open(sys.argv[1]))["chat_template"]
json.dump({"chat_template": template, "eos_token": "<|endoftext|>", "add_bos_token": False}, open(sys.argv[2], "w"))
PY

# The bundled prompt/completion set as conversations: the verse from the user, the book from the assistant.
assets="$DSK_SOURCE_DIR/assets/finetune"
to_chat() { python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(json.dumps({"messages": [{"role": "user", "content": r["prompt"]},
                                   {"role": "assistant", "content": r["completion"].strip()}]}))' "$1"; }
to_chat "$assets/train.jsonl" >train-chat.jsonl
head -12 "$assets/test.jsonl" >test.jsonl
to_chat test.jsonl >test-chat.jsonl

dsk-finetune train -q --base chat-base --data train-chat.jsonl --steps 4 --device cpu -o run \
  --set lora.r=4 --set data.seq_len=192 >adapter.yaml
[ "$(field kind adapter.yaml)" = adapter ] && [ "$(field step adapter.yaml)" = 4 ] || fail "record: $(cat adapter.yaml)"
python3 -c 'import math, sys; assert math.isfinite(float(sys.argv[1]))' "$(field train_loss adapter.yaml)" ||
  fail "train loss: $(cat adapter.yaml)"

dsk-finetune eval -q run/adapter --data test-chat.jsonl --json eval.json --max-new-tokens 4 >eval.yaml
[ "$(field kind eval.yaml)" = eval ] && [ "$(field examples eval.yaml)" = 12 ] || fail "eval record: $(cat eval.yaml)"
python3 - eval.json <<'PY' || fail "eval json: $(cat eval.json)"
import json, math, sys
e = json.load(open(sys.argv[1]))
assert math.isfinite(e["loss"]) and e["loss"] > 0 and 0 <= e["exact_match"] <= 1, e
# The loss is on the assistant turns and the end-of-turn text only: a few tokens per example, far
# fewer than the rendered conversations hold.
assert 0 < e["loss_tokens"] < 12 * 30, e
PY
# The same examples as prompt/completion records train fewer tokens: the completion and EOS,
# without the template's end-of-turn text.
dsk-finetune eval -q run/adapter --data test.jsonl --json plain.json --max-new-tokens 4 >/dev/null
python3 - eval.json plain.json <<'PY' || fail "chat vs plain loss tokens: $(cat eval.json plain.json)"
import json, sys
chat, plain = (json.load(open(p)) for p in sys.argv[1:])
assert chat["loss_tokens"] > plain["loss_tokens"], (chat["loss_tokens"], plain["loss_tokens"])
PY

echo '{"messages": [{"role": "user", "content": "hi"}]}' >no-assistant.jsonl
expect_error 3 "no-assistant.jsonl:1: nothing to train on" \
  dsk-finetune train --base chat-base --data no-assistant.jsonl --steps 1 --device cpu -o bad1
expect_error 3 "train-chat.jsonl:1: .*needs a chat template" \
  dsk-finetune train --base "$plain" --data train-chat.jsonl --steps 1 --device cpu -o bad2
expect_error 3 "test-chat.jsonl:1: .*needs a chat template" dsk-finetune eval run/adapter --base "$plain" --data test-chat.jsonl
echo ok
