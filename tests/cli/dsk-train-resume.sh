#!/usr/bin/env bash
# dsk-train stops cleanly on SIGTERM, SIGINT and SIGUSR1 (a checkpoint, then exit 143/130/143), and
# rerunning the same command continues to a result bit-identical to a run that never stopped: the
# same loss, grad norm and lr at every step, and the same final weights. Both model families.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# Reductions are deterministic for a fixed thread count; the comparison needs the same count.
export OMP_NUM_THREADS=2
make_shards

# Columns of metrics.jsonl that must agree bit for bit (not time, not tokens/s).
losses() { metric_lines "$1" loss grad_norm lr expert_load; }

# Starts dsk-train in the background, waits until it has logged `after` steps, sends `signal`.
interrupt_after() {
  local config=$1 after=$2 signal=$3
  dsk-train -q -c "$config" >interrupted.yaml 2>interrupted.err &
  local pid=$!
  for _ in $(seq 600); do
    [ -f run/metrics.jsonl ] && [ "$(wc -l <run/metrics.jsonl)" -ge "$after" ] && break
    sleep 0.01
  done
  kill "-$signal" "$pid"
  local code=0
  wait "$pid" || code=$?
  echo "$code"
}

for model_type in llama deepseek_v3; do
  write_config base.yaml "$model_type"
  # Steps of 16 micro-batches of 4 x 64 tokens: slow enough (tens of ms) that a signal sent once N steps are
  # logged always lands with many steps still to go, however fast the machine.
  sed -i 's/^  grad_accum: 2$/  grad_accum: 16/; s/^  seq_len: 32$/  seq_len: 64/' base.yaml
  grep -q "grad_accum: 16" base.yaml && grep -q "seq_len: 64" base.yaml || fail "config fixture changed"

  # The reference: one uninterrupted run.
  dsk-train -q -c base.yaml >straight.yaml
  [ "$(field kind straight.yaml)" = checkpoint ] || fail "$model_type: record: $(cat straight.yaml)"
  [ "$(field step straight.yaml)" = 40 ] || fail "$model_type: step: $(cat straight.yaml)"
  [ "$(field model_type straight.yaml)" = "$model_type" ] || fail "$model_type: model_type"
  losses run/metrics.jsonl >straight.losses
  [ "$(wc -l <straight.losses)" = 40 ] || fail "$model_type: 40 metrics lines expected"
  cp run/checkpoints/step-000040/dsk/optimizer.bin.zst straight.opt
  ls run/checkpoints >straight.ls
  [ "$(cat straight.ls | tr '\n' ' ')" = "step-000035 step-000040 " ] || fail "$model_type: keep 2: $(cat straight.ls)"
  mv run straight

  # Interrupted three times, by each signal, and resumed each time by the same command.
  for stop in "TERM 143 3" "INT 130 8" "USR1 143 13"; do
    read -r signal expected after <<<"$stop"
    code=$(interrupt_after base.yaml "$after" "$signal")
    [ "$code" = "$expected" ] || fail "$model_type: SIG$signal: exit $code, expected $expected: $(cat interrupted.err)"
    grep -q "rerun the same command to resume" interrupted.err || fail "$model_type: SIG$signal message: $(cat interrupted.err)"
    ls run/checkpoints | grep -qv '\.tmp-' || fail "$model_type: no checkpoint after SIG$signal"
    # The record of the checkpoint it saved, marked, for the next tool in a pipe.
    [ "$(field interrupted interrupted.yaml)" = true ] || fail "$model_type: SIG$signal record: $(cat interrupted.yaml)"
    saved=$(field path interrupted.yaml)
    [ "$saved" = "run/checkpoints/step-$(printf %06d "$(field step interrupted.yaml)")" ] && [ -f "$saved/config.json" ] ||
      fail "$model_type: SIG$signal record's checkpoint: $(cat interrupted.yaml)"
  done
  dsk-train sample - -n 4 --temperature 0 <interrupted.yaml >interrupted.txt || fail "$model_type: sample - of an interrupted run's record"
  [ -s interrupted.txt ] || fail "$model_type: sample printed nothing"
  dsk-train -q -c base.yaml >resumed.yaml
  [ "$(field step resumed.yaml)" = 40 ] || fail "$model_type: resumed step"
  losses run/metrics.jsonl >resumed.losses
  diff straight.losses resumed.losses || fail "$model_type: losses differ between the straight and the interrupted run"
  cmp straight.opt run/checkpoints/step-000040/dsk/optimizer.bin.zst ||
    fail "$model_type: final master weights and moments differ"
  cmp straight/checkpoints/step-000040/model.safetensors run/checkpoints/step-000040/model.safetensors ||
    fail "$model_type: final model.safetensors differs"
  [ "$(field val_loss straight.yaml)" = "$(field val_loss resumed.yaml)" ] || fail "$model_type: val_loss differs"

  # A finished run rerun: nothing to do, the same record.
  dsk-train -q -c base.yaml >again.yaml
  [ "$(field path again.yaml)" = "$(field path resumed.yaml)" ] || fail "$model_type: rerun of a finished run"
  [ "$(wc -l <run/metrics.jsonl)" = 40 ] || fail "$model_type: a finished run logged again"

  # Extending the run: more steps continue from the last checkpoint.
  dsk-train -q -c base.yaml --steps 42 >longer.yaml
  [ "$(field step longer.yaml)" = 42 ] || fail "$model_type: extended run"
  rm -rf run straight
done
echo "dsk-train resume: ok"
