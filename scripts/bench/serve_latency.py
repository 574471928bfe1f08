#!/usr/bin/env python3
"""Time to first token and inter-token latency of an OpenAI-compatible server under concurrent
streaming clients (the standard library only, so it runs anywhere dsk-serve does).

  serve_latency.py --base http://127.0.0.1:8080 --model bench --streams 64 --requests 256 \
      --prompt-tokens 128 --max-tokens 128 --vocab 32000

Each of --streams threads sends streaming /v1/completions requests one after another (greedy, a
prompt of --prompt-tokens random token ids) until --requests have been sent in all. Time to first
token (TTFT) runs from sending the request to the first streamed chunk with text; inter-token
latency (ITL) is the gap between consecutive chunks of text, as a client sees them (the way vLLM's
benchmark_serving counts it). Prints one YAML record: p50/p90/p99 of both, output tokens/s over the
whole run, failed requests. Exit 1 when any request failed.
"""
import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))  # nearest rank
    return ordered[rank]


def stream_one(url, body, timeout):
    """Sends one streaming request; returns (ttft_s, [gaps_s], chunks) or raises."""
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        start = time.perf_counter()
        connection.request("POST", "/v1/completions", body=json.dumps(body),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {response.read(300)!r}")
        ttft, last, gaps, chunks = None, None, [], 0
        for raw in response:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                raise RuntimeError(f"stream error: {event['error']}")
            if not event["choices"][0].get("text"):
                continue
            now = time.perf_counter()
            if ttft is None:
                ttft = now - start
            else:
                gaps.append(now - last)
            last = now
            chunks += 1
        if ttft is None:
            raise RuntimeError("no text streamed")
        return ttft, gaps, chunks
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--vocab", type=int, required=True, help="prompt ids are drawn from [3, vocab)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    url = urllib.parse.urlparse(args.base)
    rng = random.Random(args.seed)
    bodies = [{"model": args.model, "prompt": [rng.randrange(3, args.vocab) for _ in range(args.prompt_tokens)],
               "max_tokens": args.max_tokens, "temperature": 0, "stream": True} for _ in range(args.requests)]
    lock = threading.Lock()
    ttfts, gaps, failures, chunks = [], [], [], [0]
    next_request = iter(range(args.requests))

    def worker():
        while True:
            with lock:
                index = next(next_request, None)
            if index is None:
                return
            try:
                ttft, request_gaps, request_chunks = stream_one(url, bodies[index], args.timeout)
                with lock:
                    ttfts.append(ttft)
                    gaps.extend(request_gaps)
                    chunks[0] += request_chunks
            except Exception as error:  # counted and reported: one failure must not stop the run
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    ms = lambda seconds: round(seconds * 1000, 2)
    record = {
        "kind": "serve_latency", "streams": args.streams, "requests": args.requests,
        "failed": len(failures), "prompt_tokens": args.prompt_tokens, "max_tokens": args.max_tokens,
        "output_chunks": chunks[0], "seconds": round(elapsed, 2),
        "output_tokens_per_s": round(chunks[0] / elapsed, 1),
        "ttft_p50_ms": ms(percentile(ttfts, 50)), "ttft_p90_ms": ms(percentile(ttfts, 90)),
        "ttft_p99_ms": ms(percentile(ttfts, 99)),
        "itl_p50_ms": ms(percentile(gaps, 50)), "itl_p90_ms": ms(percentile(gaps, 90)),
        "itl_p99_ms": ms(percentile(gaps, 99)),
    }
    print("---")
    for key, value in record.items():
        print(f"{key}: {value}")
    for failure in failures[:5]:
        print("failed:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
