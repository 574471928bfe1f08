#!/usr/bin/env bash
# Builds dsk-bench-nccl here with CUDA for Hopper (sm_90a) and bundles it, with the shared
# libraries the GPU machine lacks, into .carry/nccl (bin/ and lib/), for scripts/device/bench-nccl.sh.
#   scripts/device/pack-bench-nccl.sh [BUILD_DIR]      (default build-nccl-pack)
# Then carry .carry/nccl in the device call. MPI is left out of this build (DSK_MPI=OFF): the GPU
# machine has no OpenMPI libraries, and mpirun's ranks are read from its environment anyway.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build-nccl-pack}"
bundle="${DSK_SHARED_DIR:-$(cd .. && pwd)/shared}/device/bundle-libs.sh"
[ -x "$bundle" ] || { echo "pack-bench-nccl: $bundle is missing" >&2; exit 1; }
cmake -S . -B "$build" -G Ninja -DDSK_CUDA=ON -DDSK_MPI=OFF -DDSK_BUILD_TESTS=OFF \
  -DCMAKE_CUDA_ARCHITECTURES=90a-real -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$build" -j "$(nproc)" dsk-bench-nccl
rm -rf .carry/nccl
"$bundle" .carry/nccl "$build/tools/dsk-bench-nccl"
ls -l .carry/nccl/bin .carry/nccl/lib
