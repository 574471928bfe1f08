#!/usr/bin/env bash
# dsk-tokenize end to end on the GPU machine's CPUs, against HF tokenizers' encode_batch in the
# same run (issue 13, item 16; docs/benchmarks.md). Run from the repository root with .carry/cpu
# carried (`TARGETS=dsk-tokenize scripts/device/pack-cpu-bench.sh` builds it here: dsk-tokenize,
# the libraries the GPU machine lacks, DeepSeek-V3's tokenizer, the parity and KJV corpora):
#   scripts/device/bench-tokenize.sh
# Without a carried binary it builds dsk-tokenize from this tree (needs PCRE2's headers, which
# the GPU machine lacked when DEVICE.md was written); the tokenizer must be carried either way.
#  1. makes a ~150 MB JSONL corpus from the two corpora (scripts/bench/jsonl_corpus.py);
#  2. the tokenizer's load time: dsk-tokenize on a one-line input, from tokenizer.json alone
#     (DSK_TOKENIZER_CACHE=off) and from the tokenizer cache (a fresh one, written by a run first);
#  3. dsk-tokenize on the corpus with -j 1 2 4 8 16 (THREADS), REPEAT times each, the median
#     kept, the tokenizer from the cache (as every run after a tokenizer's first); the most
#     threads once more without the cache; -j 1 and the most threads must give the same bytes;
#  4. HF tokenizers' encode_batch on the same documents, all cores (scripts/bench/tokenizer_hf.py
#     --jsonl text: encoding only, after a warm-up pass; no reading, parsing or writing);
#  5. the table: MB/s (of the JSONL file, both sides), speedup over -j 1, ratio to HF, and MB/s
#     once the tokenizer is loaded (end-to-end seconds less the load time of that run's kind).
#     Then one line from one more run at the most threads with -v: where its time went (the
#     workers' busy share, the writer's waiting and writing, the reader blocked, the last hash).
# Writes $OUT/tokenize.txt (the table and the machine), $OUT/runs.txt (every run). About 2 minutes.
# Env: MEGABYTES (150), THREADS ("1 2 4 8 16"), REPEAT (3).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/out-bench-tokenize}"
mkdir -p "$OUT"
carry="$PWD/.carry/cpu"
tokenizer="$carry/tokenizer/tokenizer.json"
[ -f "$tokenizer" ] || { echo "bench-tokenize: $tokenizer missing: carry .carry/cpu (scripts/device/pack-cpu-bench.sh)" >&2; exit 2; }
if [ -x "$carry/bin/dsk-tokenize" ]; then
  [ -d "$carry/lib" ] || tar -C "$carry" -xJf "$carry/lib.tar.xz"
  export LD_LIBRARY_PATH="$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PATH="$carry/bin:$PATH"
else
  build=build-bench-tokenize
  cmake -S . -B "$build" -G Ninja -DDSK_CUDA=OFF -DDSK_MPI=OFF -DDSK_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >"$OUT/build.log" 2>&1 &&
    ninja -C "$build" dsk-tokenize >>"$OUT/build.log" 2>&1 ||
    { echo "bench-tokenize: no carried dsk-tokenize and the build failed (tail of $OUT/build.log):" >&2; tail -5 "$OUT/build.log" >&2; exit 4; }
  export PATH="$PWD/$build/tools:$PATH"
fi
thread_counts=(${THREADS:-1 2 4 8 16})
repeat="${REPEAT:-3}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs="$OUT/runs.txt"
: >"$runs"

{
  echo "cpu: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) threads"
  echo "$(python3 -c 'import tokenizers; print("tokenizers", tokenizers.__version__)'), $(python3 --version)"
} | tee "$OUT/tokenize.txt"

corpus="$work/corpus.jsonl"
python3 scripts/bench/jsonl_corpus.py "$carry/corpus.txt" "$carry/kjv.txt" "$corpus" --megabytes "${MEGABYTES:-150}" | tee -a "$runs"
bytes=$(stat -c %s "$corpus")

# seconds COMMAND...: wall seconds of one run, its output in $work/last.yaml.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >"$work/last.yaml"
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo '{"text": "In the beginning"}' >"$work/one.jsonl"
export DSK_TOKENIZER_CACHE="$work/tokenizer-cache"
# load_seconds: median of 3 runs on the one-line input.
load_seconds() {
  for _ in 1 2 3; do rm -rf "$work/one"; seconds dsk-tokenize -q -t "$tokenizer" -o "$work/one" -f "$work/one.jsonl"; done |
    median | awk '{ printf "%.3f", $1 }'
}
cold_load=$(DSK_TOKENIZER_CACHE=off load_seconds)
dsk-tokenize -q -t "$tokenizer" -o "$work/one" -f "$work/one.jsonl" >/dev/null  # writes the cache
load=$(load_seconds)
echo "tokenizer load (one-line input, median of 3): $cold_load s from tokenizer.json, $load s from the cache" | tee -a "$runs"

declare -A median_seconds
for threads in "${thread_counts[@]}"; do
  times=()
  for ((run = 1; run <= repeat; ++run)); do
    out="$work/shards-$threads"
    [ "$run" = 1 ] || out="$work/again"
    rm -rf "$work/again"
    s=$(seconds dsk-tokenize -q -t "$tokenizer" -o "$out" -j "$threads" "$corpus")
    times+=("$s")
    echo "dsk-tokenize -j $threads run $run: $s s, $(sed -n 's/^tokens: //p' "$work/last.yaml") tokens" | tee -a "$runs"
  done
  median_seconds[$threads]=$(printf '%s\n' "${times[@]}" | median)
  cp "$work/last.yaml" "$work/record-$threads.yaml"
done
rm -rf "$work/again"
first=${thread_counts[0]}
last=${thread_counts[-1]}
no_cache_times=()
for ((run = 1; run <= repeat; ++run)); do
  rm -rf "$work/again"
  s=$(DSK_TOKENIZER_CACHE=off seconds dsk-tokenize -q -t "$tokenizer" -o "$work/again" -j "$last" "$corpus")
  no_cache_times+=("$s")
  echo "dsk-tokenize -j $last without the cache run $run: $s s" | tee -a "$runs"
done
no_cache_seconds=$(printf '%s\n' "${no_cache_times[@]}" | median)
rm -rf "$work/again"
same="yes"
diff -r "$work/shards-$first" "$work/shards-$last" >/dev/null || same="NO"
documents=$(sed -n 's/^documents: //p' "$work/record-$first.yaml")
tokens=$(sed -n 's/^tokens: //p' "$work/record-$first.yaml")

# Where the time went at the most threads, from -v's account (one more run): the workers' busy
# share of threads x wall, the writer's wait and write time, the reader's time blocked on a full
# queue, and the last shards' hash and sync after the last chunk.
rm -rf "$work/again"
stages=$(dsk-tokenize -v -t "$tokenizer" -o "$work/again" -j "$last" "$corpus" 2>&1 >/dev/null |
  sed -n "s/.*debug: stages: /stages at -j $last: /p")
rm -rf "$work/again"

hf_line=$(python3 scripts/bench/tokenizer_hf.py "$tokenizer" "$corpus" --jsonl text --mode batch --threads "$(nproc)" \
  --repeat 1 | tee -a "$runs")
hf=$(sed -n 's/.*mb_per_s \([0-9.]*\).*/\1/p' <<<"$hf_line")
hf_tokens=$(sed -n 's/.* tokens \([0-9]*\).*/\1/p' <<<"$hf_line")

{
  echo "corpus: $bytes bytes of JSONL, $documents documents; dsk: $tokens tokens with BOS and EOS," \
    "$((tokens - 2 * documents)) without; HF: $hf_tokens"
  echo "tokenizer load: $cold_load s from tokenizer.json, $load s from the cache; shards of -j $first and -j $last identical: $same"
  printf '%-34s %8s %8s %8s %8s %12s\n' run seconds MB/s speedup vs_HF "MB/s_loaded"
  for threads in "${thread_counts[@]}"; do
    awk -v n="dsk-tokenize -j $threads" -v s="${median_seconds[$threads]}" -v s1="${median_seconds[$first]}" \
      -v b="$bytes" -v hf="$hf" -v load="$load" \
      'BEGIN { printf "%-34s %8.2f %8.1f %8.2f %8.2f %12.1f\n", n, s, b / s / 1e6, s1 / s, b / s / 1e6 / hf, b / (s - load) / 1e6 }'
  done
  awk -v n="dsk-tokenize -j $last, no cache" -v s="$no_cache_seconds" -v s1="${median_seconds[$first]}" \
    -v b="$bytes" -v hf="$hf" -v load="$cold_load" \
    'BEGIN { printf "%-34s %8.2f %8.1f %8.2f %8.2f %12.1f\n", n, s, b / s / 1e6, s1 / s, b / s / 1e6 / hf, b / (s - load) / 1e6 }'
  awk -v hf="$hf" -v b="$bytes" -v n="HF encode_batch, $(nproc) threads" \
    'BEGIN { printf "%-34s %8.2f %8.1f %8s %8.2f %12s\n", n, b / hf / 1e6, hf, "-", 1, "-" }'
  echo "$stages"
} | tee -a "$OUT/tokenize.txt"
