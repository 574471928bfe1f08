#!/usr/bin/env bash
# int8 gradients with error feedback resume bit-exactly: each rank's residual (what its int8
# levels have not sent yet) is part of the checkpoint (dsk/error_feedback.rank-*.safetensors), so
# 2 ranks that stop at step 10 and resume to step 20 give the losses, norms, final weights,
# optimizer state and residuals of 2 ranks that never stopped; with ZeRO-1 too, and for
# deepseek_v3 under expert parallelism (a rank's residual covers its own experts). Without the
# residual a resumed run drifts from the first step after the resume. Then:
#   - another number of ranks, int8 switched on or off, or another split of the experts cannot
#     use the residual: the run starts it from zero (or drops it), rank 0 says so in one line,
#     and the run goes on to the end;
#   - a checkpoint whose state.yaml says residuals were saved but one is missing or truncated is
#     refused with exit 3 and a message naming the file;
#   - dsk-finetune (whose adapter checkpoints rank 0 writes alone, the ranks' residuals gathered to
#     it) resumes bit-exactly too.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
use_mpi
require_tool dsk-finetune
in_scratch_dir
make_shards

# A constant learning rate after warmup: --steps 10 then 20 is the same schedule as 20 straight.
int8=(--device cpu --set schedule.type=constant --set dist.grad_dtype=int8 --set dist.bucket_mb=0.001)

# same_run NAME A B: runs A and B have the same losses and final state, residuals included.
same_run() {
  local name=$1 a=$2/checkpoints/step-000020 b=$3/checkpoints/step-000020
  cmp <(step_columns "$2/metrics.jsonl") <(step_columns "$3/metrics.jsonl") ||
    fail "$name: the resumed run's losses differ: $(diff <(step_columns "$2/metrics.jsonl") <(step_columns "$3/metrics.jsonl") | head -4)"
  cmp "$a/model.safetensors" "$b/model.safetensors" || fail "$name: final weights differ"
  cmp <(optimizer_state "$a") <(optimizer_state "$b") || fail "$name: final optimizer state differs"
  for rank in 0 1; do
    file=dsk/error_feedback.rank-0000$rank-of-00002.safetensors
    [ -s "$a/$file" ] || fail "$name: no $file in the checkpoint"
    cmp "$a/$file" "$b/$file" || fail "$name: final $file differs"
  done
}

# straight_and_resumed NAME MODEL_TYPE SETTINGS...: 20 steps on 2 ranks, and 10 + 10 resumed.
straight_and_resumed() {
  local name=$1 model_type=$2
  shift 2
  write_config "$name.yaml" "$model_type"
  sed -i 's/^steps: 40$/steps: 20/' "$name.yaml"
  mpi 2 dsk-train -q -c "$name.yaml" "${int8[@]}" --run-dir "$name-straight" "$@" >/dev/null 2>"$name.err" ||
    fail "$name: straight: $(cat "$name.err")"
  mpi 2 dsk-train -q -c "$name.yaml" "${int8[@]}" --run-dir "$name-resumed" --steps 10 "$@" >/dev/null 2>"$name.err" ||
    fail "$name: first half: $(cat "$name.err")"
  cp -r "$name-resumed" "$name-half"  # the step-10 checkpoint, for the runs below
  mpi 2 dsk-train -c "$name.yaml" "${int8[@]}" --run-dir "$name-resumed" "$@" >/dev/null 2>"$name.err" ||
    fail "$name: resumed: $(cat "$name.err")"
  grep -q "resuming from" "$name.err" || fail "$name: the second half did not resume: $(cat "$name.err")"
  ! grep -q "error feedback" "$name.err" || fail "$name: the residual was not restored: $(cat "$name.err")"
  same_run "$name" "$name-straight" "$name-resumed"
}

straight_and_resumed llama llama
straight_and_resumed zero llama --set dist.zero=1
straight_and_resumed experts deepseek_v3 --set dist.expert_parallel=2
grep -q "^error_feedback_ranks: 2$" llama-half/checkpoints/step-000010/dsk/state.yaml ||
  fail "state.yaml does not say that 2 ranks saved residuals: $(cat llama-half/checkpoints/step-000010/dsk/state.yaml)"

# expect_resume NAME PATTERN RANKS SETTINGS...: the step-10 checkpoint of the llama run (or of
# $model's) resumed on RANKS ranks logs PATTERN once (rank 0 alone), names each setting that
# changed once, and runs to step 20.
model=llama
expect_resume() {
  local name=$1 pattern=$2 ranks=$3
  shift 3
  cp -r $model-half "$name"
  mpi "$ranks" dsk-train -c $model.yaml --device cpu --set schedule.type=constant --run-dir "$name" "$@" \
    >"$name.yaml" 2>"$name.err" || fail "$name: $(cat "$name.err")"
  [ "$(field step "$name.yaml")" = 20 ] || fail "$name: record: $(cat "$name.yaml")"
  [ "$(grep -c "int8 error feedback" "$name.err")" = 1 ] && grep -q "$pattern" "$name.err" ||
    fail "$name: expected one line matching '$pattern': $(cat "$name.err")"
  # The settings that differ from the checkpoint's (dist.bucket_mb at least) are named once each.
  local changed
  changed=$(sed -n 's/.*resuming with a setting that differs from the checkpoint.s config: //p' "$name.err")
  [ -n "$changed" ] && [ -z "$(sort <<<"$changed" | uniq -d)" ] ||
    fail "$name: each changed setting should be named once: $(cat "$name.err")"
}
expect_resume one-rank "residuals that 2 ranks saved .* are dropped (this run has one rank)" 1 \
  --set dist.grad_dtype=int8
expect_resume fp32 "dropped (this run has no int8 error feedback)" 2
expect_resume no-feedback "dropped (this run has no int8 error feedback)" 2 --set dist.grad_dtype=int8 \
  --set dist.error_feedback=false
# 4 ranks (grad_accum 4 to split the micro-batches, a setting the log names too).
expect_resume four-ranks "starts from zero: .* holds the residuals of 2 ranks, which cannot be mapped onto 4" 4 \
  --set dist.grad_dtype=int8 --set data.grad_accum=4
# Another split of the experts over the same 2 ranks: another layout of each rank's gradients.
model=experts
expect_resume all-experts "starts from zero: .* holds [0-9]* values, this rank's gradients are [0-9]*" 2 \
  --set dist.grad_dtype=int8
# And the other way: a 1-rank int8 checkpoint (no residual) taken on by 2 int8 ranks.
write_config single.yaml llama
sed -i 's/^steps: 40$/steps: 20/' single.yaml
dsk-train -q -c single.yaml "${int8[@]}" --run-dir single --steps 10 >/dev/null
! [ -e single/checkpoints/step-000010/dsk/error_feedback.rank-00000-of-00001.safetensors ] ||
  fail "one rank wrote a residual (it has none)"
mpi 2 dsk-train -c single.yaml "${int8[@]}" --run-dir single >/dev/null 2>single.err || fail "single: $(cat single.err)"
[ "$(grep -c "int8 error feedback" single.err)" = 1 ] && grep -q "starts from zero: .* has none" single.err ||
  fail "1 rank's checkpoint on 2 int8 ranks: $(cat single.err)"

# A checkpoint that should hold the residuals and lacks one, or has half of one: exit 3.
refuse() {
  local name=$1 file=$2 pattern=$3
  local code=0
  mpi 2 dsk-train -q -c llama.yaml "${int8[@]}" --run-dir "$name" >/dev/null 2>"$name.err" || code=$?
  [ "$code" = 3 ] || fail "$name: exit $code, expected 3: $(cat "$name.err")"
  grep -q "$file.*$pattern" "$name.err" || fail "$name: the message should name $file: $(cat "$name.err")"
  ! grep -qi "segmentation\|core dumped\|terminate called" "$name.err" || fail "$name: crashed: $(cat "$name.err")"
}
residual=checkpoints/step-000010/dsk/error_feedback.rank-00001-of-00002.safetensors
cp -r llama-half missing
rm "missing/$residual"
refuse missing "$residual" "missing"
cp -r llama-half truncated
truncate -s 100 "truncated/$residual"
refuse truncated "$residual" ""

# dsk-finetune's checkpoints (an adapter, written by rank 0 alone) carry every rank's residual too.
base=$(make_tiny_base)
tune=(--base "$base" --data "$DSK_SOURCE_DIR/assets/finetune/train.jsonl" --device cpu --set data.seq_len=160
      --set data.micro_batch=2 --set data.grad_accum=2 --set eval.every=0 --set logging.every=1
      --set schedule.type=constant --set dist.grad_dtype=int8)
mpi 2 dsk-finetune train -q "${tune[@]}" --steps 12 -o tune-straight >/dev/null 2>tune.err || fail "finetune: $(cat tune.err)"
mpi 2 dsk-finetune train -q "${tune[@]}" --steps 6 -o tune-resumed >/dev/null 2>tune.err ||
  fail "finetune, first half: $(cat tune.err)"
for rank in 0 1; do
  [ -s tune-resumed/checkpoints/step-000006/dsk/error_feedback.rank-0000$rank-of-00002.safetensors ] ||
    fail "finetune: no residual of rank $rank: $(ls tune-resumed/checkpoints/step-000006/dsk)"
done
mpi 2 dsk-finetune train "${tune[@]}" --steps 12 -o tune-resumed >/dev/null 2>tune.err || fail "finetune, resumed: $(cat tune.err)"
grep -q "resuming from" tune.err && ! grep -q "int8 error feedback" tune.err ||
  fail "finetune: not resumed with the residual: $(cat tune.err)"
cmp <(step_columns tune-straight/metrics.jsonl) <(step_columns tune-resumed/metrics.jsonl) ||
  fail "finetune: the resumed run's losses differ"
cmp tune-straight/adapter/adapter_model.safetensors tune-resumed/adapter/adapter_model.safetensors ||
  fail "finetune: the resumed adapter differs"
echo "PASS"
