#!/usr/bin/env bash
# dsk-tokenize's tokenizer cache (DSK_TOKENIZER_CACHE): the first run writes one file named by the
# sha256 of tokenizer.json, later runs (and decode) read it and write the same shards; a damaged
# cache file is rebuilt, a changed tokenizer.json gets a file of its own, "off" writes none, and
# a directory that cannot be written is no error.
set -euo pipefail
source "$(dirname "$0")/lib/test-helpers.sh"
require_tool dsk-tokenize
in_scratch_dir

mkdir gpt2
cp "${DSK_SOURCE_DIR:?}/tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json" gpt2/
printf '{"eos_token": "<|endoftext|>", "add_bos_token": false}\n' >gpt2/tokenizer_config.json
printf 'Hello world, the quick brown fox.\n\nSecond document: 12345 and some   spaces.\n' >a.txt
key=$(sha256sum gpt2/tokenizer.json | cut -d' ' -f1)
cache="$work/cache/$key.bin"

DSK_TOKENIZER_CACHE=off dsk-tokenize -q -t gpt2/tokenizer.json -o plain --documents paragraph a.txt >/dev/null
[ ! -e cache ] || fail "DSK_TOKENIZER_CACHE=off wrote a cache"

export DSK_TOKENIZER_CACHE="$work/cache"
dsk-tokenize -q -t gpt2/tokenizer.json -o first --documents paragraph a.txt >/dev/null
[ -f "$cache" ] || fail "no cache file $cache: $(ls -R cache 2>&1)"
[ "$(ls cache | wc -l)" = 1 ] || fail "more than one cache file: $(ls cache)"
cp "$cache" good.bin
touch -d '2001-01-01' "$cache"
dsk-tokenize -q -t gpt2/tokenizer.json -o second --documents paragraph a.txt >/dev/null
[ "$(stat -c %Y "$cache")" = "$(date -d '2001-01-01' +%s)" ] || fail "the cache was rewritten, not read"
diff -r plain first >/dev/null && diff -r plain second >/dev/null || fail "shards differ with the cache"
dsk-tokenize decode second >decoded.txt
[ "$(head -c 16 decoded.txt)" = "Hello world, the" ] || fail "decode with the cache: $(head -c 80 decoded.txt)"

# A damaged cache file: the tokenizer comes from tokenizer.json, the file is written again.
printf 'not a cache' >"$cache"
dsk-tokenize -q -t gpt2/tokenizer.json -o third --documents paragraph a.txt >/dev/null
diff -r plain third >/dev/null || fail "shards differ after a damaged cache"
cmp -s "$cache" good.bin || fail "the damaged cache was not rebuilt"

# Another tokenizer.json content: a file of its own.
python3 -c 'import json, sys; d = json.load(open("gpt2/tokenizer.json")); d["version"] = "1.1"; json.dump(d, open("gpt2/tokenizer.json", "w"))'
dsk-tokenize -q -t gpt2/tokenizer.json -o fourth --documents paragraph a.txt >/dev/null
[ "$(ls cache | wc -l)" = 2 ] || fail "a changed tokenizer.json did not get its own cache file: $(ls cache)"

# A cache directory that cannot be made: the run goes on.
DSK_TOKENIZER_CACHE="$work/a.txt/cache" dsk-tokenize -q -t gpt2/tokenizer.json -o fifth --documents paragraph a.txt >/dev/null ||
  fail "an unwritable cache directory failed the run"
echo "tokenizer cache: ok"
