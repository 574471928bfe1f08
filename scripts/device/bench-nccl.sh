#!/usr/bin/env bash
# dsk-bench-nccl on the GPU machine (nvidia-h200-x2), against torch.distributed's NCCL collectives.
# Run from the repository root with .carry/nccl carried (scripts/device/pack-bench-nccl.sh builds it)
# and, for a real mpirun, .carry/mpirun (scripts/device/pack-mpirun.sh):
#   scripts/device/bench-nccl.sh [full|large]
# full (the default): the recorded table. Every collective from 8 B to 8 GiB, float32 sum, in-place
#   and out-of-place, -c 1 (every element checked), -n 20 -w 5, under --nproc-per-node 2, -g 2 and
#   mpirun (all_reduce to 1 GiB); torch.distributed over the same sizes. About 1 minute on 2 x H200.
# large: the busbw comparison, read against its noise. 64 MiB to 8 GiB, -n 50 -w 5, dsk and torch
#   each run twice, interleaved (dsk, torch, dsk, torch), then torch once with all-ones inputs (does
#   the data matter?) and dsk -g 2 once. About 3 minutes.
# Results: $OUT/bench-nccl.tar.gz (default OUT=./out-bench-nccl; a device call brings back at most
# 8 files, so they travel as one archive, rewritten after each phase): topo.txt, phases.txt, each
# run's table, JSON and CSV (dsk-*.txt|json|csv, torch-*.txt|json), compare-*.txt, failures.txt;
# and $OUT/summary.txt (the phases and the comparisons' verdicts and key rows).
# Each phase has its own time limit, so that one that hangs leaves the others their results;
# together they stay under a device call's 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
mode="${1:-full}"
case "$mode" in full|large) ;; *) echo "usage: $0 [full|large]" >&2; exit 2 ;; esac
OUT="${OUT:-$PWD/out-bench-nccl}"
work="$OUT.work"
mkdir -p "$OUT" "$work"
status=0
note_failure() { echo "bench-nccl: $1 exited $2" | tee -a "$work/failures.txt" >&2; status=1; }
save() { tar -czf "$OUT/bench-nccl.tar.gz" -C "$work" . ; }
started=$SECONDS
# phase NAME LIMIT_S FUNCTION...: runs it (it puts its programs under `bounded`), notes its seconds
# and exit status.
limit=60
bounded() { timeout --kill-after=10 "$limit" "$@"; }
phase() {
  local name=$1 code begin=$SECONDS; limit=$2; shift 2
  echo "== $name (limit ${limit}s, at $((SECONDS - started))s)"
  "$@"
  code=$?
  echo "$name: ${code} after $((SECONDS - begin))s" | tee -a "$work/phases.txt"
  [ "$code" = 0 ] || note_failure "$name" "$code"
  save
}

# NVLink SHARP (multicast) stays off on the lent machines.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
tool="$PWD/.carry/nccl/bin/dsk-bench-nccl"
[ -x "$tool" ] || { echo "bench-nccl: $tool missing: run scripts/device/pack-bench-nccl.sh here and carry .carry/nccl" >&2; exit 1; }

# The same NCCL and CUDA runtime as torch, when torch brings its own (pip's nvidia-* packages),
# so that the comparison is of the two harnesses and not of two NCCL versions.
torch_libs=$(python3 - <<'PY' 2>/dev/null
import importlib, os
dirs = []
for name in ("nvidia.nccl", "nvidia.cuda_runtime", "nvidia.cu13", "nvidia.cu12"):
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    for base in getattr(module, "__path__", []):
        lib = os.path.join(base, "lib")
        if os.path.isdir(lib):
            dirs.append(lib)
print(":".join(dirs))
PY
)
export LD_LIBRARY_PATH="$PWD/.carry/nccl/lib${torch_libs:+:$torch_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Anything still missing (a CUDA runtime outside torch's packages, say): look for it on the disk.
for missing in $(ldd "$tool" | awk '/not found/ {print $1}'); do
  found=$(find / -xdev -name "$missing" -not -path '/proc/*' 2>/dev/null | head -1)
  [ -n "$found" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$found")"
done
export LD_LIBRARY_PATH
{
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ldd "$tool" | grep -E "nccl|cudart|not found"
  nvidia-smi -L; nvidia-smi topo -m; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'NCCL', '.'.join(map(str, torch.cuda.nccl.version())))"
  "$tool" --version
} 2>&1 | tee "$work/topo.txt"
save

# How the GPUs are linked decides how long 8 GiB takes (NVLink: tens of ms; through host memory:
# ten times more). A short all_reduce at 1 GiB first; below 60 GB/s busbw the sweep stops at 1 GiB
# so that the phases still fit their limits (and the table says where it stopped).
max_size=8G
limit=60
bounded "$tool" all_reduce -b 1G -e 1G -n 5 -w 2 -c 0 -g 2 --json "$work/probe.json" >"$work/probe.txt" 2>&1
probe_busbw=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['results'][0]['out_of_place']['busbw_gbps']))" "$work/probe.json" 2>/dev/null || echo 0)
[ "$probe_busbw" -ge 60 ] || max_size=1G
echo "probe: all_reduce 1 GiB busbw ${probe_busbw} GB/s: the sweep goes to $max_size" | tee -a "$work/phases.txt"
save
if [ "$mode" = full ]; then
  sizes=(-b 8 -e "$max_size" -f 2) iterations=(-n 20 -w 5)
else
  sizes=(-b 64M -e "$max_size" -f 2) iterations=(-n 50 -w 5)
fi
run_dsk() {  # run_dsk NAME flags...: the sweep, table to NAME.txt, results to NAME.{json,csv}
  local name=$1; shift
  bounded "$tool" all "${sizes[@]}" "${iterations[@]}" -c 1 "$@" --json "$work/$name.json" --csv "$work/$name.csv" \
    >"$work/$name.txt" 2> >(tee -a "$work/$name.err" >&2)
}
run_torch() {  # run_torch NAME flags...
  local name=$1; shift
  bounded python3 scripts/bench/nccl_torch.py --nproc 2 "${sizes[@]}" "${iterations[@]}" "$@" --json "$work/$name.json" \
    >"$work/$name.txt"
}

# mpirun: the machine's own, else the carried OpenMPI, unpacked over / without replacing any file
# that is there (the machine is a throw-away VM).
mpirun_command=()
if command -v mpirun >/dev/null; then
  mpirun_command=(mpirun)
elif [ -f .carry/mpirun/openmpi.tar.gz ]; then
  tar -xzf .carry/mpirun/openmpi.tar.gz -C / --skip-old-files
  mpirun_command=(env "LD_LIBRARY_PATH=$PWD/.carry/mpirun/lib:/usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu/openmpi/lib:/usr/lib/x86_64-linux-gnu/pmix2/lib"
                  OMPI_MCA_plm=isolated OMPI_MCA_mca_base_component_show_load_errors=0 /usr/bin/orterun)
fi
run_mpi() {
  if [ ${#mpirun_command[@]} -gt 0 ]; then
    echo "# ${mpirun_command[*]} --allow-run-as-root -np 2" >"$work/dsk-mpi.txt"
    bounded "${mpirun_command[@]}" --allow-run-as-root -np 2 -x "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" -x NCCL_NVLS_ENABLE \
      -x MASTER_PORT=29611 "$tool" all_reduce -b 8 -e 1G -f 4 -n 20 -w 5 -c 1 >>"$work/dsk-mpi.txt" 2>&1
  else
    # No mpirun at all: OpenMPI's variables set by hand, which is all that dsk-bench-nccl reads.
    echo "# no mpirun here: OMPI_COMM_WORLD_* set by hand for two processes" >"$work/dsk-mpi.txt"
    local pids=() code=0
    for rank in 0 1; do
      OMPI_COMM_WORLD_RANK=$rank OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_LOCAL_RANK=$rank OMPI_COMM_WORLD_LOCAL_SIZE=2 \
        MASTER_PORT=29611 bounded "$tool" all_reduce -b 8 -e 1G -f 4 -n 20 -w 5 -c 1 >"$work/dsk-mpi.$rank.txt" 2>&1 &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || code=$?; done
    cat "$work/dsk-mpi.0.txt" "$work/dsk-mpi.1.txt" >>"$work/dsk-mpi.txt"; rm -f "$work"/dsk-mpi.[01].txt
    return $code
  fi
}

compare() {  # compare NAME DSK_JSON[,...] TORCH_JSON[,...]
  local name=$1; shift
  for file in ${1//,/ } ${2//,/ }; do [ -f "$work/$file" ] || return 0; done
  local dsk_files=$work/${1//,/,$work/} torch_files=$work/${2//,/,$work/}
  python3 scripts/bench/nccl_torch.py --compare "$dsk_files" "$torch_files" >"$work/compare-$name.txt"
}
if [ "$mode" = full ]; then
  # Most important first: the two-process comparison with torch, then one process, then mpirun.
  phase "dsk-bench-nccl --nproc-per-node 2" 170 run_dsk dsk-np2 --nproc-per-node 2
  phase "torch.distributed (NCCL), 2 processes" 200 run_torch torch
  phase "dsk-bench-nccl -g 2" 140 run_dsk dsk-g2 -g 2
  phase "dsk-bench-nccl under mpirun -np 2" 45 run_mpi
  compare np2 dsk-np2.json torch.json
  compare g2 dsk-g2.json torch.json
else
  phase "dsk-bench-nccl --nproc-per-node 2, 1st" 100 run_dsk dsk-np2-1 --nproc-per-node 2
  phase "torch.distributed, 1st" 100 run_torch torch-1
  phase "dsk-bench-nccl --nproc-per-node 2, 2nd" 100 run_dsk dsk-np2-2 --nproc-per-node 2
  phase "torch.distributed, 2nd" 100 run_torch torch-2
  phase "torch.distributed, all-ones inputs" 70 run_torch torch-ones --fill ones
  phase "dsk-bench-nccl -g 2" 60 run_dsk dsk-g2 -g 2
  compare np2 dsk-np2-1.json,dsk-np2-2.json torch-1.json,torch-2.json
  compare np2-1 dsk-np2-1.json torch-1.json
  compare np2-2 dsk-np2-2.json torch-2.json
  compare g2 dsk-g2.json torch-1.json,torch-2.json
  compare ones dsk-np2-1.json,dsk-np2-2.json torch-ones.json
  compare torch-data torch-1.json,torch-2.json torch-ones.json
fi
save
{ cat "$work/phases.txt"; cat "$work/failures.txt" 2>/dev/null
  for file in "$work"/compare-*.txt; do
    [ -f "$file" ] || continue
    echo "-- $(basename "$file")"; grep '^# [a-z_]*:' "$file"
    awk '$2 == 8 || $2 == 8589934592' "$file"
  done
  [ -f "$work/dsk-mpi.txt" ] && tail -n 3 "$work/dsk-mpi.txt"; } | tee "$OUT/summary.txt"
exit $status
