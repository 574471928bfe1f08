#!/usr/bin/env bash
# The issue's CI check: a teacher trained briefly by dsk-train on the bundled corpus, a student of
# about half its parameters made from it by `dsk-distill init`, then the same student trained for
# the same steps twice, once distilled (cache + train) and once on the data alone (dsk-train). The
# distilled one must match its teacher better on the validation windows: lower KL(teacher ||
# student) and higher top-1 agreement (`dsk-distill eval`).
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
source "$(dirname "$0")/lib/distill-fixture.sh"
in_scratch_dir
export OMP_NUM_THREADS=1  # tiny models: one thread is fastest, and on a loaded machine by far
make_shards
train_teacher 150

dsk-distill -q init teacher -o student --ratio 0.5 >init.rec
ratio=$(field ratio init.rec)
awk -v r="$ratio" 'BEGIN { exit !(r > 0.4 && r < 0.6) }' || fail "init: parameter ratio $ratio, not about 0.5"

write_distill_config distill.yaml
common=(--steps 60 --set distill.alpha=0.9 --set distill.top_k=32 --set distill.temperature=1
        --set checkpoint.every=0 --set eval.every=0)
dsk-distill -q -c distill.yaml "${common[@]}" cache >cache.rec
dsk-distill -q -c distill.yaml "${common[@]}" >distilled.rec
# The same student, steps, data order and optimizer, on the data alone.
sed '/^distill:/,$d' distill.yaml >alone.yaml
dsk-train -q -c alone.yaml --steps 60 --set checkpoint.every=0 --set eval.every=0 -o alone >alone.rec

dsk-distill eval teacher "$(field path distilled.rec)" --data shards >distilled.eval 2>distilled.table
dsk-distill eval teacher "$(field path alone.rec)" --data shards >alone.eval 2>/dev/null
grep -q "retained quality" distilled.table || fail "eval: no table on stderr"
for key in kl top1_agreement retained_quality student_val_loss; do
  echo "$key: distilled $(field $key distilled.eval), data alone $(field $key alone.eval)" >&2
done
awk -v d="$(field kl distilled.eval)" -v a="$(field kl alone.eval)" 'BEGIN { exit !(d < a) }' ||
  fail "the distilled student's KL to the teacher is not lower than the data-only student's"
awk -v d="$(field top1_agreement distilled.eval)" -v a="$(field top1_agreement alone.eval)" 'BEGIN { exit !(d > a) }' ||
  fail "the distilled student's top-1 agreement is not higher than the data-only student's"

# A task set of dsk-finetune eval's format beside the windows: both models measured exactly as
# dsk-finetune eval measures each (same accuracy, loss), and the retained ratio from the two.
books=" Genesis, Exodus, Psalms, Proverbs, Matthew, John"
tasks="$DSK_SOURCE_DIR/assets/finetune/test.jsonl"
student=$(field path distilled.rec)
dsk-distill eval teacher "$student" --data shards --batches 2 --tasks "$tasks" --labels "$books" --task-limit 12 \
  --max-new-tokens 2 >tasks.eval 2>tasks.table
grep -q "retained task quality" tasks.table || fail "eval --tasks: no task table on stderr"
[ "$(field task_examples tasks.eval)" = 12 ] && [ "$(field task_metric tasks.eval)" = accuracy ] ||
  fail "eval --tasks record: $(cat tasks.eval)"
for who in teacher student; do
  model=teacher; [ $who = student ] && model=$student
  dsk-finetune eval "$model" --data "$tasks" --labels "$books" --limit 12 --max-new-tokens 2 >$who.ft 2>/dev/null
  for key in accuracy macro_f1 loss exact_match; do
    [ "$(field ${who}_task_$key tasks.eval)" = "$(field $key $who.ft)" ] ||
      fail "$who's task $key: $(field ${who}_task_$key tasks.eval) by dsk-distill, $(field $key $who.ft) by dsk-finetune"
  done
done
awk -v r="$(field retained_task_quality tasks.eval)" -v s="$(field student_task_accuracy tasks.eval)" \
  -v t="$(field teacher_task_accuracy tasks.eval)" 'BEGIN { exit !(t == 0 ? r == "" : (r - s / t) ^ 2 < 1e-12) }' ||
  fail "retained_task_quality $(field retained_task_quality tasks.eval) is not student / teacher accuracy"
echo ok
