#!/bin/sh
# Pipeline benchmark: prompt and generation tokens per second of our
# examples/generate split by tensor parallelism (TP=2) and by pipeline
# stages (PP=2, PP=3, layers placed by memory) and by both (TP=2 × PP=2 on
# four ranks, each stage summing over its two ranks by neighbour
# exchanges), beside mlx-lm's benchmark at TP=2 and with --pipeline at 2
# and 3 ranks (mlx-lm splits the layers evenly, and has no TP × PP), on
# one generated float32 Kimi K2.5-layout checkpoint, local ranks over ring.
# Run from anywhere after `make setup`.
#
# Environment:
#   PYTHON         the interpreter with mlx and mlx-lm (default .venv/bin/python)
#   BENCH_CKPT     checkpoint directory (default build/bench-pipe-ckpt; generated once)
#   BENCH_SCALE, BENCH_LAYERS, BENCH_EXPERTS
#                  its shape for mkcheckpoint (default 0.125, 6, 16)
#   BENCH_PROMPT, BENCH_GEN
#                  prompt and generated tokens (default 128 and 64)
#   BENCH_TRIALS   timed trials of each; the table shows the median (default 3)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
py=${PYTHON:-$root/.venv/bin/python}
ckpt=${BENCH_CKPT:-$root/build/bench-pipe-ckpt}
prompt=${BENCH_PROMPT:-128}
gen=${BENCH_GEN:-64}
trials=${BENCH_TRIALS:-3}
bin=$root/build/bench-pipeline-bin
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for so in "$root/build/lib/libmlxc.so" "$root/build/lib/libmlxc.dylib"; do
	if [ -z "${MLX_C_LIBRARY:-}" ] && [ -f "$so" ]; then
		MLX_C_LIBRARY=$so
		export MLX_C_LIBRARY
	fi
done

mkdir -p "$bin"
CGO_ENABLED=0 ${GO:-go} build -o "$bin/" ./examples/generate ./examples/launch ./examples/mkcheckpoint
"$bin/mkcheckpoint" --out "$ckpt" --scale "${BENCH_SCALE:-0.125}" --layers "${BENCH_LAYERS:-6}" \
	--experts "${BENCH_EXPERTS:-16}" --files 2 --vision=false --dtype F32 --unquantized 2>/dev/null | tail -n 1

ids=$("$py" -c "import random; random.seed(0); print(','.join(str(random.randrange(256, 1000)) for _ in range($prompt)))")

# ours NAME RANKS FLAGS...: a warm-up and the trials in one job; rank 0
# prints one JSON line per trial.
ours() {
	name=$1 n=$2
	shift 2
	"$bin/launch" -n "$n" -- "$bin/generate" --model "$ckpt" --prompt-ids "$ids" --max-tokens "$gen" --json \
		--trials "$trials" "$@" | grep '^\[0\] {' | sed 's/^\[0\] //' >"$out/ours-$name.jsonl"
}

# mlxlm NAME RANKS FLAGS...: mlx_lm.benchmark warms up and runs the trials.
mlxlm() {
	name=$1 n=$2
	shift 2
	"$bin/launch" -n "$n" -- "$py" -m mlx_lm.benchmark --model "$ckpt" -p "$prompt" -g "$gen" -n "$trials" "$@" |
		sed 's/^\[0\] //' | grep '^Trial' >"$out/mlxlm-$name.txt"
}

ours tp2 2
ours pp2 2 --pp 2
ours pp3 3 --pp 3
ours tp2pp2 4 --tp 2 --pp 2
mlxlm tp2 2
mlxlm pp2 2 --pipeline
mlxlm pp3 3 --pipeline

"$py" - "$out" "$prompt" "$gen" <<'PY'
import json, os, re, statistics, sys
out, prompt, gen = sys.argv[1:4]
print(f"prompt {prompt} tokens, {gen} generated, the same checkpoint, local ranks over ring; medians of the trials")
print(f"{'split':6} {'':8} {'prompt tok/s':>13} {'gen tok/s':>10} {'peak GB':>8}")
for split in ("tp2", "pp2", "pp3", "tp2pp2"):
    rows = []
    ours = [json.loads(l) for l in open(f"{out}/ours-{split}.jsonl")]
    rows.append(("ours", [o["prompt_tps"] for o in ours], [o["generation_tps"] for o in ours], [o["peak_memory_gb"] for o in ours]))
    ref = []
    for l in open(f"{out}/mlxlm-{split}.txt") if os.path.exists(f"{out}/mlxlm-{split}.txt") else []:
        ref.append({k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", l)})
    if ref:
        rows.append(("mlx-lm", [r["prompt_tps"] for r in ref], [r["generation_tps"] for r in ref], [r["peak_memory"] for r in ref]))
    for name, p, g, m in rows:
        print(f"{split:6} {name:8} {statistics.median(p):13.1f} {statistics.median(g):10.1f} {statistics.median(m):8.3f}")
PY
