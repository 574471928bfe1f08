# Sourced by each completions/bash/dsk-* file. They use two helpers of the bash-completion
# package, _init_completion and _filedir; where that package is not loaded (a plain
# `source .../dsk-train` in ~/.bashrc, a minimal image), these stand in for them. With
# bash-completion loaded, its own fuller versions are kept and this file defines nothing.

if ! declare -F _init_completion >/dev/null; then
  # Sets cur, prev, words and cword (locals of the caller) from COMP_WORDS and COMP_CWORD.
  _init_completion() {
    COMPREPLY=()
    words=("${COMP_WORDS[@]}")
    cword=$COMP_CWORD
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
  }
fi

if ! declare -F _filedir >/dev/null; then
  # _filedir            files and directories
  # _filedir -d         directories
  # _filedir EXT        files ending in .EXT (an extglob such as '@(yaml|yml)' too), and directories
  _filedir() {
    local IFS=$'\n' extglob_was
    extglob_was=$(shopt -p extglob)
    shopt -s extglob
    compopt -o filenames 2>/dev/null
    if [[ $1 == -d ]]; then
      COMPREPLY+=($(compgen -d -- "$cur"))
    elif [[ -n $1 ]]; then
      COMPREPLY+=($(compgen -d -- "$cur") $(compgen -f -X "!*.$1" -- "$cur"))
    else
      COMPREPLY+=($(compgen -f -- "$cur"))
    fi
    eval "$extglob_was"
  }
fi
