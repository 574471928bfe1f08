#!/usr/bin/env python3
"""The PyTorch + HF transformers side of scripts/device/bench-gpu.sh: training throughput and peak
memory of a model given by its config.json, on one GPU, as users run it today.

    train_gpu_hf.py CONFIG_JSON --batch B --seq T [--steps N] [--compile] [--label NAME]
    torchrun --nproc-per-node N train_gpu_hf.py ...    data parallel: DDP over N GPUs, B per GPU


Random weights (from_config), bf16 autocast over fp32 master weights, sdpa attention, fused AdamW
(betas 0.9/0.95, weight decay 0.1), grad clipping 1.0, random tokens. Prints one line:
    hf <label> tokens_per_s X step_ms Y peak_gib Z mfu W
with the median step time of the timed steps (after warm-up; torch.compile warms up longer),
MFU against PEAK_TFLOPS (env, default 790: the measured bf16 matmul peak of the H200 here) with
6 * parameters * tokens + attention (12 * layers * T * d_attn per token, causal halves it).
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist
from transformers import AutoConfig, AutoModelForCausalLM


def flops_per_token(config, params, seq):
    heads = config.num_attention_heads
    if config.model_type == "deepseek_v3":
        qk = config.qk_nope_head_dim + config.qk_rope_head_dim
        attn = heads * (qk + config.v_head_dim) / 2
        # Only the routed experts a token visits count: replace all experts by top-k of them.
        inter = config.moe_intermediate_size
        moe_layers = config.num_hidden_layers - config.first_k_dense_replace
        unused = moe_layers * (config.n_routed_experts - config.num_experts_per_tok) * 3 * config.hidden_size * inter
        params = params - unused
    else:
        attn = config.hidden_size
    return 6 * params + 6 * config.num_hidden_layers * seq * attn  # causal: half of 12 * L * T * d


def median_step_seconds(step, warmup, steps):
    """Runs `warmup` untimed steps, resets the peak-memory counter, and returns the median time of
    `steps` timed ones (each ended by a device synchronization)."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl")
    torch.manual_seed(1)
    config = AutoConfig.from_pretrained(os.path.dirname(os.path.abspath(args.config)))
    config._attn_implementation = "sdpa"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).cuda()
    model.train()
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    step_model = torch.compile(ddp_model) if args.compile else ddp_model
    vocab = config.vocab_size
    tokens = torch.randint(0, vocab, (args.batch, args.seq + 1), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_model(input_ids=tokens[:, :-1], labels=tokens[:, 1:].contiguous()).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    step_s = median_step_seconds(step, 8 if args.compile else 3, args.steps)
    step_s = torch.tensor(step_s, device="cuda")
    if world > 1:  # the slowest rank sets the pace
        dist.all_reduce(step_s, op=dist.ReduceOp.MAX)
    step_s = step_s.item()
    tokens_per_s = args.batch * args.seq * world / step_s
    peak = torch.cuda.max_memory_allocated() / 2**30
    mfu = tokens_per_s / world * flops_per_token(config, params, args.seq) / (float(os.environ.get("PEAK_TFLOPS", 790)) * 1e12)
    label = args.label or ("hf+compile" if args.compile else "hf") + (f"+ddp{world}" if world > 1 else "")
    if rank == 0:
        print(f"hf {label} tokens_per_s {tokens_per_s:.0f} step_ms {step_s * 1e3:.1f} peak_gib {peak:.2f} mfu {mfu:.3f}",
              flush=True)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
