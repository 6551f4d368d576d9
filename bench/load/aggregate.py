"""Reads what run.sh left in its logs directory and prints the load
benchmark's tables, one per rank count: one row per loader (the median of
its runs by wall time), the ratios against the fill limit, the plain read
and mlx-lm's sharded_load, per-rank memory and bytes read, and whether the
issue's goals are met. With --out it also writes results.json (every
figure, every run) and memory.svg (MLX active memory over time, per rank,
for each loader side by side, from the median run). GB means 10^9 bytes.

Log names: plain-serial.I.log, plain-parallel.I.log and LOADER-nN.I.log
for LOADER in fill-limit, direct, direct-resharded, map-resharded,
eval-shard-eval, eval-shard-eval-mlxread, mlx-lm, naive, with N ranks. Lines it reads (each may
carry the launcher's "[rank] " prefix):
  PLAIN_JSON {...}      run.sh's timed cat of the shard files
  FILLLIMIT_JSON {...}  one per rank of bench/load/filllimit
  KIMILOAD_JSON {...}   rank 0 of kimiload --json: every rank's figures
  MLXLM_JSON {...}      one per rank of mlxlm_rank.py
Samples: samples/LOADER-nN.I.rK.jsonl, lines {"t", "active", "rss"}.
"""

import argparse
import glob
import json
import os
import re
import statistics
import sys

LOADERS = [
    ("fill-limit", "fill limit (copy of each rank's bytes)"),
    ("direct", "ours: direct"),
    ("direct-resharded", "ours: direct, resharded checkpoint"),
    ("map-resharded", "ours: direct --read map, resharded"),
    ("eval-shard-eval", "ours: eval-shard-eval"),
    ("eval-shard-eval-mlxread", "ours: eval-shard-eval --read mlx"),
    ("mlx-lm", "mlx-lm sharded_load"),
    ("naive", "naive: shard, then eval all"),
]
PLAIN = [("plain-serial", "plain read (cat)"), ("plain-parallel", "plain read (cat per file, at once)")]


def gb(n):
    return "%.2f GB" % (n / 1e9)


def json_lines(path, marker):
    with open(path) as f:
        for line in f:
            i = line.find(marker)
            if i >= 0:
                yield json.loads(line[i + len(marker):])


def rank_row(r):
    return {"rank": r["rank"], "load_s": r.get("load_s"), "mlx_peak": r.get("mlx_peak"), "peak_rss": r.get("peak_rss"),
            "bytes_read": r.get("bytes_read"), "storage_read": r.get("storage_read", -1), "shard": r.get("shard")}


def load_run(kind, path):
    """One run as {"wall_s", "ranks": [...]}, or None when its log has no figures."""
    if kind.startswith("plain"):
        for j in json_lines(path, "PLAIN_JSON "):
            return {"wall_s": j["wall_s"], "bytes": j["bytes"], "ranks": []}
        return None
    if kind == "fill-limit":
        rs = sorted(json_lines(path, "FILLLIMIT_JSON "), key=lambda r: r["rank"])
        if not rs:
            return None
        return {"wall_s": max(r["load_s"] for r in rs),
                "ranks": [{"rank": r["rank"], "load_s": r["load_s"], "bytes_read": r["bytes"]} for r in rs]}
    if kind in ("direct", "direct-resharded", "map-resharded", "eval-shard-eval", "eval-shard-eval-mlxread"):
        for j in json_lines(path, "KIMILOAD_JSON "):
            return {"wall_s": j["wall_s"], "ranks": [rank_row(r) for r in j["per_rank"]]}
        return None
    rs = sorted(json_lines(path, "MLXLM_JSON "), key=lambda r: r["rank"])
    if not rs:
        return None
    return {"wall_s": max(r["load_s"] for r in rs), "ranks": [rank_row(r) for r in rs]}


def median_run(runs):
    s = sorted(runs, key=lambda r: r["wall_s"])
    return s[(len(s) - 1) // 2]


def collect(logs):
    """{"plain": {kind: row}, "by_ranks": {N: {kind: row}}}; a row holds its
    runs, the median run and the run number of the median."""
    out = {"plain": {}, "by_ranks": {}}
    pat = re.compile(r"^(.*?)(?:-n(\d+))?\.(\d+)\.log$")
    groups = {}
    for p in sorted(glob.glob(os.path.join(logs, "*.log"))):
        m = pat.match(os.path.basename(p))
        if not m:
            continue
        kind, n, i = m.group(1), m.group(2), int(m.group(3))
        r = load_run(kind, p)
        if r is None:
            continue
        r["run"] = i
        groups.setdefault((kind, int(n) if n else 0), []).append(r)
    for (kind, n), runs in groups.items():
        med = median_run(runs)
        row = {"wall_s": med["wall_s"], "median_run": med["run"], "runs_wall_s": [r["wall_s"] for r in runs],
               "per_rank": med["ranks"]}
        if "bytes" in med:
            row["bytes"] = med["bytes"]
        if n == 0:
            out["plain"][kind] = row
        else:
            out["by_ranks"].setdefault(n, {})[kind] = row
    return out


def table(n, rows, plain, size, cache):
    fill = rows.get("fill-limit")
    mlxlm = rows.get("mlx-lm")
    plain_wall = min(p["wall_s"] for p in plain.values())
    header = ["loader", "wall", "× fill limit", "× best plain read", "× mlx-lm speed", "MLX peak / rank", "peak RSS / rank",
              "read / rank", "storage read / rank", "shard / rank", "MLX peak/shard", "RSS/shard", "(RSS-start)/shard"]
    out = [header]
    for kind, label in PLAIN:
        if kind in plain:
            w = plain[kind]["wall_s"]
            out.append([label, "%.2f s" % w, "%.2f" % (fill["wall_s"] / w) if fill else "-", "%.2f" % (plain_wall / w),
                        "-", "-", "-", gb(size), "-", "-", "-", "-", "-"])
    for kind, label in LOADERS:
        if kind not in rows:
            continue
        row = rows[kind]
        w, rs = row["wall_s"], row["per_rank"]

        def per(key, scale=1e9, fmt="%.2f"):
            vals = [r.get(key) for r in rs]
            if not rs or any(v is None or v < 0 for v in vals):
                return "-"
            return "/".join(fmt % (v / scale) for v in vals) + (" GB" if scale == 1e9 else "")

        def worst(key, less=None):
            if not rs or any(r.get(key) is None or not r.get("shard") or (less and r.get(less) is None) for r in rs):
                return "-"
            return "%.3f" % max((r[key] - (r[less] if less else 0)) / r["shard"] for r in rs)

        out.append([label, "%.2f s" % w, "%.2f" % (fill["wall_s"] / w) if fill else "-", "%.2f" % (plain_wall / w),
                    "%.2f" % (mlxlm["wall_s"] / w) if mlxlm and kind != "fill-limit" else "-",
                    per("mlx_peak"), per("peak_rss"), per("bytes_read"),
                    per("storage_read") if cache == "cold" else "(warm)", per("shard"), worst("mlx_peak"), worst("peak_rss"),
                    worst("peak_rss", "rss_at_start")])
    widths = [max(len(r[i]) for r in out) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) for r in out)


def amplification(rows):
    """Per loader, per rank: storage bytes a cold load pulled over the bytes it needed (its shard)."""
    out = {}
    for kind in ("direct", "direct-resharded", "map-resharded", "mlx-lm"):
        if kind in rows:
            rs = rows[kind]["per_rank"]
            if rs and all(r.get("storage_read", -1) >= 0 and r.get("shard") for r in rs):
                # Ranks on one machine share its page cache: a page one rank
                # pulled, another finds, so the job's total is the figure
                # that does not depend on who came first.
                out[kind] = {"per_rank": [r["storage_read"] / r["shard"] for r in rs],
                             "job": sum(r["storage_read"] for r in rs) / sum(r["shard"] for r in rs)}
    return out


def goals(n, rows, plain, cache):
    d, fill, mlxlm = rows.get("direct"), rows.get("fill-limit"), rows.get("mlx-lm")
    plain_wall = min(p["wall_s"] for p in plain.values())
    out = []

    def add(text, met, figure):
        out.append({"goal": text, "met": bool(met), "figure": figure})

    if d is None:
        return out
    if cache == "warm" and fill:
        r = fill["wall_s"] / d["wall_s"]
        add("warm direct ≥ 0.8 × the fill limit", r >= 0.8, "%.2f" % r)
    if mlxlm:
        r = mlxlm["wall_s"] / d["wall_s"]
        want = 3 if cache == "warm" else 1
        add("%s direct ≥ %d× mlx-lm sharded_load" % (cache, want), r >= want, "%.2f×" % r)
    if cache == "cold":
        r = plain_wall / d["wall_s"]
        add("cold direct ≥ 0.9 × parallel cat of the same pages", r >= 0.9, "%.2f" % r)
    e = rows.get("eval-shard-eval")
    if e and mlxlm:
        r = mlxlm["wall_s"] / e["wall_s"]
        add("eval-shard-eval at least as fast as mlx-lm sharded_load", r >= 1, "%.2f×" % r)
    peak = max(r["mlx_peak"] / r["shard"] for r in d["per_rank"])
    add("direct MLX peak / shard ≤ 1.01", peak <= 1.01, "%.3f" % peak)
    rss = max(r["peak_rss"] / r["shard"] for r in d["per_rank"])
    add("direct peak RSS / shard ≤ 1.05", rss <= 1.05, "%.3f" % rss)
    return out


def samples(dirname, kind, n, run):
    """The median run's samples of every rank: [[(t, active, rss), ...], ...]."""
    out = []
    for p in sorted(glob.glob(os.path.join(dirname, "%s-n%d.%d.r*.jsonl" % (kind, n, run))),
                    key=lambda p: int(re.search(r"\.r(\d+)\.jsonl$", p).group(1))):
        with open(p) as f:
            out.append([(s["t"], s["active"], s.get("rss", 0)) for s in map(json.loads, f)])
    return out


def svg(res, sample_dir, title):
    """Active memory over time: a row of panels per rank count, a panel per
    loader, one line per rank, on shared axes per row; the dashed line is
    the rank's shard."""
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    pw, ph, ml, mt, gap = 230, 170, 48, 40, 26
    kinds = [k for k, _ in LOADERS if k != "fill-limit"]
    labels = dict(LOADERS)
    ns = sorted(res["by_ranks"])
    width = ml + len(kinds) * (pw + gap) + 10
    height = mt + len(ns) * (ph + 70) + 10
    el = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (width, height),
          '<rect width="100%" height="100%" fill="white"/>',
          '<text x="%d" y="18" font-size="14">%s</text>' % (ml, esc(title))]
    for row, n in enumerate(ns):
        rows = res["by_ranks"][n]
        series = {k: samples(sample_dir, k, n, rows[k]["median_run"]) for k in kinds if k in rows}
        tmax = max([s[-1][0] for ss in series.values() for s in ss if s] + [1e-3])
        ymax = max([a for ss in series.values() for s in ss for _, a, _ in s] + [1])
        y0 = mt + row * (ph + 70)
        el.append('<text x="%d" y="%d" font-size="13">%d ranks (MLX active memory, GB, over seconds; dashed: the shard)</text>'
                  % (ml, y0 + 4, n))
        for col, k in enumerate(kinds):
            x0, top = ml + col * (pw + gap), y0 + 14
            el.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>' % (x0, top, pw, ph))
            el.append('<text x="%d" y="%d">%s</text>' % (x0, top + ph + 28, esc(labels[k])))
            el.append('<text x="%d" y="%d" fill="#555">0</text>' % (x0, top + ph + 13))
            el.append('<text x="%d" y="%d" text-anchor="end" fill="#555">%.2f s</text>' % (x0 + pw, top + ph + 13, tmax))
            if col == 0:
                el.append('<text x="%d" y="%d" text-anchor="end" fill="#555">%.2f</text>' % (x0 - 4, top + 10, ymax / 1e9))
                el.append('<text x="%d" y="%d" text-anchor="end" fill="#555">0</text>' % (x0 - 4, top + ph))
            if k not in rows:
                el.append('<text x="%d" y="%d" fill="#999">not run</text>' % (x0 + 8, top + 20))
                continue
            el.append('<text x="%d" y="%d" fill="#555">%.2f s</text>' % (x0 + 6, top + 14, rows[k]["wall_s"]))
            for r, s in enumerate(series.get(k, [])):
                c = colours[r % len(colours)]
                pts = " ".join("%.1f,%.1f" % (x0 + t / tmax * pw, top + ph - a / ymax * ph) for t, a, _ in s)
                el.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (c, pts))
                shard = rows[k]["per_rank"][r].get("shard") if r < len(rows[k]["per_rank"]) else None
                if shard:
                    y = top + ph - shard / ymax * ph
                    el.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="4 3"/>' % (x0, x0 + pw, y, y, c))
        for r in range(n):
            el.append('<text x="%d" y="%d" fill="%s">r%d</text>' % (width - 40 - (n - r) * 24, y0 + 4, colours[r % len(colours)], r))
    el.append("</svg>")
    return "\n".join(el) + "\n"


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", help="directory of run.sh's logs")
    ap.add_argument("--cache", default="?", help="cold or warm")
    ap.add_argument("--checkpoint", default="", help="checkpoint directory, for the title")
    ap.add_argument("--command", default="", help="the command that produced the logs, recorded in results.json")
    ap.add_argument("--out", help="write results.json and memory.svg here (samples are read from OUT/samples)")
    args = ap.parse_args()

    res = collect(args.logs)
    if args.out:
        # The resident size when the clock started (the first sample): the
        # process's code, MLX's library and the runtime, not the load.
        for n, rows in res["by_ranks"].items():
            for kind, row in rows.items():
                for r, s in enumerate(samples(os.path.join(args.out, "samples"), kind, n, row["median_run"])):
                    if s and r < len(row["per_rank"]) and s[0][2]:
                        row["per_rank"][r]["rss_at_start"] = s[0][2]
    if not res["plain"]:
        sys.exit("aggregate: no plain read in " + args.logs)
    size = next(iter(res["plain"].values()))["bytes"]
    repeat = max(len(r["runs_wall_s"]) for rows in [res["plain"], *res["by_ranks"].values()] for r in rows.values())
    results = {"command": args.command, "checkpoint": args.checkpoint, "checkpoint_bytes": size, "cache": args.cache,
               "repeat": repeat, "plain": res["plain"], "by_ranks": {}}
    for n in sorted(res["by_ranks"]):
        rows = res["by_ranks"][n]
        print("Load benchmark: %s, %s of shard files, %d ranks on this machine over ring, %s page cache, median of %d runs"
              % (args.checkpoint, gb(size), n, args.cache, repeat))
        print(table(n, rows, res["plain"], size, args.cache))
        amp = amplification(rows)
        if amp and args.cache == "cold":
            print("\nread amplification (storage bytes pulled / shard bytes needed, per rank, /proc/self/io read_bytes):")
            for kind, v in amp.items():
                print("  %-20s %s   (all ranks: %.3f)" % (kind, " / ".join("%.3f" % x for x in v["per_rank"]), v["job"]))
        g = goals(n, rows, res["plain"], args.cache)
        if g:
            print("\ngoals at %d ranks:" % n)
            for x in g:
                print("  %-58s %-7s (%s)" % (x["goal"], "met" if x["met"] else "NOT met", x["figure"]))
        print()
        results["by_ranks"][str(n)] = {"loaders": rows, "read_amplification": amp, "goals": g}
    print("mlx-lm drops the vision tower on load and keeps less; ours loads it (replicated), so its shard is larger.")
    print("read / rank: ours counts the bytes the loader read; Python's is the process's read(2) bytes (rchar).")
    print("× columns: the other's wall time over this row's (above 1: this row is faster).")
    print("(RSS-start)/shard: peak RSS less the resident size when the load began (first memory sample), over the shard.")
    if args.out:
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        with open(os.path.join(args.out, "memory.svg"), "w") as f:
            f.write(svg(res, os.path.join(args.out, "samples"),
                        "Load of %s (%s, %s page cache): MLX active memory per rank" % (os.path.basename(args.checkpoint), gb(size), args.cache)))
        print("wrote %s and %s" % (os.path.join(args.out, "results.json"), os.path.join(args.out, "memory.svg")))


if __name__ == "__main__":
    main()
