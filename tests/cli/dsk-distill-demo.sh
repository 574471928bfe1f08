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
echo ok
