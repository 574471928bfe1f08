#!/usr/bin/env bash
# dsk-distill on the GPU machine, after
#   scripts/device/build-on-device.sh dsk-train dsk-tokenize dsk-distill dsk_gpu_distill
# with .carry/gpu-data carried (scripts/device/pack-gpu-data.sh):
#   scripts/device/distill-gpu.sh
#  1. dsk_gpu_distill: the distillation kernels (teacher top-k, KL/JSD loss and gradient) against
#     their kernels/cpu reference, fp32 and bf16;
#  2. tests/cli/dsk-distill-{train,cache,demo}.sh with the tools on CUDA (device auto): resume
#     bit-exact, online teacher = F32 cache, cache resume byte-identical, distilled beats data-only;
#  3. the measurement for docs/benchmarks.md: the bundled corpus (KJV, 1.0 M tokens of DeepSeek-V3's
#     tokenizer) -> a llama teacher trained by dsk-train -> a student of half its parameters
#     (dsk-distill init --ratio 0.5; transformers loads it) -> the teacher cache -> the student
#     distilled, and the same student trained on the data alone for the same steps -> dsk-distill
#     eval of both (retained quality by loss, top-1 agreement, KL, decode tokens/s). Ends with a
#     markdown table.
# Env: PARTS (default "ops cli bench"), TEACHER_STEPS (600), STUDENT_STEPS (600), TOP_K (32),
# ALPHA (0.5), TEMPERATURE (1.0), EVAL_BATCHES (16); the corpus: CORPUS_LIST (a file naming one text
# file per line, each a document; default the bundled KJV, a document per paragraph) and CORPUS_NAME. Writes $OUT/distill-gpu.txt and the logs beside it.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-distill-gpu}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"  # scripts/device/build-on-device.sh
data="${DSK_GPU_DATA:-$PWD/.carry/gpu-data}"  # scripts/device/pack-gpu-data.sh
export PATH="$build/tools:$data/bin:$PATH" DSK_SOURCE_DIR="$PWD" DSK_BUILD_DIR="$build"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
parts=" ${PARTS:-ops cli bench} "
summary=()
status=0
record() {  # NAME CODE SECONDS
  summary+=("$(printf '%-40s %s (%ss)' "$1" "$([ "$2" = 0 ] && echo pass || echo "FAIL $2")" "$3")")
  [ "$2" = 0 ] || status=1
}

if [[ $parts == *" ops "* ]]; then
  start=$SECONDS
  "$build/tests/gpu/dsk_gpu_distill" >"$OUT/dsk_gpu_distill.log" 2>&1
  code=$?
  record dsk_gpu_distill $code $((SECONDS - start))
  [ $code = 0 ] || tail -40 "$OUT/dsk_gpu_distill.log"
fi

if [[ $parts == *" cli "* ]]; then
  for test in dsk-distill-train dsk-distill-cache dsk-distill-demo; do
    start=$SECONDS
    bash "tests/cli/$test.sh" >"$OUT/$test.log" 2>&1
    code=$?
    record "$test (cuda)" $code $((SECONDS - start))
    [ $code = 0 ] || tail -20 "$OUT/$test.log"
  done
fi

if [[ $parts == *" bench "* ]]; then
  work=$(mktemp -d)
  teacher_steps=${TEACHER_STEPS:-600} student_steps=${STUDENT_STEPS:-600}
  start=$SECONDS
  if [ -n "${CORPUS_LIST:-}" ]; then
    mapfile -t corpus <"$CORPUS_LIST"
    documents=file
  else
    corpus=(assets/corpus/kjv.txt.zst)
    documents=paragraph
  fi
  dsk-tokenize -q -t "$data/tokenizer/tokenizer.json" -o "$work/shards" --documents $documents --val-fraction 0.05 \
    --seed 0 "${corpus[@]}" >"$work/shards.yaml"
  record "tokenize ${#corpus[@]} files: $(sed -n 's/^tokens: //p' "$work/shards.yaml" | head -1) tokens" $? $((SECONDS - start))
  # The teacher: llama d768 L12 H12 (GQA, 4 KV heads) ff2048, tied embeddings over DeepSeek-V3's
  # 129280-token vocabulary: 175 M parameters, 99 M of them the embedding. HIDDEN, LAYERS,
  # INTERMEDIATE, HEADS, KV_HEADS, SEQ, BATCH change it (a CPU smoke test of this script: tiny ones).
  hidden=${HIDDEN:-768} layers=${LAYERS:-12} seq=${SEQ:-512} batch=${BATCH:-16}
  run_sections() {  # STEPS RUN_DIR: data, optimizer, schedule, length, cadences (teacher and students alike)
    cat <<YAML
data:
  train: [$work/shards]
  seq_len: $seq
  micro_batch: $batch
optim:
  lr: 0.001
  weight_decay: 0.1
schedule:
  warmup_steps: 50
  min_lr: 0.0001
steps: $1
eval:
  every: 0
  batches: 8
checkpoint:
  dir: $2
  every: 0
logging:
  every: 20
YAML
  }
  {
    cat <<YAML
model:
  config:
    model_type: llama
    vocab_size: 129280
    hidden_size: $hidden
    intermediate_size: ${INTERMEDIATE:-2048}
    num_hidden_layers: $layers
    num_attention_heads: ${HEADS:-12}
    num_key_value_heads: ${KV_HEADS:-4}
    head_dim: $((hidden / ${HEADS:-12}))
    max_position_embeddings: $seq
    tie_word_embeddings: true
    bos_token_id: 0
    eos_token_id: 1
YAML
    run_sections "$teacher_steps" "$work/teacher-run"
  } >"$work/teacher.yaml"
  dsk-train -q -c "$work/teacher.yaml" >"$work/teacher.rec" 2>"$OUT/teacher.log"
  record "teacher: dsk-train $teacher_steps steps" $? $((SECONDS - start))
  teacher=$(sed -n 's/^path: //p' "$work/teacher.rec")

  start=$SECONDS
  dsk-distill -q init "$teacher" -o "$work/student" --ratio 0.5 >"$work/init.rec" 2>"$OUT/init.log"
  record "student: dsk-distill init --ratio 0.5" $? $((SECONDS - start))
  start=$SECONDS
  # The student is an HF checkpoint: transformers loads it, with dsk's parameter count.
  python3 - "$work/student" "$(sed -n 's/^parameters: //p' "$work/init.rec")" >"$OUT/transformers-load.log" 2>&1 <<'PY'
import sys
from transformers import AutoModelForCausalLM
count = AutoModelForCausalLM.from_pretrained(sys.argv[1]).num_parameters()
print("transformers", count, "dsk", sys.argv[2])
sys.exit(0 if count == int(sys.argv[2]) else 1)
PY
  record "transformers loads the student" $? $((SECONDS - start))
  # The students' runs: the teacher's data and optimizer, from the student init made.
  { printf 'model:\n  init_from: %s\n' "$work/student"; run_sections "$student_steps" "$work/alone"; } >"$work/alone.yaml"
  {
    printf 'model:\n  init_from: %s\n' "$work/student"
    run_sections "$student_steps" "$work/distill"
    cat <<YAML
distill:
  teacher: $teacher
  cache: $work/cache
  alpha: ${ALPHA:-0.5}
  temperature: ${TEMPERATURE:-1.0}
  top_k: ${TOP_K:-32}
YAML
  } >"$work/distill.yaml"
  start=$SECONDS
  dsk-distill -q -c "$work/distill.yaml" cache >"$work/cache.rec" 2>"$OUT/cache.log"
  record "teacher cache" $? $((SECONDS - start))
  start=$SECONDS
  dsk-distill -q -c "$work/distill.yaml" >"$work/distilled.rec" 2>"$OUT/distill.log"
  record "student distilled $student_steps steps" $? $((SECONDS - start))
  start=$SECONDS
  dsk-train -q -c "$work/alone.yaml" >"$work/alone.rec" 2>"$OUT/alone.log"
  record "student on data alone $student_steps steps" $? $((SECONDS - start))
  for run in distilled alone; do
    start=$SECONDS
    dsk-distill eval "$teacher" "$(sed -n 's/^path: //p' "$work/$run.rec")" --data "$work/shards" \
      --seq-len "$seq" --batch 8 --batches "${EVAL_BATCHES:-16}" --decode-tokens 128 >"$OUT/eval-$run.yaml" 2>"$OUT/eval-$run.log"
    record "eval $run" $? $((SECONDS - start))
  done
  cp "$work"/*.rec "$work"/*.yaml "$OUT/" 2>/dev/null
  python3 - "$OUT" "$teacher_steps" "$student_steps" "${CORPUS_NAME:-KJV}" <<'PY' | tee "$OUT/distill-bench.md"
import sys
out, teacher_steps, student_steps, corpus = sys.argv[1:]
def load(path):
    fields = {}
    for line in open(path):
        if ": " in line:
            key, value = line.rstrip("\n").split(": ", 1)
            fields[key] = value
    return fields
d, a = load(f"{out}/eval-distilled.yaml"), load(f"{out}/eval-alone.yaml")
f = lambda x, n=4: f"{float(x):.{n}f}"
print(f"Teacher: llama, {int(d['teacher_parameters'])/1e6:.1f} M parameters, {teacher_steps} steps "
      f"on {corpus} (DeepSeek-V3 tokenizer); students: {int(d['student_parameters'])/1e6:.1f} M parameters "
      f"({f(d['parameter_ratio'], 2)} of the teacher), {student_steps} steps each; eval on {d['tokens']} validation tokens, {d['device']}.")
print()
print("| model | val loss | perplexity | retained quality (loss) | top-1 agreement | KL(teacher \\|\\| student) | decode tokens/s | decode speed-up | memory MiB |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
print(f"| teacher | {f(d['teacher_val_loss'])} | {f(d['teacher_perplexity'], 2)} | 1 | 1 | 0 | {f(d['teacher_decode_tokens_per_s'], 1)} | 1 | {int(d['teacher_memory_bytes'])/2**20:.0f} |")
for name, r in (("student, distilled", d), ("student, data alone", a)):
    print(f"| {name} | {f(r['student_val_loss'])} | {f(r['student_perplexity'], 2)} | {f(r['retained_quality'])} | "
          f"{f(r['top1_agreement'])} | {f(r['kl'])} | {f(r['student_decode_tokens_per_s'], 1)} | {f(r['decode_speedup'], 2)}x | {int(r['student_memory_bytes'])/2**20:.0f} |")
print()
print(f"Bar {d['bar']}: {'met' if d['bar_met'] == 'true' else 'not met'} by the distilled student "
      f"(retained quality {f(d['retained_quality'])}).")
PY
  rm -rf "$work"
fi

echo "== distill-gpu" | tee "$OUT/distill-gpu.txt"
printf '%s\n' "${summary[@]}" | tee -a "$OUT/distill-gpu.txt"
exit $status
