"""Python rank of the all-sum benchmark: the same measurements as the Go
rank (main.go), with mx.distributed.all_sum on the ring back-end.

Rank 0 prints one JSON line: {"impl": ..., "latency_us": ..., "bandwidth_gbs": ...}.
"""
import argparse
import json
import time

import mlx.core as mx


def timed(x, group, iters):
    start = time.perf_counter()
    for _ in range(iters):
        mx.eval(mx.distributed.all_sum(x, group=group, stream=mx.cpu))
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--mb", type=int, default=64)
    p.add_argument("--bw-iters", type=int, default=10)
    args = p.parse_args()

    group = mx.distributed.init(backend="ring", strict=True)
    small = mx.ones((1,), dtype=mx.float32)
    big = mx.ones((args.mb * 1000 * 1000 // 4,), dtype=mx.float32)
    mx.eval(small, big)

    timed(small, group, args.warmup)
    lat = timed(small, group, args.iters) / args.iters
    timed(big, group, 2)
    bw_t = timed(big, group, args.bw_iters) / args.bw_iters
    if group.rank() == 0:
        print(json.dumps({
            "impl": "python",
            "latency_us": lat * 1e6,
            "bandwidth_gbs": big.nbytes / bw_t / 1e9,
        }), flush=True)


main()
