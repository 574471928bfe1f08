#!/usr/bin/env bash
# Asynchronous checkpoints survive kill -9 at any moment: a run killed at random moments (while
# training, while a checkpoint is being written in the background) and rerun each time leaves only
# whole checkpoints behind, and the run finished that way is bit-identical to one never killed (the
# same losses at every step and the same final optimizer state).
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMP_NUM_THREADS=2  # the same reductions in every run
make_shards
write_config base.yaml llama
# Slow enough steps (8 micro-batches of 4 x 64 tokens) and a checkpoint every 2 steps, so that kills
# land in the middle of steps and of background writes alike.
sed -i 's/^  grad_accum: 2$/  grad_accum: 8/; s/^  seq_len: 32$/  seq_len: 64/; s/^  every: 5$/  every: 2/; s/^steps: 40$/steps: 24/' base.yaml
grep -q "grad_accum: 8" base.yaml && grep -q "^  every: 2" base.yaml && grep -q "^steps: 24" base.yaml ||
  fail "config fixture changed"
dsk-train -c base.yaml --print-config | grep -q "^  async: true" || fail "checkpoints are not asynchronous by default"

losses() { python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    print(m["step"], repr(m["loss"]), repr(m["grad_norm"]), repr(m["lr"]))' "$1"; }

dsk-train -q -c base.yaml >straight.yaml
losses run/metrics.jsonl >straight.losses
cp run/checkpoints/step-000024/dsk/optimizer.bin.zst straight.opt
mv run straight

seed=${DSK_TEST_SEED:-$RANDOM}
echo "kill moments from seed $seed (DSK_TEST_SEED=$seed reproduces them)"
RANDOM=$seed
kills=0
logged() { [ -f run/metrics.jsonl ] && wc -l <run/metrics.jsonl || echo 0; }
for round in $(seq 8); do
  # Kill after 1 to 4 more logged steps, then 0 to 29 ms more: a moment inside some step or some
  # background write, however fast the machine (a fixed delay let fast machines finish first).
  target=$(( $(logged) + 1 + RANDOM % 4 ))
  [ "$target" -lt 24 ] || break
  dsk-train -q -c base.yaml >/dev/null 2>round.err &
  pid=$!
  for _ in $(seq 3000); do
    [ "$(logged)" -ge "$target" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  sleep "0.0$((RANDOM % 3))$((RANDOM % 10))"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
  # Whatever is listed as a checkpoint is whole.
  for checkpoint in run/checkpoints/step-*; do
    [ -d "$checkpoint" ] || continue
    case $checkpoint in *.tmp-*|*.old-*) continue ;; esac
    for file in config.json model.safetensors dsk/state.yaml dsk/optimizer.bin.zst; do
      [ -s "$checkpoint/$file" ] || fail "round $round: $checkpoint has no $file"
    done
    zstd -tq "$checkpoint/dsk/optimizer.bin.zst" || fail "round $round: $checkpoint's optimizer state is truncated"
  done
done
[ "$kills" -ge 4 ] || fail "only $kills runs were still going when killed: the test proves little"

dsk-train -q -c base.yaml >final.yaml 2>final.err || fail "the last rerun failed: $(cat final.err)"
[ "$(field step final.yaml)" = 24 ] || fail "final record: $(cat final.yaml)"
losses run/metrics.jsonl >final.losses
cmp straight.losses final.losses || fail "a run killed $kills times differs from one never killed: $(diff straight.losses final.losses | head -5)"
cmp straight.opt run/checkpoints/step-000024/dsk/optimizer.bin.zst || fail "final optimizer state differs"
echo "dsk-train kill -9: ok ($kills kills)"
