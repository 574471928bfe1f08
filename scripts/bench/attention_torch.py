#!/usr/bin/env python3
"""PyTorch's causal attention on the shapes of scripts/bench/attention_bench.cu, timed the same way.

Times torch.nn.functional.scaled_dot_product_attention(is_causal=True) in bf16, forward and
forward+backward, with tensors in dsk's memory layout ([B, T, H, D] viewed as [B, H, T, D]), and
prints the same table as attention_bench. With --dsk FILE (attention_bench's stdout) it adds the
ratio torch_ms / dsk_ms per column (above 1: dsk is faster).

Dk != Dv (the MLA shape, 96/64): SDPA is timed as it is (torch picks a backend that takes unequal
head dims) and with v zero-padded to Dk and the output sliced back, as HF's DeepSeek-V3 does for
flash-attention; the faster of the two is the row compared. Flops always count the real Dk + Dv.
torch.compile does not change these numbers: it calls the same SDPA kernels.

Usage: python3 scripts/bench/attention_torch.py [--dsk dsk.txt] [--backend default|flash|efficient|cudnn|math]
"""
import argparse
import statistics
import sys

import torch
import torch.nn.functional as F

SHAPES = [  # name, B, T, H, Dk, Dv: the same list as attention_bench.cu
    ("dense-124m", 16, 1024, 12, 64, 64),
    ("moe-16e-mla", 8, 1024, 16, 96, 64),
    ("long-4k", 4, 4096, 12, 64, 64),
    ("llama-1b", 4, 2048, 16, 128, 128),
]
WARMUP, RUNS = 3, 20


def median_ms(work):
    for _ in range(WARMUP):
        work()
    times = []
    for _ in range(RUNS):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        work()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def dsk_layout(B, T, H, D, requires_grad):
    """A [B, H, T, D] view of [B, T, H, D] memory, as dsk stores q, k, v and out."""
    x = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16)
    return x.transpose(1, 2).requires_grad_(requires_grad)


def time_sdpa(B, T, H, Dk, Dv, pad_v):
    q, k = dsk_layout(B, T, H, Dk, True), dsk_layout(B, T, H, Dk, True)
    v = dsk_layout(B, T, H, Dv, True)
    dout = dsk_layout(B, T, H, Dv, False)

    def attention():
        if pad_v:
            return F.scaled_dot_product_attention(q, k, F.pad(v, (0, Dk - Dv)), is_causal=True)[..., :Dv]
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def forward():
        with torch.no_grad():
            attention()

    def forward_backward():
        q.grad = k.grad = v.grad = None
        attention().backward(dout)

    return median_ms(forward), median_ms(forward_backward)


def read_dsk(path):
    """attention_bench's table: name -> (fwd_ms, fwd+bwd_ms)."""
    rows = {}
    with open(path) as table:
        for line in table:
            fields = line.split()
            if len(fields) == 10 and fields[0] != "shape":
                rows[fields[0]] = (float(fields[6]), float(fields[8]))
    return rows


def backend_context(name):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import contextlib

    backends = {
        "default": None,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }
    return contextlib.nullcontext() if backends[name] is None else sdpa_kernel(backends[name])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsk", help="attention_bench's stdout, to print the ratio torch_ms / dsk_ms")
    parser.add_argument("--backend", default="default", choices=["default", "flash", "efficient", "cudnn", "math"])
    args = parser.parse_args()
    dsk = read_dsk(args.dsk) if args.dsk else {}
    print(f"attention_torch: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"SDPA backend {args.backend}, causal, median of {RUNS}", file=sys.stderr)
    header = f"{'shape':<12} {'B':>3} {'T':>5} {'H':>3} {'Dk':>4} {'Dv':>4} {'fwd_ms':>10} {'fwd_TF/s':>8} " \
             f"{'fwd+bwd_ms':>12} {'all_TF/s':>8}"
    print(header + (f" {'fwd_x':>6} {'all_x':>6}" if dsk else "") + "  variant")
    for name, B, T, H, Dk, Dv in SHAPES:
        variants = [("as is", False)] + ([("v padded", True)] if Dk != Dv else [])
        results = []
        for variant, pad_v in variants:
            try:
                with backend_context(args.backend):
                    results.append((time_sdpa(B, T, H, Dk, Dv, pad_v), variant))
            except RuntimeError as error:  # a backend that refuses the shape
                print(f"attention_torch: {name} ({variant}): {error}".splitlines()[0], file=sys.stderr)
            torch.cuda.empty_cache()
        if not results:
            continue
        (forward_ms, all_ms), variant = min(results, key=lambda result: result[0][1])
        causal_pairs = B * H * T * T / 2
        forward_flops = 2 * causal_pairs * (Dk + Dv)
        backward_flops = 2 * causal_pairs * (3 * Dk + 2 * Dv)
        line = f"{name:<12} {B:>3} {T:>5} {H:>3} {Dk:>4} {Dv:>4} {forward_ms:>10.3f} " \
               f"{forward_flops / forward_ms / 1e9:>8.1f} {all_ms:>12.3f} " \
               f"{(forward_flops + backward_flops) / all_ms / 1e9:>8.1f}"
        if name in dsk:
            line += f" {forward_ms / dsk[name][0]:>6.2f} {all_ms / dsk[name][1]:>6.2f}"
        print(line + f"  {variant}", flush=True)


if __name__ == "__main__":
    main()
