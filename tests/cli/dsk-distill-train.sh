#!/usr/bin/env bash
# dsk-distill init and train: init's shapes (by ratio, by explicit fields, MoE experts, random) give
# checkpoints that dsk-train samples from and trains on; training from an F32 cache and from the
# online teacher give the same losses bit for bit; a run stopped by SIGTERM resumes to the same
# losses and weights as one never stopped; records chain through stdin; --print-config shows the
# distill section.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
source "$(dirname "$0")/lib/distill-fixture.sh"
in_scratch_dir
export OMP_NUM_THREADS=1  # tiny models; and the same thread count every run keeps reductions bit-identical
make_shards
train_teacher 20

losses() { metric_lines "$1" loss grad_norm lr; }

# init: by ratio (from a checkpoint record on stdin), by explicit fields, and at random.
dsk-distill -q init - -o student --ratio 0.5 <teacher.rec >init.rec
[ "$(field kind init.rec)" = checkpoint ] && [ "$(field init init.rec)" = teacher ] || fail "init record: $(cat init.rec)"
[ "$(field teacher_parameters init.rec)" -gt "$(field parameters init.rec)" ] || fail "init: not smaller"
for file in config.json model.safetensors tokenizer.json generation_config.json; do
  [ -f student/$file ] || fail "init: no $file in the student"
done
dsk-distill -q init teacher -o explicit --layers 1 --hidden 16 --intermediate 40 >explicit.rec
[ "$(field layers explicit.rec)" = 1 ] && [ "$(field hidden_size explicit.rec)" = 16 ] &&
  [ "$(field intermediate_size explicit.rec)" = 40 ] || fail "explicit init: $(cat explicit.rec)"
grep -q '"hidden_size": 16' explicit/config.json || fail "explicit init: config.json"
dsk-distill -q init teacher -o random --layers 1 --random --seed 3 >random.rec
[ "$(field init random.rec)" = random ] || fail "random init: $(cat random.rec)"
cmp -s explicit/model.safetensors random/model.safetensors && fail "random init equals the teacher's slice"
# The student is a checkpoint like any other: dsk-train samples from it.
dsk-train sample student -n 5 --seed 1 >sample.txt || fail "dsk-train sample on the student"
[ -s sample.txt ] || fail "no sample text"

# MoE: fewer routed experts (taken at even spacing) and layers.
write_config moe.yaml deepseek_v3
dsk-train -q -c moe.yaml --steps 3 -o moe-run --set checkpoint.every=0 --set eval.every=0 >moe.rec
dsk-distill -q init "$(field path moe.rec)" -o moe-student --experts 3 --layers 1 >moe-student.rec
[ "$(field n_routed_experts moe-student.rec)" = 3 ] || fail "moe init: $(cat moe-student.rec)"
python3 -c 'import json, sys; c = json.load(open("moe-student/config.json")); sys.exit(not (c["n_routed_experts"] == 3 and c["num_hidden_layers"] == 1 and c["first_k_dense_replace"] == 1))' ||
  fail "moe init: config.json $(cat moe-student/config.json)"

# --print-config: the distill keys with their defaults, a valid config again.
write_distill_config distill.yaml
dsk-distill -c distill.yaml --print-config >printed.yaml
grep -q "^  loss: forward_kl" printed.yaml && grep -q "^  top_k: 16" printed.yaml || fail "print-config: $(cat printed.yaml)"
dsk-distill -c printed.yaml --print-config | cmp -s - printed.yaml || fail "print-config does not read back"

# From an F32 cache and online: the same teacher rows, so the same losses.
dsk-distill -q -c distill.yaml --set distill.cache_dtype=F32 cache >cache.rec
dsk-distill -q -c distill.yaml --set distill.cache_dtype=F32 --steps 10 -o from-cache >from-cache.rec
dsk-distill -q -c distill.yaml --set distill.cache=null --steps 10 -o online >online.rec
[ "$(field teacher_cache from-cache.rec)" = cache ] || fail "record: $(cat from-cache.rec)"
losses from-cache/metrics.jsonl >from-cache.losses
losses online/metrics.jsonl >online.losses
[ "$(wc -l <online.losses)" = 10 ] || fail "online: 10 metrics lines expected"
diff from-cache.losses online.losses || fail "the online teacher and its F32 cache give different losses"

# Stopped by SIGTERM and resumed: the same losses and weights as straight through (online
# teacher, longer steps so that the signal lands with steps to go).
slow=(--set distill.cache=null --set data.grad_accum=16 --steps 60)
dsk-distill -q -c distill.yaml "${slow[@]}" -o straight >straight.rec
stop_after_lines 12 resumed/metrics.jsonl dsk-distill -q -c distill.yaml "${slow[@]}" -o resumed
[ "$(field interrupted interrupted.yaml)" = true ] || fail "no interrupted record: $(cat interrupted.yaml)"
dsk-distill -q -c distill.yaml "${slow[@]}" -o resumed >resumed.rec
losses straight/metrics.jsonl >straight.losses
losses resumed/metrics.jsonl >resumed.losses
diff straight.losses resumed.losses || fail "a resumed distillation's losses differ from a straight run's"
cmp straight/checkpoints/step-000060/dsk/optimizer.bin.zst resumed/checkpoints/step-000060/dsk/optimizer.bin.zst ||
  fail "a resumed distillation's weights differ from a straight run's"

# A pipe: the teacher's record into --teacher -, the student's record into eval.
dsk-distill -q -c distill.yaml --set distill.cache=null --steps 2 -o piped --teacher - <teacher.rec >piped.rec
[ "$(field teacher piped.rec)" = "$PWD/teacher" ] || [ "$(field teacher piped.rec)" = teacher ] ||
  fail "--teacher - : $(cat piped.rec)"
dsk-distill eval teacher - --data shards --batches 2 <piped.rec >eval.rec 2>/dev/null
for key in teacher_val_loss student_val_loss top1_agreement kl retained_quality bar_met decode_speedup; do
  [ -n "$(field $key eval.rec)" ] || fail "eval record lacks $key: $(cat eval.rec)"
done
echo ok
