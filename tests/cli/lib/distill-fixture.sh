# Sourced by tests/cli/dsk-distill-*.sh, after lib/train-fixture.sh (./shards, ./tokenizer.json):
#   train_teacher STEPS          a llama teacher (hidden 32, 2 layers) trained by dsk-train -> ./teacher
#   write_distill_config FILE    a dsk-distill config: student ./student (made by init), teacher
#                                ./teacher, cache ./cache, run dir ./distill; 30 steps of 4 x 2 x 32
train_teacher() {
  local steps=$1
  write_config teacher.yaml llama
  dsk-train -q -c teacher.yaml --steps "$steps" -o teacher-run \
    --set checkpoint.every=0 --set eval.every=0 --set logging.every=10 >teacher.rec
  rm -rf teacher
  mv "$(field path teacher.rec)" teacher
  sed -i 's|^path: .*|path: teacher|' teacher.rec  # where it is now, for tests that pipe the record
}

write_distill_config() {
  cat >"$1" <<'YAML'
model:
  init_from: student
data:
  train: shards
  seq_len: 32
  micro_batch: 4
  grad_accum: 2
optim:
  lr: 0.003
schedule:
  warmup_steps: 3
steps: 30
seed: 2
eval:
  every: 10
  batches: 2
checkpoint:
  dir: distill
  every: 10
  keep: 2
logging:
  every: 1
distill:
  teacher: teacher
  cache: cache
  alpha: 0.7
  temperature: 1.5
  top_k: 16
  cache_part_windows: 8
YAML
}
