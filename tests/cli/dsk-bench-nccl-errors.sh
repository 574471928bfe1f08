#!/usr/bin/env bash
# dsk-bench-nccl's argument checks (exit 2, naming the flag) and, on a machine without a GPU or a
# build without NCCL (CI), the clear "no GPU / no NCCL" error with exit 4, for one process and
# for --nproc-per-node.
set -euo pipefail
tool="${DSK_BUILD_DIR:?}/tools/dsk-bench-nccl"
[ -x "$tool" ] || { echo "FAIL: $tool is not built" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect CODE PATTERN command...: runs it, checks the exit code and that stderr matches PATTERN.
expect() {
  local code=$1 pattern=$2; shift 2
  local got=0
  timeout 60 "$@" >out.txt 2>err.txt || got=$?
  [ "$got" = "$code" ] || fail "$* exited $got, expected $code: $(cat err.txt)"
  grep -q -- "$pattern" err.txt || fail "$*: stderr lacks '$pattern': $(cat err.txt)"
}

# --help lists nccl-tests' flags and real examples.
dsk-bench-nccl --help >help.txt
for flag in -b,--minbytes -e,--maxbytes -f,--stepfactor -i,--stepbytes -g,--ngpus -n,--iters -w,--warmup_iters \
  -c,--check -z,--blocking -d,--datatype -o,--op -r,--root -a,--average --json --csv --nproc-per-node; do
  grep -q -- "$flag" help.txt || fail "--help lacks $flag"
done
grep -q "Examples:" help.txt || fail "--help lacks examples"

# Usage errors: exit 2, nothing on stdout.
expect 2 "no-such-flag" dsk-bench-nccl --no-such-flag
expect 2 "unknown value 'allreduse'" dsk-bench-nccl allreduse
expect 2 "-d/--datatype: unknown value 'double'" dsk-bench-nccl -d double
expect 2 "-o/--op: unknown value 'xor'" dsk-bench-nccl -o xor
expect 2 "-b/--minbytes" dsk-bench-nccl -b lots
expect 2 "is smaller than -b/--minbytes" dsk-bench-nccl -b 1M -e 8
expect 2 "-f/--stepfactor" dsk-bench-nccl -b 8 -e 1M -f 1
# Numeric flags in the words of a config key's check (tests/cli/numeric-flags.sh).
expect 2 "--ngpus: must be at least 1, got 0" dsk-bench-nccl -g 0
expect 2 "--iters: must be at least 1, got 0" dsk-bench-nccl -n 0
expect 2 "--check: must be at most 1, got 2" dsk-bench-nccl -c 2
expect 2 "--average: must be at most 3, got 7" dsk-bench-nccl -a 7
expect 2 "--nproc-per-node: must be at least 1, got -1" dsk-bench-nccl --nproc-per-node -1
expect 2 "RANK='one'" env RANK=one WORLD_SIZE=2 dsk-bench-nccl
[ ! -s out.txt ] || fail "a usage error printed on stdout"

# No GPU here (or a build without NCCL): exit 4 with the reason, from every rank.
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  expect 4 "rank 0: \(no usable CUDA device\|this dsk-bench-nccl was built without CUDA and NCCL\)" \
    dsk-bench-nccl -b 8 -e 1M -f 2 --json out.json
  [ ! -e out.json ] || fail "a failed run wrote its JSON"
  expect 4 "rank 0: " dsk-bench-nccl all --nproc-per-node 3 -b 8 -e 64 -f 2
  [ "$(grep -c 'error: rank 0' err.txt)" = 3 ] || fail "every one of 3 ranks should name rank 0's reason: $(cat err.txt)"
fi
echo "dsk-bench-nccl errors: ok"
