"""Per-call cost of package mlx next to Python mlx.core, same MLX, one run.

Runs the Go benchmarks (BenchmarkCreateFree, BenchmarkTinyOp,
BenchmarkTinyOpEval, the last and the first also in mlx.Do) and the
same work in Python, alternating rounds so that both see the same machine
load, and prints the median of each with the Go/Python ratio, and the best
round of each with theirs.

usage: python bench/mlxcalls.py [--rounds N] [--n N]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import mlx.core as mx


def py_tiny_op_eval(n):
    a = mx.array([1.0])
    b = mx.array([2.0])
    mx.eval(a, b)
    t = time.perf_counter()
    for _ in range(n):
        c = a + b
        mx.eval(c)
        del c
    return (time.perf_counter() - t) / n * 1e9


def py_tiny_op(n):
    a = mx.array([1.0])
    b = mx.array([2.0])
    mx.eval(a, b)
    t = time.perf_counter()
    for _ in range(n):
        c = a + b
        del c
    return (time.perf_counter() - t) / n * 1e9


def py_create_free(n):
    t = time.perf_counter()
    for _ in range(n):
        x = mx.array([1.0])
        del x
    return (time.perf_counter() - t) / n * 1e9


def go_bench(root, n):
    out = subprocess.run(
        ["go", "test", "-run", "^$", "-bench", "^(BenchmarkTinyOp|BenchmarkTinyOpEval|BenchmarkCreateFree)(Do)?$",
         "-benchtime", f"{n}x", "./mlx/"],
        cwd=root, env=dict(os.environ, CGO_ENABLED="0"), capture_output=True, text=True, check=True).stdout
    res = {}
    for name, ns in re.findall(r"^Benchmark(\w+)-\d+\s+\d+\s+([\d.]+) ns/op", out, re.M):
        res[name] = float(ns)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    py_tiny_op_eval(1000)  # warm up
    rows = {k: ([], []) for k in ("CreateFree", "CreateFreeDo", "TinyOp", "TinyOpEval", "TinyOpEvalDo")}
    for _ in range(args.rounds):
        g = go_bench(root, args.n)
        for k in rows:
            rows[k][0].append(g[k])
        tiny, cf, op = py_tiny_op_eval(args.n), py_create_free(args.n), py_tiny_op(args.n)
        rows["TinyOp"][1].append(op)
        rows["TinyOpEval"][1].append(tiny)
        rows["TinyOpEvalDo"][1].append(tiny)
        rows["CreateFree"][1].append(cf)
        rows["CreateFreeDo"][1].append(cf)
    print(f"MLX {mx.__version__}, {os.cpu_count()} CPUs, {args.rounds} rounds of {args.n} calls, ns per call: "
          "median of the rounds, and the best round (the cost with the least interference from other load)")
    print(f"{'work':<38}{'Go mlx':>12}{'Python mlx.core':>18}{'Go/Python':>12}{'best Go':>10}{'best Py':>10}{'ratio':>8}")
    labels = {
        "TinyOp": "tiny op (add) + free, unevaluated",
        "TinyOpEval": "tiny op + eval (+ free)",
        "TinyOpEvalDo": "tiny op + eval, in mlx.Do",
        "CreateFree": "create + free 1-elem array",
        "CreateFreeDo": "create + free, 100 per mlx.Do",
    }
    for k, (g, p) in rows.items():
        gm, pm = statistics.median(g), statistics.median(p)
        gb, pb = min(g), min(p)
        print(f"{labels[k]:<38}{gm:>12.0f}{pm:>18.0f}{gm / pm:>12.2f}{gb:>10.0f}{pb:>10.0f}{gb / pb:>8.2f}")


if __name__ == "__main__":
    sys.exit(main())
