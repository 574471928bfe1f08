#!/usr/bin/env python3
"""torch.distributed's NCCL collectives timed the way dsk-bench-nccl times its own, for comparison.

    python3 scripts/bench/nccl_torch.py --nproc 2 -b 8 -e 8G -f 2 -n 20 -w 5 --json torch.json
    python3 scripts/bench/nccl_torch.py --compare dsk.json torch.json
    python3 scripts/bench/nccl_torch.py --compare dsk-1.json,dsk-2.json torch-1.json,torch-2.json

One process per GPU (torch.multiprocessing), float32, sum. Inputs hold the values dsk-bench-nccl
uses (lib/dist/collectives.hpp: (k + r) mod 4 for reductions, (k + 3r) mod 7 for data movement),
since power, and so clocks, can depend on the data (--fill ones for all ones). For each collective and size: w warm-up
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


def make_input(fill, collective, count, rank, n, device):
    """This rank's input, as dsk-bench-nccl fills it (collectives.hpp's input_value for float sum)."""
    import torch

    length = count // n if collective == "all_gather" else count
    if fill == "ones":
        return torch.ones(length, device=device)
    index = torch.arange(length, device=device, dtype=torch.int64)
    if collective in ("all_reduce", "reduce_scatter", "reduce"):
        values = index.add_(rank).remainder_(4)
    elif collective == "all_gather":  # this rank's block of the whole vector
        values = index.add_(rank * length + 3 * rank).remainder_(7)
    else:
        values = index.add_(3 * rank).remainder_(7)
    result = values.float()
    del values, index
    return result


def make_call(collective, count, rank, n, device, fill):
    import torch
    import torch.distributed as dist

    chunk = count // n
    source = make_input(fill, collective, count, rank, n, device)
    if collective == "all_reduce":
        return lambda: dist.all_reduce(source)
    if collective == "all_gather":
        target = torch.empty(count, device=device)
        return lambda: dist.all_gather_into_tensor(target, source)
    if collective == "reduce_scatter":
        target = torch.empty(chunk, device=device)
        return lambda: dist.reduce_scatter_tensor(target, source)
    if collective == "broadcast":
        return lambda: dist.broadcast(source, src=0)
    if collective == "reduce":
        return lambda: dist.reduce(source, dst=0)
    if collective == "alltoall":
        target = torch.empty(count, device=device)
        return lambda: dist.all_to_all_single(target, source)
    target = torch.empty(count, device=device)

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
            call = make_call(collective, count, rank, n, device, args.fill)
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
                   "iterations": args.iters, "warmup_iterations": args.warmup_iters, "fill": args.fill,
                   "results": rows})
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


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def load_runs(paths):
    """{(collective, size, placement): [cell per run]} and the first document, for comma-separated
    JSON paths, each written by dsk-bench-nccl --json or by this script's --json."""
    runs, first = {}, None
    for path in paths.split(","):
        with open(path) as f:
            document = json.load(f)
        first = first or document
        for key, cell in (torch_cells if "torch" in document else dsk_cells)(document):
            runs.setdefault(key, []).append(cell)
    return runs, first


def describe(document, paths):
    runs = len(paths.split(","))
    if "torch" in document:
        return (f"torch {document['torch']} (NCCL {document['nccl_version']}, -n {document['iterations']}, "
                f"inputs {document.get('fill', 'ones')}), {runs} run(s)")
    return f"dsk-bench-nccl (NCCL {document['nccl_version']}, -n {document['iterations']}), {runs} run(s)"


def dsk_cells(document):
    for row in document["results"]:
        if row["type"] == "float" and row["redop"] in ("sum", "none"):
            for placement in ("out-of-place", "in-place"):
                cell = row[placement.replace("-", "_")]
                if cell:
                    yield (row["collective"], row["size"], placement), cell


def torch_cells(document):
    for row in document["results"]:
        yield (row["collective"], row["size"], row["placement"]), row


def compare(paths_a, paths_b):
    """busbw ratio A / B per collective, size and placement (A: dsk-bench-nccl, B: torch, usually),
    the 8-byte latency, and the verdict at sizes >= 64 MiB. With several runs of a side (comma-
    separated), its times are averaged and its spread shown: (slowest - fastest) / fastest over its
    runs, the noise that a ratio must be read against."""
    runs_a, document_a = load_runs(paths_a)
    runs_b, document_b = load_runs(paths_b)
    print(f"# A: {describe(document_a, paths_a)}")
    print(f"# B: {describe(document_b, paths_b)}")
    print(f"# {document_b['ranks']} ranks, float32 sum; time in us (mean of runs), busbw in GB/s")
    print(f"# {'collective':>14} {'size':>12} {'placement':>12} {'A time':>10} {'B time':>10} "
          f"{'A busbw':>10} {'B busbw':>10} {'ratio':>7} {'A spread':>9} {'B spread':>9}")
    large = {}
    for key, cells_b in runs_b.items():
        if key not in runs_a:
            continue
        collective, size, placement = key
        cells_a = runs_a[key]
        time_a = sum(c["time_us"] for c in cells_a) / len(cells_a)
        time_b = sum(c["time_us"] for c in cells_b) / len(cells_b)
        # busbw is inversely proportional to time at a fixed size and collective.
        busbw_a = cells_a[0]["busbw_gbps"] * cells_a[0]["time_us"] / time_a
        busbw_b = cells_b[0]["busbw_gbps"] * cells_b[0]["time_us"] / time_b
        ratio = time_b / time_a  # = busbw A / busbw B; at 8 B, > 1 means A is faster

        def spread(cells):
            times = [c["time_us"] for c in cells]
            return f"{100 * (max(times) - min(times)) / min(times):.1f}%" if len(times) > 1 else "-"

        print(f"  {collective:>14} {size:>12} {placement:>12} {time_a:>10.2f} {time_b:>10.2f} "
              f"{busbw_a:>10.2f} {busbw_b:>10.2f} {ratio:>7.3f} {spread(cells_a):>9} {spread(cells_b):>9}")
        if size >= 64 << 20:
            large.setdefault(collective, []).append(ratio)
    print("# ratio: busbw A / busbw B = time B / time A (at 8 B: > 1 means A is faster)")
    for collective, ratios in large.items():
        middle = median(ratios)
        verdict = "within 3%" if middle >= 0.97 else "MORE THAN 3% SLOWER"
        print(f"# {collective}: busbw ratio at >= 64 MiB ({len(ratios)} sizes): median {middle:.3f}, "
              f"lowest {min(ratios):.3f}, highest {max(ratios):.3f} ({verdict})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", nargs=2, metavar=("A_JSON[,...]", "B_JSON[,...]"),
                        help="busbw ratio A / B (each dsk-bench-nccl's or this script's JSON)")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("-b", "--minbytes", type=parse_size, default=8)
    parser.add_argument("-e", "--maxbytes", type=parse_size, default=parse_size("8G"))
    parser.add_argument("-f", "--stepfactor", type=int, default=2)
    parser.add_argument("-n", "--iters", type=int, default=20)
    parser.add_argument("-w", "--warmup_iters", type=int, default=5)
    parser.add_argument("--collectives", default="all")
    parser.add_argument("--fill", choices=("pattern", "ones"), default="pattern",
                        help="inputs: dsk-bench-nccl's values (default) or all ones")
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
