#!/usr/bin/env bash
# Sharded checkpoints and failing ranks of data-parallel dsk-train on 2 GPUs (NCCL): the GPU side
# of tests/cli/dsk-train-rank-failure.sh and dsk-train-kill9.sh, which CI runs on the CPU (MPI).
# On nvidia-h200-x2, after scripts/device/build-on-device.sh dsk-train dsk-tokenize, with
# .carry/devlibs and .carry/gpu-data carried (its bin/ brings zstd):
#   scripts/device/ckpt-shard-gpu.sh
#  1. ZeRO-1 on 2 GPUs (--nproc-per-node 2): each rank writes its optimizer part; SIGTERM to rank 1
#     alone checkpoints both ranks at one step, exit 143; the resumed run's losses are bit-identical
#     to a run never stopped;
#  2. that 2-GPU ZeRO-1 checkpoint resumes on 1 GPU to the end;
#  3. kill -9 of rank 1: rank 0 stops within dist.timeout (10 s) + 30 s, exit != 0, naming rank 1
#     (its NCCL watchdog or NCCL's async error);
#  4. SIGSTOP of rank 1: rank 0's NCCL watchdog stops it after dist.timeout, naming rank 1;
#  5. kill -9 of a random rank at random moments of a run checkpointing every 2 steps, 6 times:
#     every listed checkpoint is whole, and the run finished after them is bit-identical.
# Prints one line per check (ok or FAIL with the reason) and writes $OUT/ckpt-shard-gpu.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-ckpt-shard-gpu}"
mkdir -p "$OUT"
build="${DSK_BUILD:-$PWD/build-gpu}"
export PATH="$build/tools:$PWD/.carry/gpu-data/bin:$PATH" DSK_SOURCE_DIR="$PWD"
source tests/cli/lib/train-fixture.sh
source tests/cli/lib/mpi-ranks.sh
fail() { echo "FAIL: $*" | tee -a "$OUT/ckpt-shard-gpu.txt"; return 1; }
ok() { echo "ok: $*" | tee -a "$OUT/ckpt-shard-gpu.txt"; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/machine.txt"
[ "$(nvidia-smi -L | wc -l)" -ge 2 ] || { echo "needs 2 GPUs (nvidia-h200-x2)"; exit 1; }
work=$(mktemp -d)
cd "$work"
make_shards
write_config base.yaml llama
sed -i 's/^  grad_accum: 2$/  grad_accum: 8/; s/^  seq_len: 32$/  seq_len: 64/; s/^steps: 40$/steps: 200/; s/^  every: 5$/  every: 2/' base.yaml
train2() { timeout 300 dsk-train -c base.yaml --device cuda --nproc-per-node 2 --set dist.timeout=10 "$@"; }
logged() { [ -f "$1/metrics.jsonl" ] && wc -l <"$1/metrics.jsonl" || echo 0; }
losses() { python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    print(m["step"], repr(m["loss"]), repr(m["grad_norm"]))' "$1"; }
start_run() {  # start_run NAME STEPS ARGS...: background run; returns after STEPS logged steps
  local name=$1 steps=$2
  train2 --run-dir "$name" "${@:3}" >"$name.out" 2>"$name.err" &
  job=$!
  for _ in $(seq 6000); do
    [ "$(logged "$name")" -ge "$steps" ] && break
    kill -0 "$job" 2>/dev/null || break
    sleep 0.01
  done
  rank1=$(rank_pid "$job" 1)
}
finish_run() {  # sets code and seconds since $1
  code=0
  wait "$job" || code=$?
  seconds=$(($(date +%s) - $1))
}

train2 --run-dir straight --set dist.zero=1 >straight.yaml 2>straight.err || fail "straight run: $(tail -5 straight.err)"
ls straight/checkpoints/step-000200/dsk/ >"$OUT/straight-dsk-files.txt" 2>&1

# 1. SIGTERM to rank 1 alone.
(
  start_run term 40 --set dist.zero=1
  [ -n "$rank1" ] || { fail "1: no rank 1"; exit; }
  t0=$(date +%s)
  kill -TERM "$rank1"
  finish_run "$t0"
  [ "$code" = 143 ] || { fail "1: SIGTERM to rank 1: exit $code: $(tail -5 term.err)"; exit; }
  grep -q "^interrupted: true" term.out || { fail "1: no interrupted record"; exit; }
  checkpoint=$(field path term.out)
  [ -s "$checkpoint/dsk/optimizer.rank-00001-of-00002.bin.zst" ] || { fail "1: no rank 1 part in $checkpoint"; exit; }
  train2 --run-dir term --set dist.zero=1 >term.yaml 2>term.err || { fail "1: resume: $(tail -5 term.err)"; exit; }
  cmp <(losses straight/metrics.jsonl) <(losses term/metrics.jsonl) >/dev/null ||
    { fail "1: stopped at step $(field step term.out) and resumed, the losses differ from a run never stopped"; exit; }
  ok "1: SIGTERM to rank 1 at step $(field step term.out): both checkpointed, exit 143, bit-identical resume"
)

# 2. 2 GPUs' ZeRO-1 checkpoint on 1 GPU.
(
  train2 --run-dir grow --set dist.zero=1 --steps 100 >/dev/null 2>grow.err || { fail "2: 2 GPUs: $(tail -5 grow.err)"; exit; }
  [ -s grow/checkpoints/step-000100/dsk/optimizer.yaml ] || { fail "2: the 2-GPU checkpoint has no optimizer parts"; exit; }
  timeout 300 dsk-train -c base.yaml --device cuda --run-dir grow --set dist.zero=1 >grow.yaml 2>grow.err ||
    { fail "2: 1 GPU resuming 2 GPUs' ZeRO-1 checkpoint: $(tail -5 grow.err)"; exit; }
  [ "$(field step grow.yaml)" = 200 ] || { fail "2: $(cat grow.yaml)"; exit; }
  ok "2: a 2-GPU ZeRO-1 checkpoint resumed on 1 GPU to step 200"
)

# 3. kill -9 of rank 1.
(
  start_run killed 20 --set dist.zero=1
  [ -n "$rank1" ] || { fail "3: no rank 1"; exit; }
  t0=$(date +%s)
  kill -9 "$rank1"
  finish_run "$t0"
  cp killed.err "$OUT/kill9-rank1.err"
  [ "$code" != 0 ] && [ "$code" != 124 ] || { fail "3: kill -9 of rank 1: exit $code"; exit; }
  [ "$seconds" -le 40 ] || { fail "3: kill -9 of rank 1: $seconds s to stop"; exit; }
  grep -q "rank 1" killed.err || { fail "3: no message names rank 1: $(tail -5 killed.err)"; exit; }
  ok "3: kill -9 of rank 1: stopped in $seconds s, exit $code: $(grep -m1 'rank 1' killed.err)"
)

# 4. SIGSTOP of rank 1.
(
  start_run frozen 20
  [ -n "$rank1" ] || { fail "4: no rank 1"; exit; }
  t0=$(date +%s)
  kill -STOP "$rank1"
  finish_run "$t0"
  kill -9 "$rank1" 2>/dev/null
  cp frozen.err "$OUT/sigstop-rank1.err"
  [ "$code" != 0 ] && [ "$code" != 124 ] || { fail "4: SIGSTOP of rank 1: exit $code"; exit; }
  [ "$seconds" -le 60 ] || { fail "4: SIGSTOP of rank 1: $seconds s to stop"; exit; }
  grep -q "rank 1 is stuck or gone" frozen.err || { fail "4: $(tail -5 frozen.err)"; exit; }
  ok "4: SIGSTOP of rank 1: stopped in $seconds s, exit $code"
)

# 5. kill -9 of a random rank at random moments.
(
  RANDOM=${DSK_TEST_SEED:-$RANDOM}
  for round in $(seq 6); do
    start_run random $(( $(logged random) + 5 + RANDOM % 20 )) --set dist.zero=1
    sleep "0.0$((RANDOM % 10))"
    victim=$(rank_pid "$job" $((RANDOM % 2)))
    [ -n "$victim" ] && kill -9 "$victim"
    finish_run "$(date +%s)"
    for checkpoint in random/checkpoints/step-*; do
      case $checkpoint in *.tmp-*|*.old-*) continue ;; esac
      [ -d "$checkpoint" ] || continue
      why=$(fail() { echo "$*"; exit 1; }; checkpoint_is_whole "$checkpoint") ||
        { fail "5: round $round: $why"; exit; }
    done
  done
  train2 --run-dir random --set dist.zero=1 >random.yaml 2>random.err || { fail "5: final rerun: $(tail -5 random.err)"; exit; }
  cmp <(losses straight/metrics.jsonl) <(losses random/metrics.jsonl) >/dev/null ||
    { fail "5: killed 6 times, the losses differ from a run never killed"; exit; }
  ok "5: 6 kill -9 of a random rank: only whole checkpoints, bit-identical after the last rerun"
)
echo "--- $OUT/ckpt-shard-gpu.txt"
cat "$OUT/ckpt-shard-gpu.txt"
rm -rf "$work"
