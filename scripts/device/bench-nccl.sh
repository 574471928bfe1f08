#!/usr/bin/env bash
# dsk-bench-nccl on the GPU machine (nvidia-h200-x2), against torch.distributed's NCCL collectives.
# Run from the repository root with .carry/nccl carried (scripts/device/pack-bench-nccl.sh builds it):
#   scripts/device/bench-nccl.sh
# Writes to $OUT (default ./out-bench-nccl): topo.txt, dsk-g2.{txt,json,csv} (one process, -g 2),
# dsk-np2.{txt,json,csv} (--nproc-per-node 2), dsk-mpi.txt (mpirun -np 2, when mpirun exists),
# torch.{txt,json} and compare-{g2,np2}.txt. Every collective from 8 B to 8 GiB, float32 sum,
# in-place and out-of-place, -c 1 (every element checked), -n 20 -w 5. About 3-5 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-bench-nccl}"
mkdir -p "$OUT"
status=0
note_failure() { echo "bench-nccl: $1 exited $2" | tee -a "$OUT/failures.txt" >&2; status=1; }

# NVLink SHARP (multicast) stays off on the lent machines.
export NCCL_NVLS_ENABLE=0
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
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$tool" | grep -E "nccl|cudart|not found"

{ nvidia-smi -L; nvidia-smi topo -m; } 2>&1 | tee "$OUT/topo.txt"
python3 -c "import torch; print('torch', torch.__version__, 'NCCL', torch.cuda.nccl.version())" 2>&1 | tee -a "$OUT/topo.txt"

sweep=(all -b 8 -e 8G -f 2 -n 20 -w 5 -c 1)

echo "== dsk-bench-nccl: one process, -g 2"
"$tool" "${sweep[@]}" -g 2 --json "$OUT/dsk-g2.json" --csv "$OUT/dsk-g2.csv" | tee "$OUT/dsk-g2.txt"
code=${PIPESTATUS[0]}; [ "$code" = 0 ] || note_failure "dsk-bench-nccl -g 2" "$code"

echo "== dsk-bench-nccl: --nproc-per-node 2"
"$tool" "${sweep[@]}" --nproc-per-node 2 --json "$OUT/dsk-np2.json" --csv "$OUT/dsk-np2.csv" | tee "$OUT/dsk-np2.txt"
code=${PIPESTATUS[0]}; [ "$code" = 0 ] || note_failure "dsk-bench-nccl --nproc-per-node 2" "$code"

if command -v mpirun >/dev/null; then
  echo "== dsk-bench-nccl: mpirun -np 2 (all_reduce only)"
  timeout 120 mpirun --allow-run-as-root -np 2 -x LD_LIBRARY_PATH -x NCCL_NVLS_ENABLE -x MASTER_PORT=29611 \
    "$tool" all_reduce -b 8 -e 1G -f 4 -n 20 -w 5 -c 1 | tee "$OUT/dsk-mpi.txt"
  code=${PIPESTATUS[0]}; [ "$code" = 0 ] || note_failure "mpirun dsk-bench-nccl" "$code"
else
  echo "== no mpirun on this machine: the mpirun launch is not measured" | tee "$OUT/dsk-mpi.txt"
fi

echo "== torch.distributed (NCCL), 2 processes, same sizes and timing"
python3 scripts/bench/nccl_torch.py --nproc 2 -b 8 -e 8G -f 2 -n 20 -w 5 --json "$OUT/torch.json" | tee "$OUT/torch.txt"
code=${PIPESTATUS[0]}; [ "$code" = 0 ] || note_failure "nccl_torch.py" "$code"

for run in np2 g2; do
  if [ -f "$OUT/dsk-$run.json" ] && [ -f "$OUT/torch.json" ]; then
    echo "== comparison: dsk-bench-nccl ($run) vs torch.distributed"
    python3 scripts/bench/nccl_torch.py --compare "$OUT/dsk-$run.json" "$OUT/torch.json" | tee "$OUT/compare-$run.txt"
  fi
done
exit $status
