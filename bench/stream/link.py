"""The link's own speed, for the streaming benchmark: rank 0 sends rank 1
a given number of bytes with MLX's send/recv over the job's back-end, in
chunks, and rank 0 prints one LINK_JSON line with the time. This is the
time "to send the bytes receivers need over the link" that streamed loads
are held to.

Run it as both ranks of a 2-rank job (this project's launch or mlx.launch).
"""

import argparse
import json
import time

import mlx.core as mx


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bytes", type=int, required=True, help="bytes to send")
    ap.add_argument("--chunk", type=int, default=64 << 20, help="bytes per send")
    args = ap.parse_args()

    group = mx.distributed.init()
    if group.size() != 2:
        raise SystemExit("link.py: run it as 2 ranks")
    sizes = [args.chunk] * (args.bytes // args.chunk)
    if args.bytes % args.chunk:
        sizes.append(args.bytes % args.chunk)
    chunks = {n: mx.zeros((n,), dtype=mx.uint8) for n in set(sizes)}
    mx.eval(list(chunks.values()))
    mx.eval(mx.distributed.all_sum(mx.array(1.0), stream=mx.cpu))
    t = time.perf_counter()
    for n in sizes:
        if group.rank() == 0:
            mx.eval(mx.distributed.send(chunks[n], 1, stream=mx.cpu))
        else:
            mx.eval(mx.distributed.recv((n,), mx.uint8, 0, stream=mx.cpu))
    mx.eval(mx.distributed.all_sum(mx.array(1.0), stream=mx.cpu))
    wall = time.perf_counter() - t
    if group.rank() == 0:
        print("LINK_JSON " + json.dumps({"wall_s": wall, "bytes": args.bytes, "chunk": args.chunk}), flush=True)


if __name__ == "__main__":
    main()
