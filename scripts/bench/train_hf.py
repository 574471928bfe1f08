#!/usr/bin/env python3
"""The PyTorch + HF transformers side of scripts/device/bench-cpu.sh (needs torch, transformers).

    train_hf.py throughput CHECKPOINT SHARD --batch B --seq T --steps N --threads K
        Trains the model of CHECKPOINT/config.json (fresh random weights, fp32, on the CPU) with
        AdamW(betas 0.9/0.95, weight decay 0.1) and grad clipping 1.0 on windows of the dsk token
        SHARD, as dsk-train does a step, and prints "hf_train tokens_per_s X" (median of the timed
        steps, after 3 untimed ones).
    train_hf.py greedy CHECKPOINT --prompt TEXT -n N
        Loads CHECKPOINT (a dsk-train checkpoint directory) with AutoModelForCausalLM as it is and
        prints the greedy continuation of TEXT, as `dsk-train sample --temperature 0` does, so the
        two texts can be compared.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def read_shard(path):
    """Tokens of a dsk token shard (man 5 dsk-formats): 64-byte header, then u16 or u32 tokens."""
    with open(path, "rb") as f:
        header = f.read(64)
    if header[:8] != b"DSKTOKS1":
        sys.exit(f"{path}: not a dsk token shard")
    token_bytes = int.from_bytes(header[12:16], "little")
    count = int.from_bytes(header[24:32], "little")
    dtype = np.uint16 if token_bytes == 2 else np.uint32
    return np.memmap(path, dtype=dtype, mode="r", offset=64, shape=(count,))


def throughput(args):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    config = AutoConfig.from_pretrained(args.checkpoint)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    tokens = read_shard(args.shard)
    rng = np.random.default_rng(1)
    times = []
    for step in range(args.steps + 3):
        starts = rng.integers(0, len(tokens) - args.seq - 1, size=args.batch)
        window = np.stack([tokens[s : s + args.seq + 1].astype(np.int64) for s in starts])
        inputs = torch.from_numpy(window[:, :-1])
        targets = torch.from_numpy(window[:, 1:])
        begin = time.perf_counter()
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 3:
            times.append(time.perf_counter() - begin)
    tokens_per_step = args.batch * args.seq
    print(f"hf_train tokens_per_s {tokens_per_step / statistics.median(times):.1f} "
          f"parameters {sum(p.numel() for p in model.parameters())} loss {loss.item():.4f}")


def greedy(args):
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.checkpoint, dtype=torch.float32)
    model.eval()
    tokenizer = Tokenizer.from_file(os.path.join(args.checkpoint, "tokenizer.json"))
    config_path = os.path.join(args.checkpoint, "tokenizer_config.json")
    tokenizer_config = json.load(open(config_path)) if os.path.exists(config_path) else {}
    generation = json.load(open(os.path.join(args.checkpoint, "generation_config.json")))
    ids = tokenizer.encode(args.prompt, add_special_tokens=False).ids
    if tokenizer_config.get("add_bos_token") and "bos_token_id" in generation:
        ids = [generation["bos_token_id"]] + ids
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=args.n, do_sample=False,
                             eos_token_id=generation.get("eos_token_id"), pad_token_id=generation.get("eos_token_id"))
    new = out[0, len(ids):].tolist()
    print(args.prompt + tokenizer.decode(new, skip_special_tokens=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("checkpoint")
    t.add_argument("shard")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--seq", type=int, default=64)
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--threads", type=int, default=os.cpu_count())
    g = sub.add_parser("greedy")
    g.add_argument("checkpoint")
    g.add_argument("--prompt", required=True)
    g.add_argument("-n", type=int, default=20)
    args = parser.parse_args()
    throughput(args) if args.mode == "throughput" else greedy(args)


if __name__ == "__main__":
    main()
