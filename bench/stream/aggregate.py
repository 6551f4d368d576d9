"""Reads the logs run.sh left in a directory and prints the streaming
benchmark: the median run (by wall time) of each way to get a 2-rank
tensor-parallel load going when only rank 0 has the checkpoint, the bounds
a streamed load is held to, and whether the goals are met. GB = 10^9 bytes.

Log lines it reads (each may carry the launcher's "[rank] " prefix):
  PLAIN_JSON {...}     run.sh's timed cat of the shard files
  LINK_JSON {...}      link.py: the receiver's bytes sent over the link
  COPY_JSON {...}      run.sh's timed copy of the checkpoint to rank 1
  KIMILOAD_JSON {...}  rank 0 of kimiload --json: every rank's figures
  MLXLM_JSON {...}     one per rank of bench/load/mlxlm_rank.py
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


def runs(logs, name, marker):
    out = []
    for p in sorted(glob.glob(os.path.join(logs, name + ".*.log"))):
        js = list(json_lines(p, marker))
        if js:
            out.append(js)
    return out


def median(xs):
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", help="directory of run.sh's logs")
    ap.add_argument("--cache", default="?", help="cold or warm, for the title")
    ap.add_argument("--checkpoint", default="", help="checkpoint directory, for the title")
    ap.add_argument("--copy-tool", default="copy", help="how the checkpoint was copied, for the table")
    args = ap.parse_args()

    def kimi(name):
        return [r[0] for r in runs(args.logs, name, "KIMILOAD_JSON ")]

    streamed, local = kimi("streamed"), kimi("local")
    if not streamed:
        sys.exit("aggregate: no streamed run in " + args.logs)
    plain = [r[0] for r in runs(args.logs, "plain", "PLAIN_JSON ")]
    link = [r[0] for r in runs(args.logs, "link", "LINK_JSON ")]
    copies = [r[0] for r in runs(args.logs, "copy", "COPY_JSON ")]
    mlxlm = [max(x["load_s"] for x in r) for r in runs(args.logs, "copied-load", "MLXLM_JSON ")]

    s = sorted(streamed, key=lambda j: j["wall_s"])[(len(streamed) - 1) // 2]
    src, dst = s["per_rank"][0], s["per_rank"][1]
    size = plain[0]["bytes"] if plain else s["checkpoint_bytes"]
    # What the source needs from disk: its own shard and the receiver's.
    source_bytes = src["bytes_read"] + src["streamed_out"]
    read_s = median([p["wall_s"] * source_bytes / p["bytes"] for p in plain])
    send_s = median([l["wall_s"] * dst["streamed_in"] / l["bytes"] for l in link])
    copy_s, load_s = median([c["wall_s"] for c in copies]), median(mlxlm)
    local_s = median([j["wall_s"] for j in local])

    print("Streaming benchmark: %s, %s of shard files, 2 ranks on this machine over %s, only rank 0 has the files, "
          "%s page cache, median of %d runs" % (args.checkpoint, gb(size), s["backend"], args.cache, len(streamed)))
    rows = [("way to load", "wall", "note")]
    rows.append(("ours: streamed from rank 0 (kimiload --stream)", "%.2f s" % s["wall_s"],
                 "link carried %s to rank 1; rank 0 read %s" % (gb(dst["streamed_in"]), gb(src["bytes_read"] + src["streamed_out"]))))
    if local_s is not None:
        rows.append(("(a) both ranks read local files (kimiload, direct)", "%.2f s" % local_s, "needs the checkpoint on every node"))
    if copy_s is not None and load_s is not None:
        rows.append(("(b) %s to rank 1, then mlx-lm sharded_load" % args.copy_tool, "%.2f s" % (copy_s + load_s),
                     "copy %.2f s + load %.2f s" % (copy_s, load_s)))
    if read_s is not None:
        rows.append(("bound: read the source's bytes (cat)", "%.2f s" % read_s, "%s at the plain read's speed" % gb(source_bytes)))
    if send_s is not None:
        rows.append(("bound: send the receiver's bytes (MLX send/recv)", "%.2f s" % send_s, "%s at the link's speed" % gb(dst["streamed_in"])))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  %s  %s  %s" % (r[0].ljust(w[0]), r[1].rjust(w[1]), r[2]))

    print("\nbytes on the link per rank (in / out): " + ", ".join(
        "rank %d %s / %s" % (r["rank"], gb(r["streamed_in"]), gb(r["streamed_out"])) for r in s["per_rank"]))
    print("MLX peak / shard: " + ", ".join("rank %d %.4f" % (r["rank"], r["mlx_peak"] / r["shard"]) for r in s["per_rank"]))

    goals = []
    if read_s is not None and send_s is not None:
        bound = max(read_s, send_s)
        goals.append(("streamed ≤ 1.1 × max(source read, receiver send)", s["wall_s"] <= 1.1 * bound,
                      "%.2f× of %.2f s" % (s["wall_s"] / bound, bound)))
    if copy_s is not None and load_s is not None:
        goals.append(("streamed ≤ 0.5 × copy-then-load", s["wall_s"] <= 0.5 * (copy_s + load_s),
                      "%.2f×" % (s["wall_s"] / (copy_s + load_s))))
    goals.append(("receiver MLX peak / shard ≤ 1.01", dst["mlx_peak"] <= 1.01 * dst["shard"], "%.4f" % (dst["mlx_peak"] / dst["shard"])))
    goals.append(("receiver read no file", dst["bytes_read"] == 0, gb(dst["bytes_read"])))
    print("\ngoals:")
    for text, met, figure in goals:
        print("  %-55s %-7s (%s)" % (text, "met" if met else "NOT met", figure))


if __name__ == "__main__":
    main()
