#!/usr/bin/env bash
# dsk-finetune select and classify on a real (tiny) checkpoint and the bundled set
# (assets/finetune): select keeps the N most uncertain records, each with its score, in order
# (entropy: highest first; margin: lowest first), unlabelled prompts too; classify predicts one of
# the labels per record and its confusion matrix is eval --labels' for the same model.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
in_scratch_dir
make_shards
base=$(make_tiny_base)
head -18 "$DSK_SOURCE_DIR/assets/finetune/test.jsonl" >test.jsonl

sorted_scores() {  # FILE COUNT ORDER: COUNT records, each with a score, sorted (desc or asc)
  python3 - "$@" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
scores = [r["score"] for r in rows]
assert len(rows) == int(sys.argv[2]), rows
assert all("prompt" in r for r in rows), rows
assert scores == sorted(scores, reverse=sys.argv[3] == "desc"), scores
PY
}
dsk-finetune select -q -m "$base" -n 5 --device cpu test.jsonl >entropy.jsonl
sorted_scores entropy.jsonl 5 desc || fail "entropy: $(cat entropy.jsonl)"
dsk-finetune select -q -m "$base" -n 5 --measure margin --device cpu -o margin.jsonl test.jsonl >selection.yaml
sorted_scores margin.jsonl 5 asc || fail "margin: $(cat margin.jsonl)"
[ "$(field kind selection.yaml)" = selection ] && [ "$(field scored selection.yaml)" = 18 ] || fail "record: $(cat selection.yaml)"
# Unlabelled prompts from stdin: scored at the next token.
python3 -c 'import json, sys
for line in open(sys.argv[1]): print(json.dumps({"prompt": json.loads(line)["prompt"]}))' test.jsonl |
  dsk-finetune select -q -m "$base" -n 3 --device cpu - >unlabelled.jsonl
sorted_scores unlabelled.jsonl 3 desc || fail "unlabelled: $(cat unlabelled.jsonl)"

# classify: the gold label in "label"; the same confusion matrix as eval --labels on the checkpoint.
books=" Genesis, Exodus, Psalms, Proverbs, Matthew, John"
python3 -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line); r["label"] = r.pop("completion"); print(json.dumps(r))' test.jsonl >labelled.jsonl
dsk-finetune classify -q -m "$base" --labels "$books" --device cpu --metrics metrics.json labelled.jsonl >predictions.jsonl
[ "$(wc -l <predictions.jsonl)" = 18 ] || fail "predictions: $(cat predictions.jsonl)"
dsk-finetune eval -q "$base" --data test.jsonl --labels "$books" --max-new-tokens 1 --device cpu --json eval.json >/dev/null
python3 - metrics.json eval.json predictions.jsonl <<'PY' || fail "classify vs eval: $(cat metrics.json eval.json)"
import json, sys
metrics, evaluation = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))["classification"]
assert metrics["confusion"] == evaluation["confusion"], (metrics["confusion"], evaluation["confusion"])
assert abs(metrics["macro_f1"] - evaluation["macro_f1"]) < 1e-12
labels = [" Genesis", " Exodus", " Psalms", " Proverbs", " Matthew", " John"]
assert all(json.loads(line)["prediction"] in labels for line in open(sys.argv[3]))
PY
echo ok
