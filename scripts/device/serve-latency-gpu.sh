#!/usr/bin/env bash
# dsk-serve's latency under concurrent streams, over HTTP, on the GPU machine:
#   scripts/device/serve-latency-gpu.sh     (carry .carry/devlibs and .carry/gpu-data: scripts/device/pack-gpu-data.sh)
#  1. builds dsk-serve (scripts/device/build-on-device.sh);
#  2. a checkpoint of llama-1b of ../shared/bench-shapes (.carry/gpu-data/shapes) with random
#     weights in bf16 (transformers), and a byte-level BPE tokenizer of the shape's 32,000 tokens
#     trained by `tokenizers` on the machine's transformers sources, so that streamed chunks are
#     real tokens of the shape's vocabulary;
#  3. dsk-serve on CUDA (bf16, --max-batch 64) and scripts/bench/serve_latency.py: STREAMS (64)
#     concurrent streaming clients sending REQUESTS (256) greedy completions of PROMPT (128)
#     random prompt tokens and NEW (128) new tokens; time to first token and inter-token latency
#     p50/p90/p99, output tokens/s.
# Writes $OUT/serve-latency.yaml (the record) and the logs beside it.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-serve-latency}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"
data="$PWD/.carry/gpu-data"
shape=${SHAPE:-llama-1b}
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null; rm -rf "$work"' EXIT
[ -x "$build/tools/dsk-serve" ] || scripts/device/build-on-device.sh dsk-serve 2>&1 | tail -3
python3 - "$data/shapes/$shape" "$work/model" >"$OUT/checkpoint.log" 2>&1 <<'PY' || { tail -20 "$OUT/checkpoint.log"; exit 1; }
import glob, json, os, sys
import torch, transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM
shape, out = sys.argv[1:]
config = AutoConfig.from_pretrained(shape)
torch.manual_seed(0)
with torch.device("cuda"):
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
model.save_pretrained(out)
tokenizer = Tokenizer(models.BPE())
tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tokenizer.decoder = decoders.ByteLevel()
sources = sorted(glob.glob(os.path.join(os.path.dirname(transformers.__file__), "**", "*.py"), recursive=True))[:400]
tokenizer.train(sources, trainers.BpeTrainer(vocab_size=config.vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
tokenizer.save(os.path.join(out, "tokenizer.json"))
json.dump({"bos_token": "<s>", "eos_token": "</s>"}, open(os.path.join(out, "tokenizer_config.json"), "w"))
print("vocab", tokenizer.get_vocab_size())
PY
"$build/tools/dsk-serve" --model bench="$work/model" --device cuda --max-batch 64 --port 0 2>"$OUT/serve.log" &
server=$!
base=
for _ in $(seq 1200); do
  [ -n "$base" ] || base=$(sed -n 's/^dsk-serve: listening on \(http:[^ ]*\)$/\1/p' "$OUT/serve.log")
  [ -n "$base" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/ready")" = 200 ] && break
  kill -0 $server 2>/dev/null || { tail -20 "$OUT/serve.log"; exit 1; }
  sleep 0.1
done
vocab=$(python3 -c "import json; print(json.load(open('$data/shapes/$shape/config.json'))['vocab_size'])")
common=(--base "$base" --model bench --vocab "$vocab" --prompt-tokens "${PROMPT:-128}" --max-tokens "${NEW:-128}")
python3 scripts/bench/serve_latency.py "${common[@]}" --streams 8 --requests 16 --seed 1 >"$OUT/warmup.yaml"
python3 scripts/bench/serve_latency.py "${common[@]}" --streams "${STREAMS:-64}" --requests "${REQUESTS:-256}" \
  | tee "$OUT/serve-latency.yaml"
status=${PIPESTATUS[0]}
curl -s "$base/metrics" >"$OUT/metrics.txt"
kill -TERM $server; wait $server
exit $status
