#!/bin/sh
# Encode throughput of package tokenizer beside Python's tiktoken and
# tokenizers (both Rust underneath), one core each, on the same text and the
# same vocabularies: a Kimi-layout tiktoken.model and a Llama 3-style
# tokenizer.json, trained here on the text. Run from anywhere.
#
#   bench/tokenize/run.sh [TEXT_MB] [VOCAB]     (defaults: 2 MB, 32000)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
py=${PYTHON:-$root/.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" bench/tokenize/bench.py prepare "$work" "${1:-2}" "${2:-32000}"
RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$py" bench/tokenize/bench.py python "$work" >"$work/python.json"
TOKENIZER_BENCH_DIR="$work" CGO_ENABLED=0 ${GO:-go} test -run '^$' -bench '^BenchmarkEncode$' -benchtime 5x -cpu 1 ./tokenizer/ >"$work/go.txt"
"$py" bench/tokenize/bench.py report "$work"
