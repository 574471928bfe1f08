#!/usr/bin/env bash
# dsk-tokenize with a GPT-2 style byte-level BPE (tests/fixtures/tokenizer/tiny-gpt2, 267 ids):
# u16 shards when the vocabulary fits, EOS from tokenizer_config.json beside the tokenizer.json
# (a clear error without one), no BOS when the config asks for none, and decode back to the input.
set -euo pipefail
source "$(dirname "$0")/lib/test-helpers.sh"
require_tool dsk-tokenize
in_scratch_dir

mkdir gpt2
cp "${DSK_SOURCE_DIR:?}/tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json" gpt2/
printf 'Hello world, the quick brown fox.\n' >a.txt
printf 'Second document: 12345 and some   spaces.\n' >b.txt

# No EOS anywhere: refused, saying where to name one; nothing written.
code=0
dsk-tokenize -t gpt2/tokenizer.json -o out a.txt b.txt >/dev/null 2>err.txt || code=$?
[ "$code" = 3 ] && grep -q "defines no EOS token.*eos_token in tokenizer_config.json" err.txt ||
  fail "no EOS: exit $code: $(cat err.txt)"
[ ! -e out ] || fail "wrote output without an EOS"

printf '{"eos_token": "<|endoftext|>", "add_bos_token": false}\n' >gpt2/tokenizer_config.json
dsk-tokenize -q -t gpt2/tokenizer.json -o out a.txt b.txt >record.yaml
[ "$(field dtype record.yaml)" = u16 ] || fail "dtype: $(cat record.yaml)"
[ "$(field vocab_size record.yaml)" = 267 ] || fail "vocab_size: $(field vocab_size record.yaml)"
[ "$(field bos record.yaml)" = false ] || fail "bos: $(field bos record.yaml)"
tokens=$(field tokens record.yaml)
[ "$(stat -c %s out/train-00000.tok)" = $((64 + 2 * tokens)) ] || fail "u16 shard size for $tokens tokens"
python3 - <<'PY' || fail "shard header or EOS"
import struct
data = open("out/train-00000.tok", "rb").read()
assert data[:8] == b"DSKTOKS1"
width, = struct.unpack_from("<I", data, 12)
vocab, count, documents, eos = struct.unpack_from("<QQQI", data, 16)
assert (width, vocab, documents, eos) == (2, 267, 2, 266), (width, vocab, documents, eos)
ids = struct.unpack_from(f"<{count}H", data, 64)
assert ids.count(266) == 2 and ids[-1] == 266, ids
PY
dsk-tokenize -q decode out >decoded.txt
cat a.txt b.txt | cmp - decoded.txt || fail "decode differs from the input"

# Counts in the log read as English: one document in one shard.
dsk-tokenize -t gpt2/tokenizer.json -o one a.txt 2>one.err >/dev/null
grep -Eq "wrote 1 document, [0-9]+ tokens in 1 shard to one$" one.err || fail "log counts: $(cat one.err)"
dsk-tokenize decode one 2>&1 >/dev/null | grep -q "decoded 1 document$" || fail "decode's count"

# index.yaml names the tokenizer relative to itself, so decode works from any directory; an index
# that names it relative to where dsk-tokenize ran (before) still works from there.
grep -qx 'tokenizer: ../gpt2/tokenizer.json' out/index.yaml || fail "index tokenizer: $(grep tokenizer: out/index.yaml)"
(cd / && dsk-tokenize -q decode "$work/out") | cmp - decoded.txt || fail "decode from another directory"
mkdir -p deep/er
dsk-tokenize -q -t gpt2/tokenizer.json -o deep/er/out a.txt b.txt >/dev/null
grep -qx 'tokenizer: ../../../gpt2/tokenizer.json' deep/er/out/index.yaml || fail "deep index: $(grep tokenizer: deep/er/out/index.yaml)"
(cd deep && dsk-tokenize -q decode er/out) | cmp - decoded.txt || fail "decode of a deeper directory"
sed -i 's|^tokenizer: .*|tokenizer: gpt2/tokenizer.json|' deep/er/out/index.yaml
dsk-tokenize -q decode deep/er/out | cmp - decoded.txt || fail "an index naming the tokenizer from the working directory"
code=0
(cd deep && dsk-tokenize -q decode er/out) >/dev/null 2>err.txt || code=$?
[ "$code" = 3 ] && grep -q "er/out/index.yaml: its tokenizer 'gpt2/tokenizer.json' is not there.*-t/--tokenizer" err.txt ||
  fail "a tokenizer that is nowhere: exit $code: $(cat err.txt)"
echo ok
