#!/usr/bin/env bash
# dsk-bench-nccl's bootstrap between real local processes on loopback, through each launcher it
# reads: torchrun-style env (started by hand here), mpirun (OpenMPI) and --nproc-per-node.
# Ranks with different flags stop with exit 2 naming the flag; a missing rank 0 is a timeout
# (exit 5), not a hang. Without a GPU every rank then stops with exit 4 (the expected end here).
set -euo pipefail
tool="${DSK_BUILD_DIR:?}/tools/dsk-bench-nccl"
[ -x "$tool" ] || { echo "FAIL: $tool is not built" >&2; exit 1; }
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  echo "a GPU is present: this test checks the no-GPU end of the bootstrap (scripts/device/bench-nccl.sh runs the real thing)"
  exit 77
fi
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_rank RANK WORLD PORT args...: one rank in the background, its exit code in rank$RANK.code.
start_rank() {
  local rank=$1 world=$2 port=$3; shift 3
  ( code=0; RANK=$rank WORLD_SIZE=$world MASTER_ADDR=127.0.0.1 MASTER_PORT=$port timeout 60 dsk-bench-nccl "$@" \
      >"rank$rank.out" 2>"rank$rank.err" || code=$?; echo "$code" >"rank$rank.code" ) &
  pids+=($!)
}
wait_ranks() { wait "${pids[@]}"; pids=(); }
code_of() { cat "rank$1.code"; }

# Same flags, three ranks: the rendezvous completes, then every rank stops on the missing GPU (4).
port=$(free_port)
for rank in 2 1 0; do start_rank $rank 3 "$port" all_reduce -b 8 -e 1K -f 2; sleep 0.2; done  # rank 0 last: others retry
wait_ranks
for rank in 0 1 2; do
  [ "$(code_of $rank)" = 4 ] || fail "rank $rank exited $(code_of $rank), expected 4: $(cat rank$rank.err)"
  grep -q "error: rank 0: " "rank$rank.err" || fail "rank $rank does not name rank 0's reason: $(cat rank$rank.err)"
done

# Different flags on rank 1: every rank exits 2 and names the flag.
port=$(free_port)
start_rank 0 2 "$port" -b 8 -e 1K -f 2 -n 20
start_rank 1 2 "$port" -b 8 -e 1K -f 2 -n 50
wait_ranks
for rank in 0 1; do
  [ "$(code_of $rank)" = 2 ] || fail "mismatched flags: rank $rank exited $(code_of $rank), expected 2: $(cat rank$rank.err)"
  grep -q "different flags: rank 0 and rank 1 differ in 'n=20' vs 'n=50'" "rank$rank.err" ||
    fail "rank $rank's message: $(cat rank$rank.err)"
done

# Rank 0 never comes: rank 1 gives up after the timeout with exit 5.
port=$(free_port)
start=$(date +%s)
start_rank 1 2 "$port" --rendezvous-timeout 2
wait_ranks
[ "$(code_of 1)" = 5 ] || fail "no rank 0: exited $(code_of 1), expected 5: $(cat rank1.err)"
grep -q "timed out after 2 s: rank 0 is not listening on 127.0.0.1:$port" rank1.err || fail "timeout message: $(cat rank1.err)"
[ $(($(date +%s) - start)) -lt 30 ] || fail "the timeout took too long"

# --nproc-per-node: the tool starts its own ranks with a rendezvous on a free port.
code=0
timeout 60 dsk-bench-nccl --nproc-per-node 4 -b 8 -e 1K -f 2 -v >local.out 2>local.err || code=$?
[ "$code" = 4 ] || fail "--nproc-per-node 4 exited $code, expected 4: $(cat local.err)"
for rank in 0 1 2 3; do grep -q "launch: env rank $rank of 4" local.err || fail "rank $rank missing: $(cat local.err)"; done

# mpirun -np 2 (OpenMPI): ranks from OMPI_COMM_WORLD_*.
if command -v mpirun >/dev/null; then
  port=$(free_port)
  code=0
  timeout 60 mpirun --allow-run-as-root --oversubscribe -np 2 -x MASTER_PORT="$port" dsk-bench-nccl -b 8 -e 1K -f 2 -v \
    >mpi.out 2>mpi.err || code=$?
  [ "$code" != 0 ] || fail "mpirun: a run without GPU succeeded"
  grep -q "launch: mpi rank 1 of 2" mpi.err || fail "mpirun: ranks not detected: $(cat mpi.err)"
  # (mpirun aborts the job when the first rank exits non-zero, so the other may not get to say it.)
  grep -q 'error: rank 0: ' mpi.err || fail "mpirun: the ranks should stop on rank 0's reason: $(cat mpi.err)"
  # Built with MPI, mpirun's ranks meet through MPI itself: a MASTER_ADDR that resolves nowhere is not used.
  if ldd "$tool" | grep -q libmpi; then
    code=0
    timeout 60 mpirun --allow-run-as-root --oversubscribe -np 2 -x MASTER_ADDR=no-such-host.invalid dsk-bench-nccl \
      >mpi.out 2>mpi.err || code=$?
    grep -q 'error: rank 0: ' mpi.err || fail "mpirun through MPI: $(cat mpi.err)"
    ! grep -q "no-such-host" mpi.err || fail "mpirun through MPI used MASTER_ADDR: $(cat mpi.err)"
  fi
fi
echo "dsk-bench-nccl rendezvous: ok"
