# Checks shared by the dsk-scale tests (tests/cli/dsk-scale-*.sh; named slurm-scale-* to sit
# beside the Slurm cluster helper).
#   fail MESSAGE                 stop the test
#   field NAME "$line"           a key=value field of a decision line
#   expect CODE PATTERN cmd...   run cmd; check its exit code and that stderr matches PATTERN
#                                (stdout and stderr are left in out.txt and err.txt)
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
expect() {
  local code=$1 pattern=$2; shift 2
  local got=0
  "$@" >out.txt 2>err.txt || got=$?
  [ "$got" = "$code" ] || fail "$* exited $got, expected $code: $(cat err.txt)"
  grep -q -- "$pattern" err.txt || fail "$*: stderr lacks '$pattern': $(cat err.txt)"
}
