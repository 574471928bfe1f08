#!/usr/bin/env bash
# dsk-distill's refusals: each bad input is one clear message and the right exit code (2 usage or
# config, 3 bad data), and leaves nothing half-made behind.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
source "$(dirname "$0")/lib/distill-fixture.sh"
in_scratch_dir
export OMP_NUM_THREADS=1
make_shards
train_teacher 3
dsk-distill -q init teacher -o student --layers 1 >/dev/null
write_distill_config distill.yaml

expect_exit() {  # CODE MESSAGE-PATTERN COMMAND...
  local code=$1 pattern=$2 got=0
  shift 2
  "$@" >out.txt 2>err.txt || got=$?
  [ "$got" = "$code" ] || fail "$*: exit $got, expected $code: $(cat err.txt)"
  grep -q -- "$pattern" err.txt || fail "$*: stderr lacks '$pattern': $(cat err.txt)"
  [ "$(grep -c 'error' err.txt)" = 1 ] || fail "$*: not one error line: $(cat err.txt)"
}

# init
expect_exit 2 "exists; name a new directory" dsk-distill init teacher -o student --layers 1
expect_exit 2 "the teacher allows 1 to 2" dsk-distill init teacher -o s1 --layers 3
expect_exit 2 "must be above 0" dsk-distill init teacher -o s2 --ratio 0
expect_exit 2 "not both" dsk-distill init teacher -o s3 --ratio 0.5 --parameters 100
expect_exit 2 "no routed experts" dsk-distill init teacher -o s4 --experts 2
expect_exit 3 "no such checkpoint directory" dsk-distill init missing -o s5
[ ! -e s1 ] && [ ! -e s2 ] && [ ! -e s5 ] || fail "a refused init left a directory"
ls | grep -q "tmp-" && fail "a refused init left a temporary directory"

# config and training
expect_exit 2 "distill.beta must be strictly between 0 and 1" \
  dsk-distill -q -c distill.yaml --set distill.cache=null --set distill.loss=jsd --set distill.beta=0
expect_exit 2 "distill.top_k" dsk-distill -q -c distill.yaml --set distill.top_k=2000
expect_exit 2 "unknown" dsk-distill -q -c distill.yaml --set distill.tempo=2
expect_exit 2 "needs distill.cache or distill.teacher" \
  dsk-distill -q -c distill.yaml --set distill.cache=null --set distill.teacher=null
expect_exit 3 "not a teacher cache" dsk-distill -q -c distill.yaml --cache shards
expect_exit 2 "needs a teacher checkpoint" dsk-distill -q -c distill.yaml --set distill.teacher=null cache
mkdir notempty && touch notempty/file
expect_exit 2 "not a teacher cache; name another directory" dsk-distill -q -c distill.yaml cache -o notempty
# A teacher of another vocabulary: the student cannot learn its distribution.
write_config big.yaml llama
sed -i 's/vocab_size: 272/vocab_size: 300/' big.yaml
dsk-train -q -c big.yaml --steps 1 -o big-run --set checkpoint.every=0 --set eval.every=0 >big.rec
expect_exit 2 "vocabulary is 300, the student's 272" \
  dsk-distill -q -c distill.yaml --set distill.cache=null --teacher "$(field path big.rec)"

# eval
expect_exit 2 "cannot be compared token for token" dsk-distill eval "$(field path big.rec)" student --data shards
expect_exit 2 "only one of TEACHER and STUDENT" dsk-distill eval - - --data shards </dev/null
expect_exit 3 "no such shard directory" dsk-distill eval teacher student --data missing
echo ok
