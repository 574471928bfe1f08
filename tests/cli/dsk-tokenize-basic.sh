#!/usr/bin/env bash
# dsk-tokenize end to end with the real DeepSeek-V3 tokenizer: text, paragraphs, JSONL, .zst,
# stdin and "-", the record on stdout, the split, configs, stats, and decoding back to the input.
set -euo pipefail
source "$(dirname "$0")/lib/test-helpers.sh"
require_tool dsk-tokenize
use_deepseek_tokenizer
in_scratch_dir

printf 'Hello, world!\nSecond line, ünïcödé and 日本語.\n' >a.txt
printf 'Another file.\n' >b.txt

# Text, one document per file; the record names what was made.
dsk-tokenize -q -t "$tokenizer" -o text a.txt b.txt >record.yaml
[ "$(field kind record.yaml)" = shards ] || fail "kind: $(cat record.yaml)"
[ "$(field path record.yaml)" = text ] || fail "path"
[ "$(field documents record.yaml)" = 2 ] || fail "documents: $(cat record.yaml)"
[ "$(field dtype record.yaml)" = u32 ] || fail "dtype"
# The tokenizer's vocabulary, added tokens included: ids 0..128814 (what HF's
# get_vocab_size(with_added_tokens=True) and len(AutoTokenizer) give). Not config.json's 129280,
# the model's embedding rows padded past the tokenizer (dsk-train checks ids < its own vocab_size).
[ "$(field vocab_size record.yaml)" = 128815 ] || fail "vocab_size: $(field vocab_size record.yaml)"
[ "$(field val_tokens record.yaml)" = 0 ] || fail "val_tokens"
[ -f text/index.yaml ] && [ -f text/train-00000.tok ] || fail "files: $(ls text)"
[ "$(head -c 8 text/train-00000.tok)" = DSKTOKS1 ] || fail "magic"
tokens=$(field tokens record.yaml)
[ "$(stat -c %s text/train-00000.tok)" = $((64 + 4 * tokens)) ] || fail "shard size for $tokens tokens"

# Decoding gives back each file byte for byte.
dsk-tokenize -q decode --jsonl text >decoded.jsonl
python3 - a.txt b.txt <<'PY' || fail "decode differs from the input"
import json, sys
decoded = [json.loads(line)["text"] for line in open("decoded.jsonl", encoding="utf-8")]
expected = [open(path, encoding="utf-8").read() for path in sys.argv[1:]]
sys.exit(0 if decoded == expected else 1)
PY
dsk-tokenize -q decode text >raw.txt
cat a.txt b.txt | cmp - raw.txt || fail "raw decode"

# BOS follows the tokenizer config (DeepSeek-V3 adds one); --bos never leaves it out.
dsk-tokenize -q -t "$tokenizer" -o nobos --bos never a.txt b.txt >nobos.yaml
[ "$(field tokens nobos.yaml)" = $((tokens - 2)) ] || fail "--bos never: $(field tokens nobos.yaml) vs $tokens"
[ "$(field bos record.yaml)" = true ] && [ "$(field bos nobos.yaml)" = false ] || fail "bos field"

# stdin, with no file and with "-"; a .zst input; the same tokens each way.
dsk-tokenize -q -t "$tokenizer" -o stdin <a.txt >stdin.yaml
dsk-tokenize -q -t "$tokenizer" -o dash - <a.txt >dash.yaml
zstd -q a.txt -o a.txt.zst
dsk-tokenize -q -t "$tokenizer" -o zst a.txt.zst >zst.yaml
cmp stdin/train-00000.tok dash/train-00000.tok || fail "stdin vs -"
cmp stdin/train-00000.tok zst/train-00000.tok || fail "stdin vs .zst"
zstd -q -c a.txt | dsk-tokenize -q -t "$tokenizer" -o zst-stdin >/dev/null
cmp stdin/train-00000.tok zst-stdin/train-00000.tok || fail "zstd on stdin"
# -o with a trailing slash, as in the --help examples; then replaced with --force.
dsk-tokenize -q -t "$tokenizer" -o slash/ a.txt >/dev/null && dsk-tokenize -q -t "$tokenizer" -o slash/ --force a.txt >/dev/null
cmp stdin/train-00000.tok slash/train-00000.tok || fail "-o slash/"
[ -z "$(ls -a | grep -E '\.(tmp|old)-')" ] || fail "left behind: $(ls -a)"

# Paragraphs: a document per blank-line-separated block.
printf 'one\nstill one\n\n\ntwo\n\nthree' >p.txt
dsk-tokenize -q -t "$tokenizer" -o para --documents paragraph p.txt >para.yaml
[ "$(field documents para.yaml)" = 3 ] || fail "paragraph documents"
dsk-tokenize -q decode --jsonl para | python3 -c '
import json, sys
texts = [json.loads(l)["text"] for l in sys.stdin]
sys.exit(0 if texts == ["one\nstill one", "two", "three"] else 1)' || fail "paragraph texts"

# JSONL with a named field, plain and compressed; auto-detected by name, or --format.
python3 -c '
import json
for i in range(200): print(json.dumps({"id": i, "body": f"document number {i}: " + "ab " * (i % 7)}))' >docs.jsonl
dsk-tokenize -q -t "$tokenizer" -o jsonl --jsonl-field body docs.jsonl >jsonl.yaml
[ "$(field documents jsonl.yaml)" = 200 ] || fail "jsonl documents"
zstd -q docs.jsonl -o docs.jsonl.zst
dsk-tokenize -q -t "$tokenizer" -o jsonl-zst --jsonl-field body docs.jsonl.zst >/dev/null
cmp jsonl/train-00000.tok jsonl-zst/train-00000.tok || fail "jsonl vs jsonl.zst"
dsk-tokenize -q -t "$tokenizer" -o jsonl-stdin --format jsonl --jsonl-field body <docs.jsonl >/dev/null
cmp jsonl/train-00000.tok jsonl-stdin/train-00000.tok || fail "jsonl on stdin"
dsk-tokenize -q decode --jsonl jsonl | python3 -c '
import json, sys
texts = [json.loads(l)["text"] for l in sys.stdin]
expected = [json.loads(l)["body"] for l in open("docs.jsonl")]
sys.exit(0 if texts == expected else 1)' || fail "jsonl round trip"

# The split: fractions 0, 0.25, 1; train + val is everything; a different seed, another split.
for fraction in 0 0.25 1; do
  dsk-tokenize -q -t "$tokenizer" -o "split-$fraction" --jsonl-field body --val-fraction "$fraction" docs.jsonl >split.yaml
  train=$(field train_documents split.yaml); val=$(field val_documents split.yaml)
  [ $((train + val)) = 200 ] || fail "split $fraction: $train + $val"
  [ "$(field tokens split.yaml)" = "$(field tokens jsonl.yaml)" ] || fail "split $fraction tokens"
  case $fraction in
    0) [ "$val" = 0 ] || fail "val at 0" ;;
    1) [ "$train" = 0 ] || fail "train at 1" ;;
    0.25) [ "$val" -ge 30 ] && [ "$val" -le 70 ] || fail "val at 0.25: $val" ;;
  esac
done
[ -f split-0.25/val-00000.tok ] || fail "no val shard"
dsk-tokenize -q -t "$tokenizer" -o split-seed --jsonl-field body --val-fraction 0.25 --seed 9 docs.jsonl >/dev/null
cmp -s split-0.25/val-00000.tok split-seed/val-00000.tok && fail "the seed does not change the split"

# Shard size: small shards hold whole documents.
dsk-tokenize -q -t "$tokenizer" -o small --jsonl-field body --shard-size 500 docs.jsonl >small.yaml
[ "$(field shards small.yaml)" -gt 3 ] || fail "shard size: $(field shards small.yaml) shards"
python3 - <<'PY' || fail "small shards"
import struct, glob
for path in sorted(glob.glob("small/train-*.tok")):
    data = open(path, "rb").read()
    width, = struct.unpack_from("<I", data, 12)
    count, documents, eos = struct.unpack_from("<QQI", data, 24)
    assert count <= 500 or documents == 1, path
    last = int.from_bytes(data[len(data) - width:], "little")
    assert last == eos, path
PY

# Config file and --set, with flags winning; --print-config is valid input.
cat >tokenize.yaml <<YAML
tokenizer:
  path: $tokenizer
input:
  format: jsonl
  jsonl_field: body
  paths: [docs.jsonl]
output:
  dir: from-config
split:
  val_fraction: 0.5
YAML
dsk-tokenize -c tokenize.yaml --set split.val_fraction=0.25 --print-config >effective.yaml
grep -q 'val_fraction: 0.25' effective.yaml || fail "--set in --print-config"
[ ! -e from-config ] || fail "--print-config wrote output"
dsk-tokenize -q -c effective.yaml >config.yaml
cmp split-0.25/val-00000.tok from-config/val-00000.tok || fail "config vs flags"
dsk-tokenize -q -c tokenize.yaml --val-fraction 0 -o from-flags >flags.yaml
[ "$(field val_tokens flags.yaml)" = 0 ] || fail "a flag does not override the config"

# stats: from a directory or a record on stdin.
dsk-tokenize -q stats jsonl >stats.yaml
[ "$(field kind stats.yaml)" = shard_stats ] || fail "stats kind"
[ "$(field tokens stats.yaml)" = "$(field tokens jsonl.yaml)" ] || fail "stats tokens"
python3 -c "
import sys
f = dict(l.split(': ', 1) for l in open('stats.yaml') if ': ' in l)
assert 0 < float(f['entropy_bits']) < 17, f
assert abs(float(f['entropy_nats']) - float(f['entropy_bits']) * 0.6931471805599453) < 1e-6, f
assert 1 < float(f['bytes_per_token']) < 10, f" || fail "stats values"
dsk-tokenize -q -t "$tokenizer" -o piped a.txt | dsk-tokenize -q stats - >piped.yaml
[ "$(field path piped.yaml)" = piped ] || fail "stats -"
echo ok
