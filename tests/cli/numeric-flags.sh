#!/usr/bin/env bash
# Every numeric flag's error reads like a config key's (exit 2): a flag that stands for a key says
# "FLAG VALUE: key 'KEY' must be at least 1, got 0"; any other says "FLAG: must be at least 1, got
# 0" or "FLAG: expects an integer, got 'x'"; never CLI11's "Could not convert" or a range bound
# of 310 digits.
set -euo pipefail
source "$(dirname "$0")/lib/test-helpers.sh"
in_scratch_dir

# expect MESSAGE command...: exit 2, and the error line is exactly "TOOL: error: MESSAGE".
expect() {
  local message=$1
  shift
  local code=0
  "$@" >out.txt 2>err.txt </dev/null || code=$?
  [ "$code" = 2 ] || fail "$*: exit $code, expected 2: $(cat err.txt)"
  [ "$(head -1 err.txt)" = "$1: error: $message" ] || fail "$*: '$(head -1 err.txt)', expected '$1: error: $message'"
}

expect "--steps 0: key 'steps' must be at least 1, got 0" dsk-train --steps 0
expect "--steps many: key 'steps' expects an integer, got 'many'" dsk-train --steps many
expect "--samples: must be at least 1, got 0" dsk-train sample ckpt --samples 0
expect "--tokens: expects an integer, got 'abc'" dsk-train sample ckpt -n abc
expect "--tokens: must be at most 2147483647, got 99999999999" dsk-train sample ckpt -n 99999999999
expect "--top-p: must be at most 1, got 2" dsk-train sample ckpt --top-p 2
expect "--temperature: must be at least 0, got -1" dsk-train sample ckpt --temperature -1
expect "--threads -1: key 'threads' must be at least 0, got -1" dsk-tokenize -j -1 -t tokenizer.json -o out
expect "--val-fraction 2: key 'split.val_fraction' must be at most 1, got 2" \
  dsk-tokenize --val-fraction 2 -t tokenizer.json -o out
expect "--concurrency 0: key 'transfer.concurrency' must be at least 1, got 0" dsk-upload -j 0 ckpt
expect "--retries x: key 's3.retries' expects an integer, got 'x'" dsk-upload --retries x ckpt
expect "--keep: expects an integer, got 'abc'" dsk-upload prune tiny --keep abc
expect "--expire-days: must be at least 0, got -3" dsk-upload lifecycle set --expire-days -3
expect "--iterations: expects an integer, got 'x'" dsk-scale --watch --iterations x
expect "--current: must be at least 0, got -1" dsk-scale --once --current -1
expect "--iters: must be at least 1, got -5" dsk-bench-nccl -n -5
expect "--iters: expects an integer, got 'abc'" dsk-bench-nccl -n abc
expect "--average: must be at most 3, got 9" dsk-bench-nccl -a 9
expect "--rendezvous-timeout: expects a number, got 'x'" dsk-bench-nccl --rendezvous-timeout x
echo "numeric flags: ok"
