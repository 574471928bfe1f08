#!/usr/bin/env bash
# dsk-train's configs, pipes and failures: --print-config round trip, a token budget, records
# through stdin (--data -, --init-from -, sample -), sampling, and each bad input with its exit
# code and a message naming what is wrong (DESIGN.md: 2 usage/config, 3 data).
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
make_shards
write_config base.yaml llama

# expect CODE PATTERN command...: the command fails with CODE and stderr matches PATTERN.
expect() {
  local code=$1 pattern=$2
  shift 2
  local got=0
  "$@" >out.txt 2>err.txt || got=$?
  [ "$got" = "$code" ] || fail "$*: exit $got, expected $code: $(cat err.txt)"
  grep -Eq -- "$pattern" err.txt || fail "$*: stderr does not match '$pattern': $(cat err.txt)"
}

# --print-config prints a config that loads to the same config.
dsk-train -c base.yaml --set optim.lr=0.01 --print-config >printed.yaml
dsk-train -c printed.yaml --print-config | diff printed.yaml - || fail "--print-config does not round-trip"
grep -q "lr: 0.01" printed.yaml || fail "--set not applied"

# Config errors: file, line and key.
sed 's/^optim:/optim:\n  learning_rate: 0.1/' base.yaml >unknown.yaml
expect 2 "unknown.yaml:[0-9]+.*optim.learning_rate" dsk-train -c unknown.yaml
sed 's/^  seq_len: 32/  seq_len: many/' base.yaml >type.yaml
expect 2 "type.yaml:[0-9]+.*data.seq_len" dsk-train -c type.yaml
grep -v '^steps:' base.yaml >nolength.yaml
expect 2 "steps or tokens" dsk-train -c nolength.yaml
# A key that is itself a mapping (once exit 3 with a bare yaml-cpp error), a model config that
# once trained (rms_norm_eps -1).
{ cat base.yaml; echo '{a: 1}: 2'; } >mapkey.yaml
expect 2 "mapkey.yaml:[0-9]+: a key must be a plain name, not a mapping" dsk-train -c mapkey.yaml
expect 3 '"rms_norm_eps" must be a positive number' dsk-train -c base.yaml --set model.config.rms_norm_eps=-1
expect 2 "vocabulary of 267 tokens but the model has 200" dsk-train -c base.yaml --set model.config.vocab_size=200
expect 3 "nothing: no such shard" dsk-train -c base.yaml --set data.train=nothing
expect 2 "exactly one of model.config_json, model.config and model.init_from" \
  dsk-train -c base.yaml --set model.init_from=somewhere

expect 3 "validation data: no shard holds seq_len \+ 1 = 40001" \
  dsk-train -c base.yaml --set data.seq_len=40000 --set data.micro_batch=1 -o longseq
[ ! -e longseq ] || fail "a run directory was made for a run that could not start"

# A token budget: ceil(1000 / (4 x 32 x 2)) = 4 steps.
dsk-train -q -c nolength.yaml --set tokens=1000 -o budget >budget.yaml
[ "$(field step budget.yaml)" = 4 ] || fail "token budget: $(cat budget.yaml)"

# Records through pipes: shards into training, a checkpoint into sampling and into init_from.
dsk-tokenize -q -t tokenizer.json -o piped --documents paragraph --val-fraction 0.1 corpus.txt |
  dsk-train -q -c base.yaml --data - -o piped-run --steps 6 >piped.yaml
[ "$(field step piped.yaml)" = 6 ] || fail "--data -: $(cat piped.yaml)"
checkpoint=$(field path piped.yaml)
for file in config.json model.safetensors generation_config.json tokenizer.json tokenizer_config.json \
  dsk/config.yaml dsk/state.yaml dsk/optimizer.bin.zst; do
  [ -f "$checkpoint/$file" ] || fail "checkpoint lacks $file"
done
grep -q '"model_type": "llama"' "$checkpoint/config.json" || fail "config.json: $(cat "$checkpoint/config.json")"
grep -q '"eos_token_id": 266' "$checkpoint/generation_config.json" || fail "generation_config.json"

dsk-train sample - -n 20 --temperature 0 <piped.yaml >greedy1.txt
dsk-train sample "$checkpoint" -n 20 --temperature 0 >greedy2.txt
cmp greedy1.txt greedy2.txt || fail "greedy sampling is not deterministic"
[ -s greedy1.txt ] || fail "sample printed nothing"
dsk-train sample "$checkpoint" --prompt "In the" -n 10 --samples 3 --seed 7 >three.txt
expect 3 "^dsk-train: error: nowhere/step-000001: no such checkpoint directory$" dsk-train sample nowhere/step-000001
expect 3 "^dsk-train: error: three.txt: not a checkpoint directory" dsk-train sample three.txt
[ "$(grep -c '^In the' three.txt)" = 3 ] || fail "three samples starting with the prompt: $(cat three.txt)"

# init_from: a new run starts from the weights of the last one, so its first loss is lower than
# a fresh start's.
sed '/^model:/,/^data:/{/^data:/!d}' base.yaml >nomodel.yaml
dsk-train -q -c nomodel.yaml -o continued --init-from - --steps 2 <piped.yaml >continued.yaml
first_continued=$(head -1 continued/metrics.jsonl | python3 -c 'import json,sys; print(json.load(sys.stdin)["loss"])')
first_fresh=$(head -1 piped-run/metrics.jsonl | python3 -c 'import json,sys; print(json.load(sys.stdin)["loss"])')
python3 -c "import sys; sys.exit(0 if $first_continued < $first_fresh - 0.1 else 1)" ||
  fail "init_from: first loss $first_continued is not below a fresh start's $first_fresh"
expect 2 "shards" dsk-train -c nomodel.yaml --init-from - <shards.yaml
# A flag replaces what it stands for: --init-from the config's model.config, --steps its tokens.
dsk-train -q -c base.yaml -o init-flag --init-from - --steps 2 <piped.yaml >init-flag.yaml
[ "$(field step init-flag.yaml)" = 2 ] || fail "--init-from over a config with model.config: $(cat init-flag.yaml)"
dsk-train -q -c nolength.yaml --set tokens=100000 --steps 3 -o steps-flag >steps-flag.yaml
[ "$(field step steps-flag.yaml)" = 3 ] || fail "--steps over a config with tokens: $(cat steps-flag.yaml)"

# Paths in a config file are relative to the file; from --set and flags, to the working
# directory; --print-config prints them absolute.
mkdir -p cfg sub/deeper
sed 's|^  train: shards$|  train: ../shards|; s|^  dir: run$|  dir: ../cfg-run|' base.yaml >cfg/train.yaml
grep -q "train: ../shards" cfg/train.yaml && grep -q "dir: ../cfg-run" cfg/train.yaml || fail "config fixture changed"
(cd sub/deeper && dsk-train -q -c ../../cfg/train.yaml --steps 2) >from-sub.yaml
[ "$(field path from-sub.yaml)" = "../../cfg-run/checkpoints/step-000002" ] || fail "config-relative paths: $(cat from-sub.yaml)"
[ -f cfg-run/checkpoints/step-000002/tokenizer.json ] || fail "the shards' tokenizer, from another directory"
(cd sub/deeper && dsk-train -c ../../cfg/train.yaml --print-config) >printed-sub.yaml
grep -q -- "- $(pwd -P)/shards$" printed-sub.yaml && grep -q "dir: $(pwd -P)/cfg-run$" printed-sub.yaml ||
  fail "--print-config paths: $(cat printed-sub.yaml)"
(cd sub/deeper && expect 3 "^dsk-train: error: nothing: no such shard" dsk-train -c ../../cfg/train.yaml --set data.train=nothing)
(cd sub/deeper && expect 3 "^dsk-train: error: nothing: no such shard" dsk-train -c ../../cfg/train.yaml --data nothing)

# Divergence: an absurd learning rate makes every loss NaN after the first update; the run stops
# after max_bad_steps in a row, naming the cause.
expect 3 "3 steps in a row had a NaN or Inf loss" \
  dsk-train -c base.yaml -o diverged --set optim.lr=1e30 --set optim.grad_clip=0 --set max_bad_steps=3

# A second process on the same run directory is refused while the first runs.
dsk-train -q -c base.yaml -o busy --steps 100000 >/dev/null 2>&1 &
busy=$!
for _ in $(seq 400); do [ -s busy/metrics.jsonl ] && break; sleep 0.05; done
expect 2 "another dsk-train is running" dsk-train -c base.yaml -o busy
kill -TERM "$busy"
wait "$busy" || true

# A damaged checkpoint: the resume names the file instead of training from garbage.
latest=$(ls -d busy/checkpoints/step-* | tail -1)
head -c 100 "$latest/dsk/optimizer.bin.zst" >truncated && mv truncated "$latest/dsk/optimizer.bin.zst"
expect 3 "optimizer.bin.zst" dsk-train -c base.yaml -o busy
sed -i 's/^step: .*/step: many/' "$latest/dsk/state.yaml"
expect 3 "state.yaml" dsk-train -c base.yaml -o busy

# A half-written checkpoint left by a crash is removed, not resumed from.
mkdir -p piped-run/checkpoints/step-000099.tmp-12345
dsk-train -c base.yaml --data piped -o piped-run --steps 8 >resumed.yaml 2>resumed.err
grep -q "left half-written" resumed.err || fail "leftover not reported: $(cat resumed.err)"
[ ! -e piped-run/checkpoints/step-000099.tmp-12345 ] || fail "leftover not removed"
[ "$(field step resumed.yaml)" = 8 ] || fail "resume after a leftover"

# Devices: bf16 is a GPU precision; cuda where no GPU is visible (CI, this machine) is a resource
# error, whether or not the build has CUDA; and eval's record on the CPU.
expect 2 "bf16 needs device cuda" dsk-train -c base.yaml --device cpu --precision bf16 -o bf16-run
if ! nvidia-smi -L >/dev/null 2>&1; then
  expect 4 "device cuda: (no GPU is visible|this dsk was built without CUDA)" dsk-train -c base.yaml --device cuda -o cuda-run
  [ ! -e cuda-run ] || fail "a run directory was made for a run on a missing GPU"
fi
dsk-train eval "$checkpoint" --data shards --seq-len 32 --batches 2 >eval.yaml
[ "$(field kind eval.yaml)" = eval ] && [ "$(field split eval.yaml)" = val ] || fail "eval record: $(cat eval.yaml)"
python3 -c "import math,sys; l=float(sys.argv[1]); p=float(sys.argv[2]); assert 0 < l < 10 and abs(math.exp(l)-p) < 1e-6*p" \
  "$(field val_loss eval.yaml)" "$(field perplexity eval.yaml)" || fail "eval numbers: $(cat eval.yaml)"
expect 3 "no such checkpoint directory" dsk-train eval "$work/missing" --data shards
# The same windows as the run's own evaluation: with F32 weights in the checkpoint (the same
# numbers the run had), the record's val_loss is the run's at its last step.
dsk-train -q -c base.yaml --steps 3 --set checkpoint.dtype=F32 -o evalrun >evalrun.yaml
dsk-train eval "$(field path evalrun.yaml)" --data shards --batch 4 --batches 2 >evalrun-eval.yaml
[ "$(field val_loss evalrun.yaml)" = "$(field val_loss evalrun-eval.yaml)" ] ||
  fail "eval and the run's val_loss differ: $(cat evalrun.yaml evalrun-eval.yaml)"
echo "dsk-train errors: ok"
