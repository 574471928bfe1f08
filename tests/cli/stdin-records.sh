#!/usr/bin/env bash
# One rule for `-` (a record on stdin) in every tool: stdin without a record of a kind the tool
# takes (empty, not YAML, a mapping without 'kind', a record of another kind) is a usage error,
# exit 2; a record of the right kind that lacks its path is bad data, exit 3.
set -euo pipefail
source "$(dirname "$0")/lib/test-helpers.sh"
in_scratch_dir

# expect CODE PATTERN STDIN command...
expect() {
  local code=$1 pattern=$2 input=$3
  shift 3
  local got=0
  printf '%b' "$input" | "$@" >out.txt 2>err.txt || got=$?
  [ "$got" = "$code" ] || fail "$* <<< '$input': exit $got, expected $code: $(cat err.txt)"
  grep -Eq -- "$pattern" err.txt || fail "$* <<< '$input': stderr does not match '$pattern': $(cat err.txt)"
}

for command in "dsk-tokenize stats -" "dsk-tokenize decode -" "dsk-train sample -" "dsk-train --data -" \
  "dsk-upload - --name tiny --version 1.0 --to s3://models"; do
  # shellcheck disable=SC2086  # the command's words
  set -- $command
  expect 2 "expected a record on stdin .*got nothing" "" "$@"
  expect 2 "expected a record on stdin .*got none" "just text\n" "$@"
  expect 2 "expected a record on stdin .*not YAML" "kind: [unclosed\n" "$@"
  expect 2 "the record on stdin is a shard_stats, expected a" "kind: shard_stats\npath: x\n" "$@"
done
expect 3 "the shards record has no 'path'" "kind: shards\ndocuments: 3\n" dsk-tokenize stats -
expect 3 "the checkpoint record has no 'path'" "kind: checkpoint\nstep: 3\n" dsk-train sample -
echo "stdin records: ok"
