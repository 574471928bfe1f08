#!/usr/bin/env bash
# The CPU benchmarks that need PyTorch / HF on the same machine, run on the GPU machine's 16 cores
# with .carry/cpu carried (scripts/device/pack-cpu-bench.sh builds it):
#   scripts/device/bench-cpu.sh
#  1. tokenizer: dsk-bench-tokenizer (1 and 16 threads) against HF tokenizers (scripts/bench/tokenizer_hf.py)
#     on the parity corpus;
#  2. training: dsk-train's tokens/s against PyTorch + transformers (scripts/bench/train_hf.py) training
#     the same model (configs/tiny-deepseek.yaml) on the same shards, both on 16 threads, fp32;
#  3. interchange: transformers loads a dsk-train checkpoint as it is, and its greedy continuation
#     is compared with `dsk-train sample --temperature 0` (the demo's deepseek_v3; "families": a
#     llama and a qwen2 trained for 60 steps);
#  4. the demo config's learning curve, and variants of it, side by side.
# Writes $OUT/{tokenizer,train,greedy,curves}.txt and $OUT/runs.tar.gz (metrics.jsonl of each run).
# Env: TRAIN_THREADS (default "$(nproc) 2"), PARTS (default "tokenizer train curves greedy families"), VARIANTS (default "demo tied lr1e-2 hidden96";
# the cores are shared evenly between them).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-bench-cpu}"
mkdir -p "$OUT"
carry="$PWD/.carry/cpu"
[ -d "$carry/lib" ] || tar -C "$carry" -xJf "$carry/lib.tar.xz"
export LD_LIBRARY_PATH="$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$carry/bin:$PATH"
tokenizer="$carry/tokenizer/tokenizer.json"
threads=$(nproc)
work=$(mktemp -d)
echo "cpu: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $threads threads; $(python3 -c 'import torch, transformers, tokenizers; print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)')" | tee "$OUT/machine.txt"

parts=" ${PARTS:-tokenizer train curves greedy families} "
variants=(${VARIANTS:-demo tied lr1e-2 hidden96})
if [[ $parts == *" tokenizer "* ]]; then
echo "== 1. tokenizer" | tee "$OUT/tokenizer.txt"
corpus="$carry/corpus.txt"
{
  dsk-bench-tokenizer "$tokenizer" "$corpus" --threads 1 --repeat 3
  dsk-bench-tokenizer "$tokenizer" "$corpus" --threads "$threads" --repeat 3
  RAYON_NUM_THREADS=1 python3 scripts/bench/tokenizer_hf.py "$tokenizer" "$corpus" --threads 1 --repeat 3
  python3 scripts/bench/tokenizer_hf.py "$tokenizer" "$corpus" --threads "$threads" --repeat 3
} 2>&1 | tee -a "$OUT/tokenizer.txt"
fi

dsk-tokenize -q -t "$tokenizer" -o "$work/shards" --documents paragraph --val-fraction 0.05 --seed 0 \
  assets/corpus/kjv.txt.zst >/dev/null
cd "$work"
# The demo config names its shards relative to itself (../runs/demo/shards): a copy here finds these.
mkdir -p runs/demo configs && ln -s "$work/shards" runs/demo/shards
cp "$OLDPWD/configs/tiny-deepseek.yaml" configs/
config="$PWD/configs/tiny-deepseek.yaml"
if [[ $parts == *" train "* ]]; then
echo "== 2. training throughput (tokens/s, fp32; dsk/HF is the ratio)" | tee "$OUT/train.txt"
for count in ${TRAIN_THREADS:-$threads 2}; do
  OMP_NUM_THREADS=$count dsk-train -q -c "$config" -o "throughput-$count" --steps 30 --set eval.every=0 \
    --set eval.batches=1 --set logging.every=1 >"throughput-$count.yaml"
  dsk=$(python3 - "throughput-$count/metrics.jsonl" <<'PY'
import json, statistics, sys
print(f'{statistics.median([json.loads(line)["tokens_per_s"] for line in open(sys.argv[1])][5:]):.1f}')
PY
)
  checkpoint=$(sed -n 's/^path: //p' "throughput-$count.yaml")
  hf=$(python3 "$OLDPWD/scripts/bench/train_hf.py" throughput "$checkpoint" shards/train-00000.tok --batch 8 --seq 64 \
    --steps 10 --threads "$count" 2>>"$OUT/train.txt" | sed -n 's/^hf_train tokens_per_s \([0-9.]*\).*/\1/p')
  echo "threads $count dsk_train $dsk hf_train $hf dsk/hf $(python3 -c "print(f'{$dsk / $hf:.2f}')" 2>/dev/null)" |
    tee -a "$OUT/train.txt"
done
fi

if [[ $parts == *" curves "* ]]; then
per_run=$((threads / ${#variants[@]}))
echo "== 4. learning curves ($per_run threads each, side by side)" | tee "$OUT/curves.txt"
run_variant() {
  local name=$1
  shift
  OMP_NUM_THREADS=$per_run dsk-train -q -c "$config" -o "curve-$name" --set checkpoint.every=0 --set eval.every=50 "$@" \
    >"curve-$name.yaml" 2>"curve-$name.err"
}
declare -A variant_flags=(
  [demo]=""
  [tied]="--set model.config.tie_word_embeddings=true"
  [lr1e-2]="--set optim.lr=0.01"
  [hidden96]="--set model.config.hidden_size=96 --set model.config.intermediate_size=288"
)
for name in "${variants[@]}"; do
  # shellcheck disable=SC2086
  run_variant "$name" ${variant_flags[$name]} &
done
wait
for run in curve-*; do
  [ -d "$run" ] || continue
  python3 - "$run" <<'PY' | tee -a "$OUT/curves.txt"
import json, sys
run = sys.argv[1]
lines = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
print(run, " ".join(f"{m['step']}:{m['loss']:.3f}" for m in lines[::5]), "tokens/s", round(lines[-1]["tokens_per_s"]))
PY
  grep -h "val_loss" "$run.yaml" | sed "s/^/$run /" | tee -a "$OUT/curves.txt"
  tail -3 "$run.err" >>"$OUT/curves.txt"
done
fi

if [[ $parts == *" greedy "* ]]; then
echo "== 3. transformers loads a dsk-train checkpoint" | tee "$OUT/greedy.txt"
final=$(sed -n 's/^path: //p' curve-demo.yaml)
{
  echo "dsk:          $(dsk-train sample "$final" --prompt 'And God said' -n 24 --temperature 0)"
  echo "transformers: $(python3 "$OLDPWD/scripts/bench/train_hf.py" greedy "$final" --prompt 'And God said' -n 24 2>greedy.err)"
} | tee -a "$OUT/greedy.txt"
tail -5 greedy.err >>"$OUT/greedy.txt"
fi

if [[ $parts == *" families "* ]]; then
# The same check for llama and qwen2 (tied embeddings, q/k/v biases), 60 steps each.
echo "== 3b. transformers loads dsk-train checkpoints of llama and qwen2" | tee "$OUT/families.txt"
for family in llama qwen2; do
  sed '/^model:/,/^data:/{/^data:/!d}' "$config" >"configs/$family.yaml"
  OMP_NUM_THREADS=$threads dsk-train -q -c "configs/$family.yaml" -o "family-$family" --steps 60 --set eval.every=0 \
    --set model.config="{model_type: $family, vocab_size: 129280, hidden_size: 64, intermediate_size: 192, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 512, tie_word_embeddings: $([ $family = qwen2 ] && echo true || echo false), bos_token_id: 0, eos_token_id: 1}" \
    >"family-$family.yaml" 2>>"$OUT/families.txt"
  final=$(sed -n 's/^path: //p' "family-$family.yaml")
  {
    echo "$family dsk:          $(dsk-train sample "$final" --prompt 'And God said' -n 16 --temperature 0)"
    echo "$family transformers: $(python3 "$OLDPWD/scripts/bench/train_hf.py" greedy "$final" --prompt 'And God said' -n 16 2>"$family.err")"
  } | tee -a "$OUT/families.txt"
  tail -3 "$family.err" >>"$OUT/families.txt"
done
fi
runs=$(ls -d curve-*/metrics.jsonl throughput-*/metrics.jsonl 2>/dev/null)
[ -z "$runs" ] || tar -czf "$OUT/runs.tar.gz" $runs
