#!/usr/bin/env python3
"""The PEFT side of scripts/device/finetune-gpu.sh: LoRA fine-tuning throughput and peak memory of
Hugging Face PEFT on one GPU, as users run it, on the same base dsk-finetune trains.

    finetune_gpu_peft.py --save-base CONFIG_JSON OUT_DIR     random base (seed 1), bf16 safetensors
    finetune_gpu_peft.py BASE_DIR --batch B --seq T [--rank R] [--alpha A] [--steps N] [--compile]

The base is loaded in bf16 and frozen; LoRA (PEFT's LoraConfig: r, lora_alpha, dropout 0,
target_modules "all-linear") keeps its adapter weights in fp32 (PEFT's autocast_adapter_dtype);
bf16 autocast, fused AdamW over the adapter (betas 0.9/0.95, no weight decay), grad clipping 1.0,
random tokens with every position a target. Prints one line:
    peft <label> tokens_per_s X step_ms Y peak_gib Z trainable T
with the median step time of the timed steps after warm-up (torch.compile warms up longer) and
torch.cuda.max_memory_allocated over the timed steps (the base, activations, adapter and optimizer).
"""
import argparse
import os

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

from train_gpu_hf import median_step_seconds


def save_base(config_json, out_dir):
    torch.manual_seed(1)
    config = AutoConfig.from_pretrained(os.path.dirname(os.path.abspath(config_json)))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out_dir, safe_serialization=True)
    print("base", out_dir, sum(p.numel() for p in model.parameters()), "parameters")


def train(args):
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
    config = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0, target_modules="all-linear",
                        task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4, betas=(0.9, 0.95), weight_decay=0.0, fused=True)
    step_model = torch.compile(model) if args.compile else model
    tokens = torch.randint(0, model.config.vocab_size, (args.batch, args.seq + 1), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_model(input_ids=tokens[:, :-1], labels=tokens[:, 1:].contiguous()).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step_s = median_step_seconds(step, 8 if args.compile else 3, args.steps)
    label = "peft+compile" if args.compile else "peft"
    print(f"peft {label} tokens_per_s {args.batch * args.seq / step_s:.0f} step_ms {step_s * 1e3:.1f} "
          f"peak_gib {torch.cuda.max_memory_allocated() / 2**30:.2f} trainable {sum(p.numel() for p in trainable)}",
          flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base", nargs="?")
    parser.add_argument("--save-base", nargs=2, metavar=("CONFIG_JSON", "OUT_DIR"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    if args.save_base:
        save_base(*args.save_base)
    else:
        train(args)


if __name__ == "__main__":
    main()
