"""One rank of the load benchmark's Python side: loads a checkpoint's
tensor-parallel shard the way mlx-lm does and prints one JSON line of
figures, prefixed with MLXLM_JSON, for aggregate.py.

Modes:
  sharded_load  mlx_lm.utils.sharded_load(path, pipeline_group=None,
                tensor_group=group): what a user of mlx-lm runs.
  naive         the seed's first, failing approach: load lazily,
                model.shard(group), then one mx.eval(model.parameters()).
                Every full tensor is read; on a checkpoint larger than
                memory this is what panicked the machine.

Run it as every rank of a job (mlx.launch or this project's launch).
"""

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten


def read_chars():
    """Bytes this process has read through read(2)/pread(2), or -1."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def peak_rss():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return r if sys.platform == "darwin" else r * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint directory")
    ap.add_argument("--mode", choices=["sharded_load", "naive"], default="sharded_load")
    args = ap.parse_args()

    # Imports happen before the clock starts: the benchmark times loading,
    # not Python's start-up.
    from mlx_lm.utils import load_model, sharded_load
    import mlx_lm.models.kimi_k25  # noqa: F401

    group = mx.distributed.init()
    # Start every rank together, as the Go ranks do.
    mx.eval(mx.distributed.all_sum(mx.array(1.0), stream=mx.cpu))
    mx.reset_peak_memory()
    read0 = read_chars()
    t0 = time.perf_counter()

    if args.mode == "sharded_load":
        model, _ = sharded_load(args.model, pipeline_group=None, tensor_group=group)
    else:
        model, _ = load_model(Path(args.model), lazy=True, strict=False)
        model.shard(group)
        mx.eval(model.parameters())
        mx.eval(mx.distributed.all_sum(mx.array(1.0), stream=mx.cpu))

    load_s = time.perf_counter() - t0
    read1 = read_chars()
    shard = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    out = {
        "rank": group.rank(),
        "size": group.size(),
        "mode": args.mode,
        "load_s": load_s,
        "active": mx.get_active_memory(),
        "mlx_peak": mx.get_peak_memory(),
        "peak_rss": peak_rss(),
        "bytes_read": read1 - read0 if read0 >= 0 and read1 >= 0 else -1,
        "shard": shard,
    }
    print("MLXLM_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
