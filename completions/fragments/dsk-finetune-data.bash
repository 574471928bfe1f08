# Fragment for completions/bash/dsk-finetune (the coordinator merges it): the data subcommands
# clean, select and classify of lib/finetune/data. Inside _dsk_finetune, after the loop that sets
# $subcommand from the words (add "clean|select|classify" to its case), and before the top-level
# flags; "clean select classify" join the subcommand words offered at the first position.
  case $prev in
    --tokenizer|-m|--model) [[ $subcommand == @(clean|select|classify) ]] && { _filedir -d; return; } ;;
    --report|--metrics) [[ $subcommand == @(clean|classify) ]] && { _filedir; return; } ;;
    --measure) [[ $subcommand == select ]] && { COMPREPLY=($(compgen -W "entropy margin" -- "$cur")); return; } ;;
    --device) [[ $subcommand == @(select|classify) ]] && { COMPREPLY=($(compgen -W "auto cpu cuda" -- "$cur")); return; } ;;
    --precision) [[ $subcommand == @(select|classify) ]] && { COMPREPLY=($(compgen -W "auto bf16 fp32" -- "$cur")); return; } ;;
    --min-tokens|--max-tokens|--min-chars|--max-chars|-n|--top|-l|--labels|--label-field) return ;;
  esac
  case $subcommand in
    clean)
      [[ $cur == -* ]] && COMPREPLY=($(compgen -W "-o --output --tokenizer --min-tokens --max-tokens --min-chars --max-chars
        --keep-duplicates --report -h --help -v --verbose -q --quiet" -- "$cur")) || _filedir
      return ;;
    select)
      [[ $cur == -* ]] && COMPREPLY=($(compgen -W "-m --model --tokenizer --device --precision -n --top --measure --max-tokens
        -o --output -h --help -v --verbose -q --quiet" -- "$cur")) || _filedir
      return ;;
    classify)
      [[ $cur == -* ]] && COMPREPLY=($(compgen -W "-m --model --tokenizer --device --precision -l --labels --label-field
        --metrics -o --output -h --help -v --verbose -q --quiet" -- "$cur")) || _filedir
      return ;;
  esac
