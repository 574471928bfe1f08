#!/usr/bin/env bash
# The bundled corpus (assets/corpus/kjv.txt.zst) tokenized with 1, 2 and 4 threads and small
# shards gives identical bytes: shards and index. Decoding gives the corpus back exactly. The same
# for a JSONL corpus made from it (4.5 MB: several of the reader's chunks, so documents, errors
# and line numbers cross chunk boundaries) with bad lines skipped, on 1, 3 and 8 threads.
set -euo pipefail
source "$(dirname "$0")/lib/test-helpers.sh"
require_tool dsk-tokenize
use_deepseek_tokenizer
corpus="$DSK_SOURCE_DIR/assets/corpus/kjv.txt.zst"
in_scratch_dir

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

# JSONL: escaped and raw non-ASCII text, nested fields, blank lines, empty texts, and bad lines
# (bad JSON, a number, invalid UTF-8) whose warnings must come in input order.
zstd -dc "$corpus" | python3 -c '
import json, sys
chapters = sys.stdin.read().rstrip("\n").split("\n\n")
out = sys.stdout.buffer
for i, chapter in enumerate(chapters):
    text = chapter + (" café — 日本語 🙂 \u00a0" if i % 3 == 0 else "")
    record = {"id": i, "meta": {"tags": ["kjv", i % 7], "ratio": i / 8}, "text": text}
    out.write(json.dumps(record, ensure_ascii=i % 2 == 0).encode() + b"\n")
    if i % 97 == 5: out.write(b"\n")
    if i % 101 == 7: out.write(b"{\"text\": \"unterminated\n")
    if i % 103 == 9: out.write(b"{\"text\": 42}\n")
    if i % 107 == 11: out.write(b"{\"text\": \"caf\xc3 au lait\"}\n")
    if i % 109 == 13: out.write(b"{\"text\": \"\"}\n")' >corpus.jsonl
for threads in 1 3 8; do
  dsk-tokenize -t "$tokenizer" -o "j$threads" --on-error skip --val-fraction 0.1 --seed 3 --shard-size 300K \
    --threads "$threads" corpus.jsonl 2>&1 >"j$threads.yaml" | grep "warning:" >"j$threads.err"
done
diff -r j1 j3 >/dev/null || fail "JSONL: 1 vs 3 threads differ"
diff -r j1 j8 >/dev/null || fail "JSONL: 1 vs 8 threads differ"
diff j1.err j8.err || fail "JSONL: warnings differ between 1 and 8 threads"
[ "$(sed -n 's/^documents: //p' j1.yaml)" = 1189 ] || fail "JSONL documents: $(cat j1.yaml)"
[ "$(grep -c "^\(skipped: 36\|empty: 11\|invalid_utf8: 12\|bad_records: 24\)$" j1.yaml)" = 4 ] || fail "JSONL counts: $(cat j1.yaml)"
[ "$(ls j1/train-*.tok | wc -l)" -gt 2 ] || fail "JSONL: expected several train shards"
grep -q "corpus.jsonl:[0-9]*: invalid UTF-8 (byte 0xC3 at column 14); skipped" j1.err || fail "JSONL warnings: $(cat j1.err)"
echo ok
