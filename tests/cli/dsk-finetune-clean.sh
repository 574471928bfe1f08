#!/usr/bin/env bash
# dsk-finetune clean as a pipe stage: each drop reason counted in the report, kept records in order
# and byte for byte, stdin to stdout, lengths in characters and tokens, and the exit codes of dsk(7).
set -euo pipefail
source "$(dirname "$0")/lib/test-helpers.sh"
require_tool dsk-finetune
tokenizer_dir="${DSK_SOURCE_DIR:?}/tests/fixtures/tokenizer/tiny-gpt2"
in_scratch_dir

{
  printf '{"prompt": "2+2?", "completion": "4", "id": 1}\n'
  printf '{"prompt": "caf\303", "completion": "x"}\n'
  printf '{"prompt": "cut\n'
  printf '{"prompt": "q", "completion": 4}\n'
  printf '   \n'
  printf '{"prompt": "2+2?", "completion": "4", "id": 2}\n'
  printf '{"text": "x"}\n'
  printf '{"text": "%s"}\n' "$(printf 'y%.0s' $(seq 50))"
  printf '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
} >data.jsonl

# A file in, a file out: the record on stdout, the report beside it, counts per reason.
dsk-finetune clean -q --min-chars 2 --max-chars 40 -o clean.jsonl --report report.yaml data.jsonl >record.yaml
[ "$(field kind record.yaml)" = clean_report ] || fail "stdout record: $(cat record.yaml)"
for pair in records:9 kept:2 invalid_utf8:1 invalid_json:1 bad_fields:1 empty:1 duplicate:1 too_short:1 too_long:1; do
  [ "$(field "${pair%%:*}" report.yaml)" = "${pair#*:}" ] || fail "report ${pair%%:*}: $(cat report.yaml)"
done
diff <(sed -n '1p;9p' data.jsonl) clean.jsonl || fail "kept records changed or reordered"

# A pipe: stdin to stdout, the records only on stdout.
dsk-finetune clean -q <data.jsonl | dsk-finetune clean -q - >piped.jsonl
[ "$(wc -l <piped.jsonl)" = 4 ] || fail "piped: $(cat piped.jsonl)"

# Lengths in tokens with a tokenizer directory.
dsk-finetune clean -q --tokenizer "$tokenizer_dir" --max-tokens 3 --report tokens.yaml data.jsonl >/dev/null
[ "$(field length_unit tokens.yaml)" = tokens ] || fail "token lengths: $(cat tokens.yaml)"

# Usage errors (2), bad input (3), nothing written on failure.
expect 2 "need --tokenizer" dsk-finetune clean --min-tokens 3 data.jsonl
expect 2 "below the minimum" dsk-finetune clean --min-chars 9 --max-chars 3 data.jsonl
expect 2 "excludes" dsk-finetune clean --tokenizer "$tokenizer_dir" --min-chars 3 --max-tokens 9 data.jsonl
expect 3 "missing.jsonl" dsk-finetune clean -o never.jsonl missing.jsonl
[ ! -e never.jsonl ] || fail "a failed run left its output"

# select needs a model: a usage error without one, and with a directory that is not a checkpoint.
expect 2 "model" dsk-finetune select data.jsonl
expect 2 "not a model checkpoint" dsk-finetune select --model . data.jsonl
echo "ok"
