#!/usr/bin/env bash
# The bash completions work in a plain bash, without the bash-completion package (sourced from
# ~/.bashrc), and with it when it is installed: flags, a flag's file argument, --set keys and a
# subcommand's flags.
set -euo pipefail
source_dir=${DSK_SOURCE_DIR:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
mkdir -p configs runs
touch configs/tiny.yaml notes.txt

# complete SETUP WORDS...: what the completion offers for the last word, one per line, sorted,
# in a fresh non-interactive bash that first runs SETUP (nothing, or loading bash-completion).
complete_words() {
  local setup=$1
  shift
  bash --norc --noprofile -c '
    set -u
    '"$setup"'
    compopt() { :; }  # the builtin only works inside a completion that readline started
    source "$0"
    COMP_WORDS=("${@}")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="${COMP_WORDS[*]}"
    COMP_POINT=${#COMP_LINE}
    function_name=$(complete -p "${COMP_WORDS[0]}" | sed -n "s/.*-F \([^ ]*\).*/\1/p")
    "$function_name" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf "%s\n" "${COMPREPLY[@]}" | sort' \
    "$source_dir/completions/bash/$1" "$@"
}

check_all() {
  local setup=$1 name=$2
  [ "$(complete_words "$setup" dsk-train --run)" = "--run-dir" ] || fail "$name: dsk-train --run"
  [ "$(complete_words "$setup" dsk-train -c "")" = "$(printf 'configs\nruns')" ] &&
    [ "$(complete_words "$setup" dsk-train -c configs/)" = "configs/tiny.yaml" ] ||
    fail "$name: dsk-train -c: $(complete_words "$setup" dsk-train -c configs/)"
  [ "$(complete_words "$setup" dsk-train --run-dir r)" = "runs" ] || fail "$name: --run-dir"
  complete_words "$setup" dsk-train --set optim.l | grep -qx "optim.lr=" || fail "$name: --set keys"
  [ "$(complete_words "$setup" dsk-tokenize stats --qu)" = "--quiet" ] || fail "$name: subcommand flags"
  [ "$(complete_words "$setup" dsk-upload --end)" = "--endpoint-url" ] || fail "$name: dsk-upload"
}

check_all "" "without bash-completion"
bash_completion=/usr/share/bash-completion/bash_completion
if [ -f "$bash_completion" ]; then
  check_all "source $bash_completion" "with bash-completion"
else
  echo "bash-completion is not installed: checked without it only"
fi
echo "bash completion: ok"
