#!/usr/bin/env python3
"""HF tokenizers' encode throughput on the same tokenizer.json and corpus as dsk-bench-tokenizer,
for the comparison in docs/benchmarks.md. Needs `pip install tokenizers`.

    zstd -d tests/tokenizer/corpus.txt.zst -o corpus.txt
    python3 scripts/bench/tokenizer_hf.py TOKENIZER_JSON corpus.txt [--threads N] [--repeat R]
    dsk-bench-tokenizer TOKENIZER_JSON corpus.txt --threads 1 --repeat R      # dsk's side

Single thread: encode() on each document in turn (RAYON_NUM_THREADS=1 keeps it on one core).
Batch: encode_batch() over all documents, parallel over N threads through Rayon.
Documents are split on "\\x1e\\n" and decoded with errors="replace", as dsk-bench-tokenizer does;
with --jsonl FIELD the corpus is JSONL and a document is that field of a line (the comparison in
scripts/device/bench-tokenize.sh; MB/s still counts the corpus file's bytes, as dsk-tokenize's do).
Prints lines "hf_single mb_per_s X tokens T" and "hf_batch threads N mb_per_s X tokens T".
"""
import argparse
import json
import os
import subprocess
import sys
import time


def measure(args):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(args.tokenizer_json)
    corpus = open(args.corpus, "rb").read()
    if args.jsonl:
        documents = [json.loads(line)[args.jsonl] for line in corpus.splitlines() if line.strip()]
    else:
        documents = [d.decode("utf-8", errors="replace") for d in corpus.split(b"\x1e\n")]
    megabytes = len(corpus) / 1e6

    if args.mode == "single":
        for d in documents:  # warm-up pass: fills HF's word cache as dsk's warm-up does
            tokenizer.encode(d, add_special_tokens=False)
        begin = time.perf_counter()
        tokens = 0
        for _ in range(args.repeat):
            for d in documents:
                tokens += len(tokenizer.encode(d, add_special_tokens=False).ids)
        seconds = time.perf_counter() - begin
        print(f"hf_single mb_per_s {megabytes * args.repeat / seconds:.3f} tokens {tokens // args.repeat}")
    else:
        tokenizer.encode_batch(documents, add_special_tokens=False)
        begin = time.perf_counter()
        tokens = 0
        for _ in range(args.repeat):
            tokens += sum(len(e.ids) for e in tokenizer.encode_batch(documents, add_special_tokens=False))
        seconds = time.perf_counter() - begin
        print(f"hf_batch threads {args.threads} mb_per_s {megabytes * args.repeat / seconds:.3f} tokens {tokens // args.repeat}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tokenizer_json")
    parser.add_argument("corpus")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jsonl", metavar="FIELD", help="the corpus is JSONL; documents are this field")
    parser.add_argument("--mode", choices=["single", "batch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        measure(args)
        return
    # Rayon reads RAYON_NUM_THREADS once per process: one child process per setting.
    for mode, threads in (("single", 1), ("batch", args.threads)):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
        command = [sys.executable, __file__, args.tokenizer_json, args.corpus, "--mode", mode,
                   "--threads", str(threads), "--repeat", str(args.repeat)] + (["--jsonl", args.jsonl] if args.jsonl else [])
        subprocess.run(command, env=env, check=True)


if __name__ == "__main__":
    main()
