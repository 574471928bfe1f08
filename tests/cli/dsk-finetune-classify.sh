#!/usr/bin/env bash
# dsk-finetune eval --labels: the bundled set (assets/finetune: which book a KJV verse is from) as a
# classification task over its six book names, scored by a LoRA adapter on a tiny base: the eval
# record's accuracy and macro-F1, the JSON's confusion matrix (every example predicted as one of
# the labels; accuracy and macro-F1 recomputed from the matrix here), the table, --limit, and the
# errors (a gold label outside the set: exit 3 naming the line; one label: exit 2).
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
in_scratch_dir
make_shards
base=$(make_tiny_base)
assets="$DSK_SOURCE_DIR/assets/finetune"
dsk-finetune train -q --base "$base" --data "$assets/train.jsonl" --steps 6 --device cpu -o run \
  --set lora.r=4 --set data.seq_len=160 >adapter.yaml

books=" Genesis, Exodus, Psalms, Proverbs, Matthew, John"
dsk-finetune eval run/adapter --data "$assets/test.jsonl" --labels "$books" --max-new-tokens 1 --json eval.json \
  >eval.yaml 2>table.txt
[ "$(field kind eval.yaml)" = eval ] && [ "$(field labels eval.yaml)" = 6 ] || fail "eval record: $(cat eval.yaml)"
grep -q "^classification" table.txt && grep -q "Proverbs" table.txt || fail "table: $(cat table.txt)"
python3 - eval.json "$(field accuracy eval.yaml)" "$(field macro_f1 eval.yaml)" <<'PY' || fail "classification: $(cat eval.json)"
import json, sys
c = json.load(open(sys.argv[1]))["classification"]
m = c["confusion"]
labels = c["labels"]
assert labels == [" Genesis", " Exodus", " Psalms", " Proverbs", " Matthew", " John"], labels
assert len(m) == 6 and all(len(row) == 6 for row in m), m
assert sum(map(sum, m)) == 60, m                      # every example predicted, as one of the labels
assert [sum(row) for row in m] == [10] * 6, m          # the gold labels: ten verses of each book
correct = sum(m[i][i] for i in range(6))
assert abs(c["accuracy"] - correct / 60) < 1e-12 and abs(float(sys.argv[2]) - correct / 60) < 1e-6, c
f1s = []
for i in range(6):
    predicted, gold = sum(m[g][i] for g in range(6)), sum(m[i])
    if predicted == 0 and gold == 0:
        continue
    p = m[i][i] / predicted if predicted else 0.0
    r = m[i][i] / gold if gold else 0.0
    f1s.append(2 * p * r / (p + r) if p + r else 0.0)
macro = sum(f1s) / len(f1s)
assert abs(c["macro_f1"] - macro) < 1e-9 and abs(float(sys.argv[3]) - macro) < 1e-6, (c["macro_f1"], macro)
PY

# --limit: only the first N examples are classified.
dsk-finetune eval -q run/adapter --data "$assets/test.jsonl" --labels "$books" --limit 12 --max-new-tokens 1 \
  --json limited.json >/dev/null
python3 -c 'import json, sys; m = json.load(open(sys.argv[1]))["classification"]["confusion"]; assert sum(map(sum, m)) == 12, m' \
  limited.json || fail "--limit: $(cat limited.json)"

# The same task as chat records (the gold label the last assistant message, matched without
# surrounding whitespace) needs a chat template: without one, exit 3 naming the line.
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(json.dumps({"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"].strip()}]}))' \
  "$assets/test.jsonl" >chat.jsonl
expect_error 3 "chat.jsonl:1: .*chat template" dsk-finetune eval run/adapter --data chat.jsonl --labels "$books"
expect_error 3 "test.jsonl:[0-9]*: gold label ' [A-Za-z]*' is not one of the labels" \
  dsk-finetune eval run/adapter --data "$assets/test.jsonl" --labels " Genesis, John"
expect_error 2 "at least two labels" dsk-finetune eval run/adapter --data "$assets/test.jsonl" --labels " Genesis"
expect_error 2 "without surrounding whitespace" dsk-finetune eval run/adapter --data "$assets/test.jsonl" --labels "John, John "
echo ok
