#!/usr/bin/env bash
# The teacher cache (dsk-distill cache): a cache interrupted (parts lost in a crash, or a signal)
# and resumed by the same command ends with the very bytes of one made in one go; a student run
# refuses a cache made by another teacher, from another tokenizer's shards, or one that is
# incomplete or too short; a cache directory is not finished with other settings.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
source "$(dirname "$0")/lib/distill-fixture.sh"
in_scratch_dir
# Tiny models: one thread is fastest (and the same count every run keeps reductions bit-identical).
export OMP_NUM_THREADS=1
make_shards
train_teacher 20
dsk-distill -q init teacher -o student --ratio 0.5 >/dev/null
write_distill_config distill.yaml

expect_exit() {  # CODE MESSAGE-PATTERN COMMAND...: runs it, checks the exit code and stderr
  local code=$1 pattern=$2 got=0
  shift 2
  "$@" >out.txt 2>err.txt || got=$?
  [ "$got" = "$code" ] || fail "$*: exit $got, expected $code: $(cat err.txt)"
  grep -q -- "$pattern" err.txt || fail "$*: stderr lacks '$pattern': $(cat err.txt)"
}

# In one go: 240 windows (30 steps x 4 x 2) in parts of 8.
dsk-distill -q -c distill.yaml cache -o straight >straight.rec
[ "$(field kind straight.rec)" = teacher_cache ] || fail "record: $(cat straight.rec)"
[ "$(field windows straight.rec)" = 240 ] && [ "$(field parts straight.rec)" = 30 ] || fail "sizes: $(cat straight.rec)"
[ "$(field parts_made straight.rec)" = 30 ] || fail "parts_made: $(cat straight.rec)"
grep -q "^teacher_sha256: $(field teacher_sha256 straight.rec)" straight/cache.yaml || fail "cache.yaml lacks the teacher"

# A crash: the last 20 parts lost, and the temporary file of the one being written left behind.
cp -r straight crashed
rm crashed/part-0000{1,2}?.zst
echo partial >crashed/part-000010.zst.tmp.12345
dsk-distill -q -c distill.yaml cache -o crashed >crashed.rec
[ "$(field parts_made crashed.rec)" = 20 ] || fail "resume made $(field parts_made crashed.rec) parts, not the 20 missing"
diff -r straight crashed || fail "a resumed cache differs from one made in one go"

# A signal: a longer cache (300 steps' windows) stopped by SIGINT after a few parts, then resumed.
long=(--steps 300 --set distill.cache_part_windows=16)
dsk-distill -q -c distill.yaml "${long[@]}" cache -o long-straight >/dev/null
dsk-distill -q -c distill.yaml "${long[@]}" cache -o long >long.rec 2>long.err &
pid=$!
for _ in $(seq 1000); do
  [ "$(ls long 2>/dev/null | grep -c '^part-.*zst$')" -ge 3 ] && break
  sleep 0.01
done
kill -INT "$pid"
code=0
wait "$pid" || code=$?
if [ "$code" = 130 ]; then
  grep -q "rerun the same command" long.err || fail "SIGINT message: $(cat long.err)"
  [ "$(ls long | grep -c '^part-.*zst$')" -lt 150 ] || fail "interrupted, yet every part is there"
else
  # The cache was done before the signal landed (a very fast machine): resume still must agree.
  [ "$code" = 0 ] || fail "SIGINT: exit $code: $(cat long.err)"
  echo "note: the long cache finished before SIGINT" >&2
fi
dsk-distill -q -c distill.yaml "${long[@]}" cache -o long >/dev/null
diff -r long-straight long || fail "a cache resumed after SIGINT differs from one made in one go"

# Finishing a cache with other settings is refused.
expect_exit 2 "made with other settings is there (top_k" dsk-distill -q -c distill.yaml --set distill.top_k=8 cache -o straight

# A student run refuses a cache of another teacher...
mv teacher teacher1
train_teacher 10
mv teacher teacher2
mv teacher1 teacher
expect_exit 2 "made by another teacher" dsk-distill -q -c distill.yaml --cache straight --teacher teacher2 -o run1
# ...one made from shards of another tokenizer (the same ids, another tokenizer.json)...
python3 -c 'import json, sys; json.dump(json.load(open("tokenizer.json")), open("other-tokenizer.json", "w"), indent=1)'
dsk-tokenize -q -t other-tokenizer.json -o other-shards --documents paragraph --val-fraction 0.1 corpus.txt >/dev/null
expect_exit 2 "another tokenizer" dsk-distill -q -c distill.yaml --cache straight --data other-shards -o run2
# ...an incomplete one...
cp -r straight incomplete
rm incomplete/part-000007.zst
expect_exit 3 "incomplete (1 of 30 parts missing)" dsk-distill -q -c distill.yaml --cache incomplete -o run3
# ...and a run longer than the cache.
expect_exit 3 "not in the cache" dsk-distill -q -c distill.yaml --cache straight --steps 31 -o run4
# The matching cache trains.
dsk-distill -q -c distill.yaml --cache straight -o run5 >run5.rec
[ "$(field step run5.rec)" = 30 ] || fail "training on the cache: $(cat run5.rec)"
echo ok
