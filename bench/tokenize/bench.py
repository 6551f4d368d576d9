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
    t = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        t.append(time.perf_counter() - s)
    return min(t)


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
    out = {
        "bytes": nbytes,
        "kimi": nbytes / best(lambda: enc.encode_ordinary(text)) / 1e6,
        "llama3": nbytes / best(lambda: hf.encode(text, add_special_tokens=False)) / 1e6,
    }
    json.dump(out, sys.stdout)


def report(d):
    py = json.load(open(os.path.join(d, "python.json")))
    go = {}
    for line in open(os.path.join(d, "go.txt")):
        m = re.match(r"BenchmarkEncode/(\w+)\S*\s+\d+\s+\d+ ns/op\s+([\d.]+) MB/s", line)
        if m:
            go[m.group(1)] = float(m.group(2))
    print(f"encode throughput, one core, {py['bytes'] / 1e6:.1f} MB of text (MB = 1e6 bytes)")
    print(f"{'layout':8} {'reference':24} {'Python MB/s':>12} {'Go MB/s':>10} {'Go/Python':>10}")
    for name, ref in (("kimi", "tiktoken (Kimi pattern)"), ("llama3", "tokenizers (Llama 3)")):
        g = go.get(name, float("nan"))
        print(f"{name:8} {ref:24} {py[name]:12.2f} {g:10.2f} {g / py[name]:9.2f}x")


if __name__ == "__main__":
    {"prepare": lambda: prepare(*sys.argv[2:5]), "python": lambda: python(sys.argv[2]),
     "report": lambda: report(sys.argv[2])}[sys.argv[1]]()
