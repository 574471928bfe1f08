#!/usr/bin/env bash
# Builds dsk with CUDA on the GPU machine itself (16 cores; faster than carrying binaries built on
# a 2-core machine). That machine lacks the headers of PCRE2 and libxml2: .carry/devlibs brings
# them with pkg-config files (scripts/device/pack-gpu-data.sh makes it). Output in build-gpu/.
#   scripts/device/build-on-device.sh [TARGET...]   (default: dsk-train dsk-tokenize and every tests/gpu binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
devlibs="$PWD/.carry/devlibs"
sed -i "s|^prefix=.*|prefix=$devlibs|" "$devlibs"/lib/pkgconfig/*.pc
for runtime in libpcre2-8.so.0 libxml2.so.2; do
  ln -sf "/usr/lib/x86_64-linux-gnu/$runtime" "$devlibs/lib/${runtime%.so.*}.so"
done
export PKG_CONFIG_PATH="$devlibs/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
targets=("$@")
if [ ${#targets[@]} = 0 ]; then
  targets=(dsk-train dsk-tokenize)
  for f in tests/gpu/*_test.cu tests/gpu/*_test.cpp; do s=$(basename "$f"); targets+=("dsk_gpu_${s%_test.*}"); done
fi
start=$(date +%s)
rm -f build-gpu/CMakeCache.txt  # the carried folder may have moved since the last configure
cmake -S . -B build-gpu -G Ninja -DDSK_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a-real -DDSK_MPI=OFF \
  -DCMAKE_BUILD_TYPE=Release >build-gpu.configure.log 2>&1 || { tail -30 build-gpu.configure.log; exit 1; }
ninja -C build-gpu -j "$(nproc)" "${targets[@]}" >build-gpu.log 2>&1 || { grep -E "error|Error" -A5 build-gpu.log | head -60; exit 1; }
echo "build-on-device: ${#targets[@]} targets in $(( $(date +%s) - start ))s"
