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
import threading
import time
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten


def proc_io(field):
    """A counter of /proc/self/io (rchar: bytes read through read(2) and
    pread(2); read_bytes: bytes fetched from storage), or -1."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def resident():
    """This process's resident size in bytes, or 0 where /proc is absent."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class Sampler(threading.Thread):
    """Records MLX's active memory and the resident size every 20 ms, as
    kimiload --samples does, until stop(); then writes JSON lines."""

    def __init__(self, path, t0):
        super().__init__(daemon=True)
        self.path, self.t0, self.rows = path, t0, []
        self.done = threading.Event()

    def take(self):
        self.rows.append({"t": time.perf_counter() - self.t0, "active": mx.get_active_memory(), "rss": resident()})

    def run(self):
        self.take()
        while not self.done.wait(0.02):
            self.take()
        self.take()

    def stop(self):
        self.done.set()
        self.join()
        with open(self.path, "w") as f:
            for r in self.rows:
                f.write(json.dumps(r) + "\n")


def peak_rss():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return r if sys.platform == "darwin" else r * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint directory")
    ap.add_argument("--mode", choices=["sharded_load", "naive"], default="sharded_load")
    ap.add_argument("--samples", help="write memory samples to FILE as JSON lines ({rank} is replaced)")
    args = ap.parse_args()

    # Imports happen before the clock starts: the benchmark times loading,
    # not Python's start-up.
    from mlx_lm.utils import load_model, sharded_load
    import mlx_lm.models.kimi_k25  # noqa: F401

    group = mx.distributed.init()
    # Start every rank together, as the Go ranks do.
    mx.eval(mx.distributed.all_sum(mx.array(1.0), stream=mx.cpu))
    mx.reset_peak_memory()
    read0, storage0 = proc_io("rchar"), proc_io("read_bytes")
    t0 = time.perf_counter()
    sampler = None
    if args.samples:
        sampler = Sampler(args.samples.replace("{rank}", str(group.rank())), t0)
        sampler.start()

    if args.mode == "sharded_load":
        model, _ = sharded_load(args.model, pipeline_group=None, tensor_group=group)
    else:
        model, _ = load_model(Path(args.model), lazy=True, strict=False)
        model.shard(group)
        mx.eval(model.parameters())
        mx.eval(mx.distributed.all_sum(mx.array(1.0), stream=mx.cpu))

    load_s = time.perf_counter() - t0
    read1, storage1 = proc_io("rchar"), proc_io("read_bytes")
    if sampler:
        sampler.stop()
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
        "storage_read": storage1 - storage0 if storage0 >= 0 and storage1 >= 0 else -1,
        "shard": shard,
    }
    print("MLXLM_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
