#!/usr/bin/env python3
"""torch.distributed's NCCL collectives timed the way dsk-bench-nccl times its own, for comparison.

    python3 scripts/bench/nccl_torch.py --nproc 2 -b 8 -e 8G -f 2 -n 20 -w 5 --json torch.json
    python3 scripts/bench/nccl_torch.py --compare dsk.json torch.json

One process per GPU (torch.multiprocessing), float32, sum. For each collective and size: w warm-up
calls, then CUDA events recorded on the current stream around n calls; time per call = elapsed / n;
algbw = size / time (GB/s, 1e9 bytes); busbw = algbw * the nccl-tests factor. The time reported is
the mean over ranks (dsk-bench-nccl's -a 1). "size" is nccl-tests': the whole vector (all_gather's
output, reduce_scatter's input, alltoall's per-rank buffer).

torch offers one placement per collective: all_reduce, broadcast and reduce work in place;
all_gather_into_tensor, reduce_scatter_tensor, all_to_all_single and send/recv out of place.
--compare matches each with dsk-bench-nccl's column of the same placement.
"""
import argparse
import json
import os
import sys

SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
COLLECTIVES = ["all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "alltoall", "sendrecv"]
IN_PLACE = {"all_reduce", "broadcast", "reduce"}


def parse_size(text):
    text = text.upper().replace("IB", "").rstrip("B") or "0"
    unit = text[-1] if text[-1] in SIZE_UNITS else ""
    return int(float(text[: len(text) - len(unit)]) * SIZE_UNITS[unit])


def bus_factor(collective, n):
    if collective == "all_reduce":
        return 2 * (n - 1) / n
    if collective in ("all_gather", "reduce_scatter", "alltoall"):
        return (n - 1) / n
    return 1.0


def sizes(args):
    size, result = args.minbytes, []
    while size <= args.maxbytes:
        result.append(size)
        size *= args.stepfactor
    return result


def element_count(collective, size, n):
    count = size // 4
    return count - count % n if collective in ("all_gather", "reduce_scatter", "alltoall") else count


def make_call(collective, count, rank, n, device):
    import torch
    import torch.distributed as dist

    chunk = count // n
    if collective == "all_reduce":
        buffer = torch.ones(count, device=device)
        return lambda: dist.all_reduce(buffer)
    if collective == "all_gather":
        source, target = torch.ones(chunk, device=device), torch.empty(count, device=device)
        return lambda: dist.all_gather_into_tensor(target, source)
    if collective == "reduce_scatter":
        source, target = torch.ones(count, device=device), torch.empty(chunk, device=device)
        return lambda: dist.reduce_scatter_tensor(target, source)
    if collective == "broadcast":
        buffer = torch.ones(count, device=device)
        return lambda: dist.broadcast(buffer, src=0)
    if collective == "reduce":
        buffer = torch.ones(count, device=device)
        return lambda: dist.reduce(buffer, dst=0)
    if collective == "alltoall":
        source, target = torch.ones(count, device=device), torch.empty(count, device=device)
        return lambda: dist.all_to_all_single(target, source)
    source, target = torch.ones(count, device=device), torch.empty(count, device=device)

    def sendrecv():  # a ring, as dsk-bench-nccl's sendrecv: send to the next rank, receive from the previous
        ops = [dist.P2POp(dist.isend, source, (rank + 1) % n), dist.P2POp(dist.irecv, target, (rank - 1) % n)]
        for work in dist.batch_isend_irecv(ops):
            work.wait()

    return sendrecv


def worker(rank, n, args, port, queue):
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    device = torch.device("cuda", rank)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        dist.init_process_group("nccl", rank=rank, world_size=n, device_id=device)
    except TypeError:  # torch < 2.3 has no device_id
        dist.init_process_group("nccl", rank=rank, world_size=n)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    rows = []
    for collective in args.collectives:
        for size in sizes(args):
            count = element_count(collective, size, n)
            if count == 0:
                continue
            call = make_call(collective, count, rank, n, device)
            for _ in range(args.warmup_iters):
                call()
            torch.cuda.synchronize()
            start.record()
            for _ in range(args.iters):
                call()
            stop.record()
            torch.cuda.synchronize()
            time_us = start.elapsed_time(stop) * 1000.0 / args.iters
            times = [None] * n
            dist.all_gather_object(times, time_us)
            del call
            torch.cuda.empty_cache()
            mean = sum(times) / n
            algbw = count * 4 / (mean * 1e3)
            rows.append({"collective": collective, "size": count * 4, "count": count, "time_us": mean,
                         "algbw_gbps": algbw, "busbw_gbps": algbw * bus_factor(collective, n),
                         "placement": "in-place" if collective in IN_PLACE else "out-of-place"})
            if rank == 0:
                row = rows[-1]
                print(f"{collective:>15} {row['size']:>12} {row['time_us']:>10.2f} {row['algbw_gbps']:>8.2f} "
                      f"{row['busbw_gbps']:>8.2f}", flush=True)
    if rank == 0:
        queue.put({"ranks": n, "torch": torch.__version__, "nccl_version": ".".join(map(str, torch.cuda.nccl.version())),
                   "iterations": args.iters, "warmup_iterations": args.warmup_iters, "results": rows})
    dist.barrier()
    dist.destroy_process_group()


def run(args):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    print(f"{'collective':>15} {'size(B)':>12} {'time(us)':>10} {'algbw':>8} {'busbw':>8}", flush=True)
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.spawn(worker, args=(args.nproc, args, port, queue), nprocs=args.nproc, join=True)
    document = queue.get()
    if args.json:
        with open(args.json + ".tmp", "w") as out:
            json.dump(document, out, indent=2)
        os.replace(args.json + ".tmp", args.json)


def compare(dsk_path, torch_path):
    """busbw ratio dsk / torch per collective and size, the 8-byte latency, and the large-size verdict."""
    with open(dsk_path) as f:
        dsk = json.load(f)
    with open(torch_path) as f:
        theirs = json.load(f)
    ours = {}
    for row in dsk["results"]:
        if row["type"] == "float" and row["redop"] in ("sum", "none"):
            ours[(row["collective"], row["size"])] = row
    print(f"# dsk-bench-nccl (NCCL {dsk['nccl_version']}, {dsk['ranks']} ranks) vs torch {theirs['torch']} "
          f"(NCCL {theirs['nccl_version']}): busbw in GB/s, time in us, float32 sum")
    print(f"# {'collective':>14} {'size':>12} {'placement':>12} {'dsk time':>10} {'torch time':>10} "
          f"{'dsk busbw':>10} {'torch busbw':>11} {'ratio':>7}")
    worst = {}
    for row in theirs["results"]:
        key = (row["collective"], row["size"])
        if key not in ours:
            continue
        cell = ours[key]["in_place" if row["placement"] == "in-place" else "out_of_place"]
        if not cell:
            continue
        ratio = cell["busbw_gbps"] / row["busbw_gbps"] if row["busbw_gbps"] > 0 else float("nan")
        if row["size"] == 8:
            ratio = row["time_us"] / cell["time_us"]  # latency: > 1 means dsk is faster
        print(f"  {row['collective']:>14} {row['size']:>12} {row['placement']:>12} {cell['time_us']:>10.2f} "
              f"{row['time_us']:>10.2f} {cell['busbw_gbps']:>10.2f} {row['busbw_gbps']:>11.2f} {ratio:>7.3f}")
        if row["size"] >= 64 << 20:
            worst[row["collective"]] = min(worst.get(row["collective"], 9.9), ratio)
    print("# ratio: dsk busbw / torch busbw (8 B rows: torch time / dsk time, so > 1 is dsk faster)")
    for collective, ratio in worst.items():
        verdict = "within 3%" if ratio >= 0.97 else "MORE THAN 3% SLOWER"
        print(f"# {collective}: lowest busbw ratio at >= 64 MiB: {ratio:.3f} ({verdict})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", nargs=2, metavar=("DSK_JSON", "TORCH_JSON"))
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("-b", "--minbytes", type=parse_size, default=8)
    parser.add_argument("-e", "--maxbytes", type=parse_size, default=parse_size("8G"))
    parser.add_argument("-f", "--stepfactor", type=int, default=2)
    parser.add_argument("-n", "--iters", type=int, default=20)
    parser.add_argument("-w", "--warmup_iters", type=int, default=5)
    parser.add_argument("--collectives", default="all")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
        return 0
    args.collectives = COLLECTIVES if args.collectives == "all" else args.collectives.split(",")
    unknown = [c for c in args.collectives if c not in COLLECTIVES]
    if unknown or args.stepfactor < 2:
        parser.error(f"unknown collective {unknown}" if unknown else "--stepfactor must be 2 or more")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
