"""Serving benchmark: mlxdist's serve beside mlx_lm.server on the same
checkpoint, the same prompts and greedy decoding, over 1 and 2 local ranks
(ring), with 1 and 4 concurrent clients.

Each client streams its requests one after another (stream_options
include_usage) and times them: time to first token (request sent to the
first content chunk), per-request tokens per second (tokens after the first
over the time since the first), and the aggregate tokens per second of all
clients over the wall time. Prompts differ per request, so no prompt cache
helps either server. Prints a table, and one JSON line per row with --json.

usage: bench.py --model DIR --launch BIN --serve BIN [--ranks 1,2] [--clients 1,4]
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(impl, ranks, args):
    port = free_port()
    if impl == "mlxdist":
        cmd = [args.serve, "--model", args.model, "--listen", f"127.0.0.1:{port}", "--name", "bench",
               "--stop-every", str(args.stop_every)]
    else:
        cmd = [args.python, "-m", "mlx_lm", "server", "--model", args.model, "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "WARNING"]
    if ranks > 1:
        cmd = [args.launch, "-n", str(ranks), "--"] + cmd
    log = open(os.path.join(args.logdir, f"{impl}-{ranks}.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{impl} on {ranks} ranks exited with {proc.returncode}: see {log.name}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v1/models")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.2)
    stop(proc)
    sys.exit(f"{impl} on {ranks} ranks did not answer within 300 s: see {log.name}")


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def request(port, model, prompt, max_tokens):
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    sent = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {r.read()[:300]!r}")
    first = last = None
    chunks = 0
    tokens = None
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        d = json.loads(line[6:])
        if d.get("usage"):
            tokens = d["usage"]["completion_tokens"]
        for ch in d.get("choices") or []:
            if ch.get("text"):
                now = time.perf_counter()
                first = first or now
                last = now
                chunks += 1
    c.close()
    n = tokens if tokens is not None else chunks
    rate = (n - 1) / (last - first) if first and last > first and n > 1 else float("nan")
    return {"ttft": (first or time.perf_counter()) - sent, "tps": rate, "tokens": n}


def prompts(count, words):
    # Distinct prompts of about the same length: nothing for a cache to reuse.
    return [" ".join(f"w{(i * 7919 + j * 104729) % 9973}" for j in range(words)) for i in range(count)]


def workload(port, model, clients, per_client, max_tokens, words):
    ps = prompts(clients * per_client, words)

    def client(k):
        return [request(port, model, ps[k * per_client + i], max_tokens) for i in range(per_client)]

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as ex:
        results = [r for rs in ex.map(client, range(clients)) for r in rs]
    wall = time.perf_counter() - start
    return {
        "ttft_ms": statistics.median(r["ttft"] for r in results) * 1e3,
        "tps": statistics.median(r["tps"] for r in results),
        "aggregate_tps": sum(r["tokens"] for r in results) / wall,
        "tokens": statistics.mean(r["tokens"] for r in results),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--launch", required=True, help="the launch binary")
    p.add_argument("--serve", required=True, help="the serve binary")
    p.add_argument("--python", default=sys.executable, help="the Python with mlx-lm")
    p.add_argument("--ranks", default="1,2")
    p.add_argument("--clients", default="1,4")
    p.add_argument("--requests", type=int, default=4, help="requests per client")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--words", type=int, default=40, help="words per prompt")
    p.add_argument("--impls", default="mlxdist,mlx-lm")
    p.add_argument("--stop-every", type=int, default=1, help="serve's --stop-every")
    p.add_argument("--logdir", default=".")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    rows = []
    for ranks in [int(x) for x in args.ranks.split(",")]:
        for impl in args.impls.split(","):
            proc, port = start(impl, ranks, args)
            # mlx_lm.server loads whatever model a request names: name its own.
            model = "bench" if impl == "mlxdist" else args.model
            try:
                workload(port, model, 1, 1, args.max_tokens, args.words)  # warm-up
                for clients in [int(x) for x in args.clients.split(",")]:
                    r = workload(port, model, clients, args.requests, args.max_tokens, args.words)
                    rows.append({"impl": impl, "ranks": ranks, "clients": clients, **r})
            finally:
                stop(proc)

    print(f"{'server':<10} {'ranks':>5} {'clients':>7} {'TTFT ms':>8} {'tok/s/req':>10} {'tok/s all':>10} {'tokens':>7}")
    for r in rows:
        print(f"{r['impl']:<10} {r['ranks']:>5} {r['clients']:>7} {r['ttft_ms']:>8.1f} {r['tps']:>10.1f} "
              f"{r['aggregate_tps']:>10.1f} {r['tokens']:>7.1f}")
    if args.json:
        for r in rows:
            print(json.dumps(r))


main()
