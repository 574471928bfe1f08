#!/usr/bin/env python3
"""Per-kernel-class GPU time of one dsk-train step, from `ncu --csv --metrics gpu__time_duration.sum`.

    ncu_breakdown.py NCU_CSV [--steps N]

Groups the kernels by what they compute (the op families of kernels/cuda and cuBLASLt's GEMMs),
prints each class's time per step in ms and its share, largest first.
"""
import argparse
import csv
import io
import re
import sys
from collections import defaultdict

CLASSES = [
    ("GEMM (cuBLASLt)", r"gemm|sm90_xmma|cutlass|cublas|nvjet|splitKreduce"),
    ("attention", r"attention|flash"),
    ("grouped GEMM (MoE experts)", r"grouped"),
    ("MoE routing/permute/combine", r"moe|route|permute|combine|gather|aux_loss|update_bias"),
    ("cross-entropy", r"cross_entropy|softmax"),
    ("RMSNorm", r"rmsnorm"),
    ("RoPE", r"rope"),
    ("SwiGLU", r"swiglu"),
    ("embedding", r"embedding|radix|Radix|sort"),
    ("AdamW + grad norm", r"adamw|sum_of_squares|scale_floats|partial_sums|norm_finish"),
    ("residual/copies/casts", r"add|accumulate|cast|copy|mla_expand|kv_cache|memcpy|memset"),
]


def classify(name):
    for label, pattern in CLASSES:
        if re.search(pattern, name, re.IGNORECASE):
            return label
    return "other: " + name[:60]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("csv")
    parser.add_argument("--steps", type=int, default=1)
    args = parser.parse_args()
    text = open(args.csv).read()
    start = text.find('"ID"')
    if start < 0:
        sys.exit(f"{args.csv}: no ncu CSV table")
    totals, counts = defaultdict(float), defaultdict(int)
    for row in csv.DictReader(io.StringIO(text[start:])):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        unit = row.get("Metric Unit", "ns")
        ms = value / {"ns": 1e6, "nsecond": 1e6, "usecond": 1e3, "us": 1e3, "msecond": 1, "ms": 1}.get(unit, 1e6)
        label = classify(row["Kernel Name"])
        totals[label] += ms / args.steps
        counts[label] += 1
    whole = sum(totals.values())
    print(f"{'class':34s} {'ms/step':>9s} {'share':>7s} {'kernels':>8s}")
    for label, ms in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"{label:34s} {ms:9.2f} {100 * ms / whole:6.1f}% {counts[label] // args.steps:8d}")
    print(f"{'all kernels':34s} {whole:9.2f}")


if __name__ == "__main__":
    main()
