#!/usr/bin/env python3
"""The HF transformers side of scripts/device/serve-gpu.sh: greedy generate on one GPU, random
weights of a config.json, bf16, as ../shared/bench-shapes measured it.

    serve_hf.py CONFIG_JSON [--prompt 128] [--new 128] [--batch 1 --batch 32]

Prints one line per batch size:
    hf generate batch B tokens_per_s X wall_s Y
with X = B * new tokens / the time of one generate call (after a short warm-up call), exactly
`new` tokens per sequence (min_new_tokens = max_new_tokens).
"""
import argparse
import os
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--batch", type=int, action="append")
    args = parser.parse_args()
    torch.manual_seed(1)
    config = AutoConfig.from_pretrained(os.path.dirname(os.path.abspath(args.config)))
    config._attn_implementation = "sdpa"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).cuda().eval()
    for batch in args.batch or [1, 32]:
        ids = torch.randint(0, config.vocab_size, (batch, args.prompt), device="cuda")
        mask = torch.ones_like(ids)
        settings = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
        with torch.no_grad():
            model.generate(ids, attention_mask=mask, max_new_tokens=4, min_new_tokens=4, **settings)
            torch.cuda.synchronize()
            start = time.perf_counter()
            out = model.generate(ids, attention_mask=mask, max_new_tokens=args.new, min_new_tokens=args.new, **settings)
            torch.cuda.synchronize()
            wall = time.perf_counter() - start
        generated = (out.shape[1] - args.prompt) * batch
        print(f"hf generate batch {batch} tokens_per_s {generated / wall:.1f} wall_s {wall:.3f}", flush=True)


if __name__ == "__main__":
    main()
