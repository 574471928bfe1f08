#!/usr/bin/env bash
# One rank of a data-parallel dsk-train (CPU backend, 2 ranks under mpirun) fails, stops or is
# signalled: the job ends within a bounded time with a message naming the rank, never hangs, and
# the checkpoints stay whole:
#   - kill -9 of rank 1: mpirun stops rank 0 and names rank 1; the last checkpoint resumes;
#   - rank 1 frozen (SIGSTOP): rank 0's watchdog gives up after dist.timeout, naming rank 1;
#   - an error of rank 1 alone (its own config): it exits at once, its message names it;
#   - rank 1 cannot write its part of a ZeRO-1 checkpoint (a file size limit on rank 1 only): the
#     save fails on both ranks naming rank 1, and the checkpoint before stays and resumes;
#   - SIGTERM to rank 1 only (Slurm pre-emption): both ranks checkpoint the same step and exit
#     cleanly (143, rank 0's record says interrupted); the rerun finishes bit-identical to a run
#     never stopped (same world size, ZeRO-1 parts).
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
source "$(dirname "$0")/lib/mpi-ranks.sh"
command -v mpirun >/dev/null || { echo "SKIP: no mpirun (OpenMPI)"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMP_NUM_THREADS=1
make_shards
write_config base.yaml llama
# Slow enough steps that a signal lands in the middle of the run.
sed -i 's/^  grad_accum: 2$/  grad_accum: 8/; s/^  seq_len: 32$/  seq_len: 64/; s/^steps: 40$/steps: 60/' base.yaml
grep -q "grad_accum: 8" base.yaml && grep -q "^steps: 60" base.yaml || fail "config fixture changed"

train2() { timeout 120 mpirun --oversubscribe -np 2 --mca btl self,vader dsk-train -c base.yaml --device cpu "$@"; }
logged() { [ -f "$1/metrics.jsonl" ] && wc -l <"$1/metrics.jsonl" || echo 0; }
# Starts a 2-rank run in the background (stdout $1.out, stderr $1.err, run directory $1); returns
# once it has logged $2 steps, with the job's pid in $job and rank 1's in $rank1.
start_run() {
  local name=$1 steps=$2
  train2 --run-dir "$name" "${@:3}" >"$name.out" 2>"$name.err" &
  job=$!
  for _ in $(seq 3000); do
    [ "$(logged "$name")" -ge "$steps" ] && break
    kill -0 "$job" 2>/dev/null || fail "$name: the run ended early: $(cat "$name.err")"
    sleep 0.01
  done
  rank1=$(rank_pid "$job" 1)
  [ -n "$rank1" ] || fail "$name: no rank 1 process found"
}
# Waits for the background job; sets $code and $seconds (since $1, a date +%s).
finish_run() {
  code=0
  wait "$job" || code=$?
  seconds=$(($(date +%s) - $1))
  [ "$code" != 124 ] || fail "the job hung (stopped by the test's timeout)"
}
# Resumes run $1 (2 ZeRO-1 ranks) to its last step.
resume_to_end() {
  train2 --run-dir "$1" --set dist.zero=1 >"$1.yaml" 2>"$1.err" || fail "resuming $1: $(cat "$1.err")"
  [ "$(field step "$1.yaml")" = 60 ] || fail "resumed $1: $(cat "$1.yaml")"
}
losses() { metric_lines "$1" loss grad_norm lr; }

# The reference: 2 ZeRO-1 ranks, never stopped.
train2 --run-dir straight --set dist.zero=1 >straight.yaml 2>straight.err || fail "straight run: $(cat straight.err)"
[ "$(field step straight.yaml)" = 60 ] || fail "straight run: $(cat straight.yaml)"

# kill -9 of one rank.
start_run killed 12 --set dist.zero=1
t0=$(date +%s)
kill -9 "$rank1"
finish_run "$t0"
[ "$code" != 0 ] || fail "kill -9 of rank 1: the job exited 0"
[ "$seconds" -le 30 ] || fail "kill -9 of rank 1: the job took $seconds s to stop"
grep -q "rank 1" killed.err || fail "kill -9 of rank 1: no message names rank 1: $(cat killed.err)"
resume_to_end killed

# A frozen rank: the other one's watchdog.
start_run frozen 3 --set dist.timeout=3
t0=$(date +%s)
kill -STOP "$rank1"
finish_run "$t0"
for _ in $(seq 100); do  # mpirun's kill may land just after the job's exit
  kill -0 "$rank1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$rank1/stat" 2>/dev/null)" != Z ] || break
  sleep 0.1
done
kill -0 "$rank1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$rank1/stat" 2>/dev/null)" != Z ] &&
  { kill -9 "$rank1"; fail "the frozen rank 1 was left behind"; }
[ "$code" != 0 ] || fail "frozen rank 1: the job exited 0"
[ "$seconds" -le 30 ] || fail "frozen rank 1: the job took $seconds s to stop (dist.timeout 3)"
grep -q "rank 0 waited 3 s (dist.timeout) in MPI_.*: rank 1 is stuck or gone" frozen.err ||
  fail "frozen rank 1: $(cat frozen.err)"

# An error of one rank alone (it was given another config): no waiting for it in MPI_Finalize.
t0=$(date +%s)
code=0
timeout 120 mpirun --oversubscribe --mca btl self,vader -np 1 dsk-train -c base.yaml --device cpu --run-dir alone : \
  -np 1 dsk-train -c base.yaml --device cpu --run-dir alone --set data.grad_accum=3 >alone.out 2>alone.err || code=$?
[ "$code" != 124 ] || fail "an error of rank 1 alone hung the job"
[ "$code" = 2 ] || fail "an error of rank 1 alone: exit $code: $(cat alone.err)"
[ $(($(date +%s) - t0)) -le 30 ] || fail "an error of rank 1 alone took $(($(date +%s) - t0)) s to stop the job"
grep -q "dsk-train rank 1: error: data.grad_accum 3 must be a multiple" alone.err || fail "rank 1's error: $(cat alone.err)"

# Rank 1 cannot write its checkpoint part: a file size limit on it alone (SIGXFSZ ignored, so
# writes fail with EFBIG). TCP between the ranks: OpenMPI's shared-memory files need more.
train2 --run-dir partial --set dist.zero=1 --steps 5 >/dev/null 2>partial.err || fail "partial, first part: $(cat partial.err)"
code=0
timeout 120 mpirun --oversubscribe --mca btl self,tcp \
  -np 1 dsk-train -c base.yaml --device cpu --run-dir partial --set dist.zero=1 : \
  -np 1 bash -c 'trap "" XFSZ; ulimit -f 16; exec "$@"' limited dsk-train -c base.yaml --device cpu --run-dir partial \
  --set dist.zero=1 >partial.out 2>partial.err || code=$?
[ "$code" != 124 ] || fail "a failed checkpoint part hung the job"
[ "$code" != 0 ] || fail "a failed checkpoint part: the job exited 0"
grep -q "step-000010 dropped: rank 1 could not write its part" partial.err ||
  fail "failed part: no message names rank 1: $(cat partial.err)"
grep -q "File too large" partial.err || fail "failed part: rank 1's reason is missing: $(cat partial.err)"
[ "$(cd partial/checkpoints && echo step-*)" = step-000005 ] ||
  fail "failed part: the checkpoints are $(ls partial/checkpoints), not step-000005 alone"
resume_to_end partial

# SIGTERM to one rank only: both checkpoint the same step and stop; the rerun is bit-identical.
start_run term 12 --set dist.zero=1
t0=$(date +%s)
kill -TERM "$rank1"
finish_run "$t0"
[ "$code" = 143 ] || fail "SIGTERM to rank 1: exit $code, not 143: $(cat term.err)"
grep -q "^interrupted: true" term.out || fail "SIGTERM to rank 1: no interrupted record from rank 0: $(cat term.out)"
stopped=$(field step term.out)
[ "$stopped" -gt 0 ] && [ "$stopped" -lt 60 ] || fail "SIGTERM to rank 1: stopped at step '$stopped'"
[ -d "$(field path term.out)" ] || fail "SIGTERM to rank 1: the checkpoint $(field path term.out) is missing"
for file in optimizer.yaml optimizer.rank-00000-of-00002.bin.zst optimizer.rank-00001-of-00002.bin.zst; do
  [ -s "$(field path term.out)/dsk/$file" ] || fail "SIGTERM to rank 1: the checkpoint has no dsk/$file"
done
resume_to_end term
cmp <(losses straight/metrics.jsonl) <(losses term/metrics.jsonl) ||
  fail "stopped at step $stopped and resumed, the run differs from one never stopped"
cmp straight/checkpoints/step-000060/model.safetensors term/checkpoints/step-000060/model.safetensors ||
  fail "stopped and resumed, the final weights differ"
echo "dsk-train rank failures: ok (SIGTERM at step $stopped)"
