#!/usr/bin/env python3
"""A JSONL corpus of a given size for dsk-tokenize's end-to-end benchmark, built from the two
corpora in the repository (no network): the tokenizer parity corpus (prose, code, Chinese,
Japanese, emoji, special-token text; documents split on "\\x1e\\n", ill-formed UTF-8 replaced
by U+FFFD) and the KJV Bible (chapters split on blank lines).

    zstd -dc tests/tokenizer/corpus.txt.zst >parity.txt; zstd -dc assets/corpus/kjv.txt.zst >kjv.txt
    python3 scripts/bench/jsonl_corpus.py parity.txt kjv.txt corpus.jsonl --megabytes 150

Each line is {"id": ..., "text": ..., "source": ...}; a text is 3 or 4 pieces of the shuffled
pool joined by a blank line (about 12.8 KB on average, so 150 MB is about 11,700 documents).
The same arguments give the same bytes (a seeded shuffle); the text is written as UTF-8
(ensure_ascii=False), so the file's size is close to the text's.
"""
import argparse
import json
import random


def pieces(parity_path, kjv_path):
    parity = open(parity_path, "rb").read().decode("utf-8", errors="replace").split("\x1e\n")
    kjv = open(kjv_path, encoding="utf-8").read().split("\n\n")
    return [p for p in parity + kjv if p.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parity_corpus")
    parser.add_argument("kjv_corpus")
    parser.add_argument("output")
    parser.add_argument("--megabytes", type=float, default=150)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    pool = pieces(args.parity_corpus, args.kjv_corpus)
    generator = random.Random(args.seed)
    target = int(args.megabytes * 1e6)
    written = documents = 0
    order = []
    with open(args.output, "w", encoding="utf-8") as out:
        while written < target:
            count = 3 + documents % 2
            while len(order) < count:
                batch = list(range(len(pool)))
                generator.shuffle(batch)
                order += batch
            text = "\n\n".join(pool[i] for i in order[:count])
            del order[:count]
            record = {"id": f"bench-{documents:06d}", "text": text, "source": "dsk-bench"}
            line = json.dumps(record, ensure_ascii=False) + "\n"
            out.write(line)
            written += len(line.encode("utf-8"))
            documents += 1
    print(f"{args.output}: {written} bytes, {documents} documents")


if __name__ == "__main__":
    main()
