"""Side-by-side encode throughput: package tokenizer against tiktoken and
tokenizers. Driven by run.sh:

  bench.py prepare DIR TEXT_MB VOCAB  text.txt, kimi/ and llama3/ in DIR
  bench.py python DIR                 Python throughput as JSON
  bench.py report DIR                 the table, from DIR/python.json and DIR/go.txt
"""
import base64
import glob
import json
import os
import random
import re
import runpy
import sys
import sysconfig
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REF = runpy.run_path(os.path.join(HERE, "..", "..", "tokenizer", "testdata", "reference.py"))

# Words of the scripts a multilingual model meets, for the part of the text
# that is not English prose and code.
WORLD = ("안녕하세요 세계 한국어 서울 대한민국 오늘 날씨가 좋습니다 你好 世界 中文 北京 今天 天气 很好 "
         "日本語 東京 こんにちは ありがとう カタカナ Здравствуйте мир русский مرحبا العالم नमस्ते दुनिया "
         "สวัสดี ภาษาไทย Ελληνικά café naïve 👍 😀 🇰🇷 1234 3.14 2026").split()


def make_text(mb):
    """English prose and code from the standard library's sources, mixed
    with lines of other scripts, about mb megabytes of UTF-8."""
    rnd = random.Random(1)
    srcs = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    parts, size = [], 0
    for path in srcs:
        with open(path, encoding="utf-8", errors="replace") as f:
            src = f.read()
        parts.append(src)
        size += len(src.encode())
        line = " ".join(rnd.choice(WORLD) for _ in range(40)) + "\n"
        parts.append(line * 3)
        size += 3 * len(line.encode())
        if size >= mb * 1_000_000:
            break
    return "".join(parts)


def prepare(d, mb, vocab):
    text = make_text(float(mb))
    with open(os.path.join(d, "text.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    # Train on the text cut into lines (the trainer's unit), at most 1 MB.
    lines = text[:1_000_000].splitlines()
    tok, _, _ = REF["train"]("gpt2", lines, int(vocab))
    REF["kimi_dir"](tok, os.path.join(d, "kimi"), [])
    tok, specials, bos = REF["train"]("llama3", lines, int(vocab))
    os.makedirs(os.path.join(d, "llama3"), exist_ok=True)
    tok.save(os.path.join(d, "llama3", "tokenizer.json"))
    with open(os.path.join(d, "llama3", "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": bos, "eos_token": specials[-1]}, f)


def best(fn, n=5):
    """The shortest of n runs, by wall clock and by CPU time."""
    wall, cpu = [], []
    for _ in range(n):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def chunks(text, size):
    """Cuts text after the first line end at or past size bytes, as the Go
    benchmark does."""
    data, out, start = text.encode(), [], 0
    i = data.find(b"\n")
    while i >= 0:
        if i + 1 - start >= size:
            out.append(data[start:i + 1].decode())
            start = i + 1
        i = data.find(b"\n", i + 1)
    if start < len(data):
        out.append(data[start:].decode())
    return out


def python(d):
    import tiktoken
    from tokenizers import Tokenizer
    text = open(os.path.join(d, "text.txt"), encoding="utf-8").read()
    nbytes = len(text.encode())
    ranks = {}
    for line in open(os.path.join(d, "kimi", "tiktoken.model")):
        tok, rank = line.split()
        ranks[base64.b64decode(tok)] = int(rank)
    enc = tiktoken.Encoding("kimi-bench", pat_str=REF["KIMI"], mergeable_ranks=ranks, special_tokens={})
    hf = Tokenizer.from_file(os.path.join(d, "llama3", "tokenizer.json"))
    docs = chunks(text, 4096)
    runs = {
        "kimi/whole": lambda: enc.encode_ordinary(text),
        "llama3/whole": lambda: hf.encode(text, add_special_tokens=False),
        "kimi/4KB": lambda: [enc.encode_ordinary(c) for c in docs],
        "llama3/4KB": lambda: [hf.encode(c, add_special_tokens=False) for c in docs],
    }
    out = {"bytes": nbytes}
    for key, fn in runs.items():
        wall, cpu = best(fn)
        out[key] = {"wall": nbytes / wall / 1e6, "cpu": nbytes / cpu / 1e6}
    json.dump(out, sys.stdout)


def report(d):
    py = json.load(open(os.path.join(d, "python.json")))
    go = {}
    for line in open(os.path.join(d, "go.txt")):
        m = re.match(r"BenchmarkEncode/(\w+/\w+?)(?:-\d+)?\s+\d+\s+\d+ ns/op\s+([\d.]+) MB/s\s+([\d.]+) cpu-MB/s", line)
        if m:
            go[m.group(1)] = {"wall": float(m.group(2)), "cpu": float(m.group(3))}
    nan = {"wall": float("nan"), "cpu": float("nan")}
    print(f"encode throughput, one core, {py['bytes'] / 1e6:.1f} MB of text (MB = 1e6 bytes);")
    print("by CPU time (by wall clock in brackets: it counts the wait for a core on a busy machine)")
    print(f"{'layout/input':14} {'reference':24} {'Python MB/s':>18} {'Go MB/s':>18} {'Go/Python':>16}")
    for name, ref in (("kimi", "tiktoken (Kimi pattern)"), ("llama3", "tokenizers (Llama 3)")):
        for how in ("whole", "4KB"):
            key = name + "/" + how
            p, g = py[key], go.get(key, nan)
            print(f"{key:14} {ref:24} {p['cpu']:8.2f} [{p['wall']:7.2f}] {g['cpu']:8.2f} [{g['wall']:7.2f}] "
                  f"{g['cpu'] / p['cpu']:6.2f}x [{g['wall'] / p['wall']:5.2f}x]")


if __name__ == "__main__":
    {"prepare": lambda: prepare(*sys.argv[2:5]), "python": lambda: python(sys.argv[2]),
     "report": lambda: report(sys.argv[2])}[sys.argv[1]]()
