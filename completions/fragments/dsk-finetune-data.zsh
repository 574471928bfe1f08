# Fragment for completions/zsh/_dsk-finetune (the coordinator merges it): the data subcommands
# clean, select and classify of lib/finetune/data. Inside _dsk_finetune, where $common holds
# -v/-q/-h as in _dsk-tokenize; 'clean:...' 'select:...' 'classify:...' join its subcommand list.
  if (( CURRENT > 2 )) && [[ ${words[2]} == (clean|select|classify) ]]; then
    local -a model
    model=(
      '(-m --model)'{-m,--model}'[model checkpoint directory]:model:_directories'
      '--tokenizer[tokenizer directory, if not the model'"'"'s]:tokenizer:_directories'
      '--device[backend]:device:(auto cpu cuda)'
      '--precision[precision]:precision:(auto bf16 fp32)'
    )
    case ${words[2]} in
      clean)
        _arguments $common \
          '(-o --output)'{-o,--output}'[write the kept records here]:file:_files' \
          '--tokenizer[tokenizer directory: lengths in tokens]:tokenizer:_directories' \
          '(--min-chars --max-chars)--min-tokens[drop records shorter than N tokens]:tokens:' \
          '(--min-chars --max-chars)--max-tokens[drop records longer than N tokens]:tokens:' \
          '(--min-tokens --max-tokens)--min-chars[drop records shorter than N characters]:characters:' \
          '(--min-tokens --max-tokens)--max-chars[drop records longer than N characters]:characters:' \
          '--keep-duplicates[keep records that repeat an earlier one]' \
          '--report[write the counts per reason as YAML]:file:_files' \
          '*:JSONL file:_files' ;;
      select)
        _arguments $common $model \
          '(-n --top)'{-n,--top}'[how many examples to keep]:count:' \
          '--measure[uncertainty measure]:measure:(entropy margin)' \
          '--max-tokens[score only the last N tokens]:tokens:' \
          '(-o --output)'{-o,--output}'[write the selected records here]:file:_files' \
          '*:JSONL file:_files' ;;
      classify)
        _arguments $common $model \
          '*'{-l,--labels}'[the label set, comma-separated]:labels:' \
          '--label-field[field holding the gold label]:field:' \
          '--metrics[write the metrics as JSON]:file:_files' \
          '(-o --output)'{-o,--output}'[write the predictions here]:file:_files' \
          '*:JSONL file:_files' ;;
    esac
    return
  fi
