"""Reads the logs run.sh left in a directory and prints the load benchmark
table: one row per loader (the median of its runs by wall time), the
ratios against mlx-lm's sharded_load and the plain read, and whether the
goals are met. GB means 10^9 bytes.

Log lines it reads (each may carry the launcher's "[rank] " prefix):
  PLAIN_JSON {...}     run.sh's timed cat of the shard files
  KIMILOAD_JSON {...}  rank 0 of kimiload --json: every rank's figures
  MLXLM_JSON {...}     one per rank of mlxlm_rank.py
"""

import argparse
import glob
import json
import os
import statistics
import sys


def gb(n):
    return "%.2f GB" % (n / 1e9)


def json_lines(path, marker):
    with open(path) as f:
        for line in f:
            i = line.find(marker)
            if i >= 0:
                yield json.loads(line[i + len(marker):])


def load_run(name, path):
    """One run as {wall, ranks: [{peak, rss, read, shard}]}, or None."""
    if name.startswith("plain"):
        for j in json_lines(path, "PLAIN_JSON "):
            return {"wall": j["wall_s"], "bytes": j["bytes"], "ranks": []}
        return None
    if name in ("direct", "eval-shard-eval"):
        for j in json_lines(path, "KIMILOAD_JSON "):
            ranks = [{"peak": r["mlx_peak"], "rss": r["peak_rss"], "read": r["bytes_read"], "shard": r["shard"]}
                     for r in j["per_rank"]]
            return {"wall": j["wall_s"], "ranks": ranks}
        return None
    ranks = sorted(json_lines(path, "MLXLM_JSON "), key=lambda r: r["rank"])
    if not ranks:
        return None
    return {"wall": max(r["load_s"] for r in ranks),
            "ranks": [{"peak": r["mlx_peak"], "rss": r["peak_rss"], "read": r["bytes_read"], "shard": r["shard"]}
                      for r in ranks]}


def median_run(runs):
    runs = sorted(runs, key=lambda r: r["wall"])
    return runs[(len(runs) - 1) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", help="directory of run.sh's logs")
    ap.add_argument("--cache", default="?", help="cold or warm, for the title")
    ap.add_argument("--checkpoint", default="", help="checkpoint directory, for the title")
    args = ap.parse_args()

    names = [("plain-serial", "plain read (cat)"), ("plain-parallel", "plain read (cat per file, at once)"), ("direct", "ours: direct"), ("eval-shard-eval", "ours: eval-shard-eval"),
             ("mlx-lm", "mlx-lm sharded_load"), ("naive", "naive: shard, then eval all")]
    rows = {}
    for name, _ in names:
        runs = [r for p in sorted(glob.glob(os.path.join(args.logs, name + ".*.log"))) if (r := load_run(name, p))]
        if runs:
            rows[name] = (median_run(runs), len(runs))
    plain = [rows[n][0] for n in ("plain-serial", "plain-parallel") if n in rows]
    if not plain:
        sys.exit("aggregate: no plain read in " + args.logs)
    size = plain[0]["bytes"]
    # The physical limit is the faster of the two plain reads.
    plain_bw = max(size / p["wall"] for p in plain)
    mlxlm_wall = rows["mlx-lm"][0]["wall"] if "mlx-lm" in rows else None

    print("Load benchmark: %s, %s of shard files, 2 ranks on this machine over ring, %s page cache, median of %d runs"
          % (args.checkpoint, gb(size), args.cache, max(n for _, n in rows.values())))
    header = ["loader", "wall", "throughput", "× best plain read", "× mlx-lm speed",
              "MLX peak r0/r1", "peak RSS r0/r1", "read/rank", "shard/rank", "peak/shard"]
    table = [header]
    for name, label in names:
        if name not in rows:
            continue
        run, _ = rows[name]
        bw = size / run["wall"]
        r = run["ranks"]

        def per(key):
            return "/".join("%.2f" % (x[key] / 1e9) for x in r) + " GB" if r else "-"

        def worst_ratio():
            return "%.3f" % max(x["peak"] / x["shard"] for x in r) if r else "-"

        table.append([
            label, "%.2f s" % run["wall"], "%.2f GB/s" % (bw / 1e9), "%.2f" % (bw / plain_bw),
            "%.2f" % (mlxlm_wall / run["wall"]) if mlxlm_wall and r else "-",
            per("peak"), per("rss"), gb(max(x["read"] for x in r)) if r else gb(size),
            gb(max(x["shard"] for x in r)) if r else "-", worst_ratio(),
        ])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))

    print("\nmlx-lm drops the vision tower on load and keeps less; ours loads it (replicated), so its shard is larger.")
    print("read/rank: ours counts the bytes the loader read; Python's is the process's read(2) bytes (rchar).")
    if "direct" not in rows:
        return
    d = rows["direct"][0]
    goals = [("direct loads ≥ 2× faster than mlx-lm's sharded_load",
              mlxlm_wall is not None and mlxlm_wall / d["wall"] >= 2,
              "%.2f×" % (mlxlm_wall / d["wall"]) if mlxlm_wall else "no mlx-lm run"),
             ("direct throughput ≥ 0.8 of the best plain read", size / d["wall"] >= 0.8 * plain_bw,
              "%.2f" % (size / d["wall"] / plain_bw)),
             ("direct peak / shard ≤ 1.01", max(x["peak"] / x["shard"] for x in d["ranks"]) <= 1.01,
              "%.3f" % max(x["peak"] / x["shard"] for x in d["ranks"]))]
    print("\ngoals:")
    for text, met, figure in goals:
        print("  %-55s %-4s (%s)" % (text, "met" if met else "NOT met", figure))


if __name__ == "__main__":
    main()
