# Checks shared by the dsk-scale tests (tests/cli/dsk-scale-*.sh; named slurm-scale-* to sit
# beside the Slurm cluster helper).
#   fail MESSAGE                 stop the test
#   field NAME "$line"           a key=value field of a decision line
#   expect CODE PATTERN cmd...   run cmd; check its exit code and that stderr matches PATTERN
#                                (stdout and stderr are left in out.txt and err.txt)
source "$(dirname "${BASH_SOURCE[0]}")/test-helpers.sh"  # fail, expect
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }  # replaces test-helpers.sh's (records)
