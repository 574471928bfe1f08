#!/usr/bin/env bash
# dsk-serve's engine on the GPU machine, in one call (build included, about 5 minutes on one H200):
#   scripts/device/serve-gpu.sh            (carry .carry/devlibs and .carry/gpu-data: scripts/device/pack-gpu-data.sh)
#  1. builds the GPU tests of the engine and the benchmark driver (scripts/device/build-on-device.sh);
#  2. tests/gpu/paged_attention_test.cu: paged_kv_write (exact) and paged attention (fp32 1e-5,
#     bf16 1e-2 relative L2) against the CPU reference on ragged batches, MLA's absorbed shape,
#     key partitions; tests/gpu/matmul_test.cu: the Linear layers (cuBLASLt, and the few-row
#     matrix-vector kernel of decode steps, kernels/cuda/gemv.cu); tests/gpu/sampling_test.cu:
#     greedy and Gumbel-sampled next tokens (exact ids against the CPU's; sampled frequencies within
#     0.03 of softmax(logits / T));
#  3. tests/gpu/serve_engine_test.cpp: the CUDA paged forward against the CPU's on the HF fixtures
#     (fp32 1e-4), the CUDA engine's greedy tokens (fp32) against the CPU engine's for 32
#     concurrent requests, bf16 engine runs (greedy; seeded sampling on the device);
#  4. the benchmark: llama-1b of ../shared/bench-shapes with random weights, bf16, prompt 128 +
#     128 new tokens: batch-1 decode tokens/s against the bandwidth bound (weight bytes over a
#     measured device copy), and the throughput of 32 concurrent requests, each op by op ("dsk")
#     and with the decode steps replayed as CUDA graphs ("dsk graphs"), beside HF
#     transformers' generate at batch 1 and 32 (scripts/bench/serve_hf.py) in the same run.
# Env: SHAPE (default llama-1b), PROMPT, NEW (default 128 each), CONCURRENT (default 32), HF=0 (skip HF).
# Writes $OUT/serve-gpu.txt (the table, printed last) and the logs beside it.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-serve-gpu}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"
data="$PWD/.carry/gpu-data"
shape=${SHAPE:-llama-1b} prompt=${PROMPT:-128} new=${NEW:-128} concurrent=${CONCURRENT:-32}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
source scripts/device/lib/summary.sh

scripts/device/build-on-device.sh dsk_gpu_matmul dsk_gpu_paged_attention dsk_gpu_sampling dsk_gpu_serve_engine \
  dsk_serve_bench 2>&1 | tee "$OUT/build.log" | tail -5 || { echo "serve-gpu: the build failed ($OUT/build.log)"; exit 1; }
timed_gpu_tests matmul paged_attention sampling serve_engine

config="$data/shapes/$shape/config.json"
"$build/lib/serve/dsk_serve_bench" "$config" --prompt "$prompt" --new "$new" --concurrent "$concurrent" \
  >"$OUT/bench-dsk.txt" 2>"$OUT/bench-dsk.log" || tail -20 "$OUT/bench-dsk.log"
cat "$OUT/bench-dsk.txt"
if [ "${HF:-1}" != 0 ]; then
  python3 scripts/bench/serve_hf.py "$config" --prompt "$prompt" --new "$new" --batch 1 --batch "$concurrent" \
    >"$OUT/bench-hf.txt" 2>"$OUT/bench-hf.log" || tail -20 "$OUT/bench-hf.log"
  cat "$OUT/bench-hf.txt"
fi
field() {  # file, line prefix, key: the number after the key on the first line that starts so
  sed -n "s/^$2\(.* \)\{0,1\}$3 \([0-9.]*\).*/\2/p" "$1" 2>/dev/null | head -1
}
bound=$(field "$OUT/bench-dsk.txt" bound tokens_per_s)
one=$(field "$OUT/bench-dsk.txt" "dsk batch 1 " decode_tokens_per_s)
many=$(field "$OUT/bench-dsk.txt" "dsk batch $concurrent " tokens_per_s)
hf_one=$(field "$OUT/bench-hf.txt" "hf generate batch 1 " tokens_per_s)
hf_many=$(field "$OUT/bench-hf.txt" "hf generate batch $concurrent " tokens_per_s)
ratio() { python3 -c "print(f'{$1/$2:.2f}')" 2>/dev/null || echo "?"; }
summary+=("$(printf '%-34s %s tok/s decode (bound %s: %sx of it); HF generate %s tok/s (dsk/HF %sx)' \
  "$shape batch 1 (bf16, $prompt+$new)" "${one:-?}" "${bound:-?}" "$(ratio "${one:-0}" "${bound:-1}")" \
  "${hf_one:-?}" "$(ratio "${one:-0}" "${hf_one:-1}")")")
summary+=("$(printf '%-34s %s tok/s; HF generate %s tok/s (dsk/HF %sx)' "$shape $concurrent concurrent" \
  "${many:-?}" "${hf_many:-?}" "$(ratio "${many:-0}" "${hf_many:-1}")")")
graph_one=$(field "$OUT/bench-dsk.txt" "dsk graphs batch 1 " decode_tokens_per_s)
graph_many=$(field "$OUT/bench-dsk.txt" "dsk graphs batch $concurrent " tokens_per_s)
summary+=("$(printf '%-34s %s tok/s decode (%sx of the bound); %s concurrent %s tok/s (dsk/HF %sx)' \
  "$shape CUDA graphs, batch 1" "${graph_one:-?}" "$(ratio "${graph_one:-0}" "${bound:-1}")" "$concurrent" \
  "${graph_many:-?}" "$(ratio "${graph_many:-0}" "${hf_many:-1}")")")
echo "== summary" | tee "$OUT/serve-gpu.txt"
printf '%s\n' "${summary[@]}" | tee -a "$OUT/serve-gpu.txt"
