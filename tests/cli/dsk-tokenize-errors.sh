#!/usr/bin/env bash
# dsk-tokenize on bad input: the exit codes of dsk(7), a message naming the place, counts in the
# record and index for --on-error skip|replace, and nothing written on failure.
set -euo pipefail
source "$(dirname "$0")/lib/test-helpers.sh"
require_tool dsk-tokenize
use_deepseek_tokenizer
in_scratch_dir

printf 'fine\n' >ok.txt
printf '{"text": "one"}\n{"text": "two\n[1]\n{"other": 1}\n{"text": "five"}\n' >bad.jsonl
printf 'line one\nline \377two\n' >bad-utf8.txt
printf '{"text": "caf\303"}\n{"text": "ok"}\n' >bad-utf8.jsonl

# Usage errors: exit 2.
expect 2 "no-such-flag" dsk-tokenize --no-such-flag
expect 2 "no tokenizer" dsk-tokenize -o out ok.txt
expect 2 "no output" dsk-tokenize -t "$tokenizer" ok.txt
expect 2 "on-error" dsk-tokenize -t "$tokenizer" -o out --on-error ignore ok.txt
expect 2 "val_fraction" dsk-tokenize -t "$tokenizer" -o out --val-fraction 1.5 ok.txt
expect 2 "shard_tokens" dsk-tokenize -t "$tokenizer" -o out --shard-size lots ok.txt
printf 'output:\n  dir: out\n  shard_tokens: lots\n' >bad-size.yaml
expect 2 "bad-size.yaml:3: output.shard_tokens: expected a size" dsk-tokenize -t "$tokenizer" -c bad-size.yaml ok.txt
expect 2 "unknown key 'split.fraction'" dsk-tokenize -t "$tokenizer" -o out --set split.fraction=0.1 ok.txt
[ ! -e out ] || fail "a usage error wrote output"

# Missing parents of the output directory are made, as mkdir -p would (make demo writes runs/demo/shards).
dsk-tokenize -q -t "$tokenizer" -o new/parents/out ok.txt >/dev/null
[ -f new/parents/out/index.yaml ] || fail "-o new/parents/out: $(ls -R new)"

# An existing output directory: refused (2) unless --force, which replaces it whole.
mkdir existing && touch existing/keep
expect 2 "already exists" dsk-tokenize -t "$tokenizer" -o existing ok.txt
[ -f existing/keep ] || fail "refusal touched the directory"
dsk-tokenize -q -t "$tokenizer" -o existing --force ok.txt >/dev/null
[ -f existing/index.yaml ] && [ ! -e existing/keep ] || fail "--force: $(ls existing)"

# Missing and unreadable input, corrupt .zst: bad data, exit 3, nothing written.
expect 3 "missing.txt" dsk-tokenize -t "$tokenizer" -o out missing.txt
head -c 40 "${DSK_SOURCE_DIR}/assets/corpus/kjv.txt.zst" >cut.txt.zst
expect 3 "cut.txt.zst: truncated zstd" dsk-tokenize -t "$tokenizer" -o out cut.txt.zst
[ ! -e out ] && [ -z "$(ls -d out.tmp-* 2>/dev/null)" ] || fail "a failed run left output"

# A bad JSONL line: fail (the default) stops at the first with its line; skip and replace go on and count.
expect 3 "bad.jsonl:2: bad JSON" dsk-tokenize -t "$tokenizer" -o out bad.jsonl
expect 3 "on-error" dsk-tokenize -t "$tokenizer" -o out --on-error fail bad.jsonl
for policy in skip replace; do
  expect 0 "bad.jsonl:4: no field \"text\"" dsk-tokenize -t "$tokenizer" -o "jsonl-$policy" --on-error $policy bad.jsonl
  [ "$(field documents out.txt)" = 2 ] || fail "$policy documents: $(cat out.txt)"
  [ "$(field bad_records out.txt)" = 3 ] || fail "$policy bad_records"
  [ "$(field skipped out.txt)" = 3 ] || fail "$policy skipped"
  grep -q "bad_records: 3" "jsonl-$policy/index.yaml" || fail "$policy index counts"
  grep -q "bad.jsonl:3: not a JSON object" err.txt || fail "line 3 not reported"
done

# Bad input in one file while the next input is a pipe that stays open and silent: the error ends
# the run at once (the reader thread, blocked on the pipe, is not waited for; 124/137: it hung).
mkfifo open-pipe
exec 3<>open-pipe
code=0
timeout -k 5 60 dsk-tokenize -t "$tokenizer" -o out bad.jsonl - <open-pipe >/dev/null 2>err.txt || code=$?
exec 3>&-
[ "$code" = 3 ] && grep -q "bad.jsonl:2: bad JSON" err.txt || fail "bad input before an open pipe: exit $code: $(cat err.txt)"

# A number too large for a double is bad JSON like any other (it was an internal error, exit 1).
printf '{"text": "fine"}\n{"text": "big", "score": 1e400}\n' >overflow.jsonl
expect 3 "overflow.jsonl:2: bad JSON: number overflow parsing '1e400'" dsk-tokenize -t "$tokenizer" -o out overflow.jsonl
expect 0 "overflow.jsonl:2: bad JSON: number overflow" dsk-tokenize -t "$tokenizer" -o overflow --on-error skip overflow.jsonl
[ "$(field documents out.txt)" = 1 ] && [ "$(field bad_records out.txt)" = 1 ] || fail "overflow counts: $(cat out.txt)"

# Invalid UTF-8: fail names file, line and column; replace keeps the document with U+FFFD; skip drops it.
expect 3 "bad-utf8.txt:2: invalid UTF-8 (byte 0xFF at column 6)" dsk-tokenize -t "$tokenizer" -o out bad-utf8.txt
expect 3 "bad-utf8.jsonl:1: invalid UTF-8" dsk-tokenize -t "$tokenizer" -o out bad-utf8.jsonl
expect 0 "replaced by U+FFFD" dsk-tokenize -t "$tokenizer" -o utf8-replace --on-error replace bad-utf8.txt bad-utf8.jsonl
[ "$(field invalid_utf8 out.txt)" = 2 ] && [ "$(field replaced out.txt)" = 2 ] || fail "replace counts: $(cat out.txt)"
[ "$(field documents out.txt)" = 3 ] || fail "replace documents"
dsk-tokenize -q decode --jsonl utf8-replace >decoded.jsonl
python3 -c '
import json
texts = [json.loads(l)["text"] for l in open("decoded.jsonl", encoding="utf-8")]
assert texts == ["line one\nline \ufffdtwo\n", "caf\ufffd", "ok"], texts' || fail "replaced text"
expect 0 "skipped" dsk-tokenize -t "$tokenizer" -o utf8-skip --on-error skip bad-utf8.txt bad-utf8.jsonl
[ "$(field documents out.txt)" = 1 ] && [ "$(field skipped out.txt)" = 2 ] || fail "skip counts: $(cat out.txt)"

# Everything skipped: no documents is bad data.
expect 3 "no documents" dsk-tokenize -t "$tokenizer" -o out --on-error skip bad-utf8.txt

# stats and decode on damaged shards: exit 3 naming the file.
dsk-tokenize -q -t "$tokenizer" -o good ok.txt >/dev/null
cp -r good damaged && printf 'XXXX' | dd of=damaged/train-00000.tok conv=notrunc status=none
expect 3 "train-00000.tok: not a dsk token shard" dsk-tokenize stats damaged
cp -r good short && truncate -s -4 short/train-00000.tok
expect 3 "truncated" dsk-tokenize stats short
expect 3 "index.yaml" dsk-tokenize stats "$work"
expect 2 "is a checkpoint" sh -c 'printf "kind: checkpoint\npath: x\n" | dsk-tokenize stats -'
echo ok
