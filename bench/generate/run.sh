#!/bin/sh
# Side-by-side generation benchmark: prompt and generation tokens per second
# of our examples/generate against mlx-lm's own benchmark (mlx_lm.benchmark,
# which loads with sharded_load on more than one rank), on one generated
# float32 Kimi K2.5-layout checkpoint, at TP=1 and TP=2 over ring on this
# machine. Run from anywhere after `make setup`.
#
# Environment:
#   PYTHON         the interpreter with mlx and mlx-lm (default .venv/bin/python)
#   BENCH_CKPT     checkpoint directory (default build/bench-gen-ckpt; generated once)
#   BENCH_SCALE, BENCH_LAYERS, BENCH_EXPERTS
#                  its shape for mkcheckpoint (default 0.125, 4, 16)
#   BENCH_DTYPE    F32 (default) or BF16
#   BENCH_PROMPT, BENCH_GEN
#                  prompt and generated tokens (default 128 and 64)
#   BENCH_TRIALS   timed trials of each; the table shows the median (default 3)
#   BENCH_TP       the rank counts to run (default "1 2")
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
py=${PYTHON:-$root/.venv/bin/python}
ckpt=${BENCH_CKPT:-$root/build/bench-gen-ckpt}
prompt=${BENCH_PROMPT:-128}
gen=${BENCH_GEN:-64}
trials=${BENCH_TRIALS:-3}
bin=$root/build/bench-generate-bin
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
"$bin/mkcheckpoint" --out "$ckpt" --scale "${BENCH_SCALE:-0.125}" --layers "${BENCH_LAYERS:-4}" \
	--experts "${BENCH_EXPERTS:-16}" --files 2 --vision=false --dtype "${BENCH_DTYPE:-F32}" \
	--unquantized 2>/dev/null | tail -n 1

# One random prompt, the same for every run of ours.
ids=$("$py" -c "import random; random.seed(0); print(','.join(str(random.randrange(256, 1000)) for _ in range($prompt)))")

launch() {
	n=$1
	shift
	if [ "$n" = 1 ]; then "$@"; else "$bin/launch" -n "$n" -- "$@"; fi
}

for tp in ${BENCH_TP:-1 2}; do
	# Ours: a warm-up, then the trials, in one process as mlx-lm's; rank 0
	# prints one JSON line per trial.
	launch "$tp" "$bin/generate" --model "$ckpt" --prompt-ids "$ids" --max-tokens "$gen" --json --trials "$trials" |
		grep '^\(\[0\] \)\?{' | sed 's/^\[0\] //' >"$out/ours-$tp.jsonl"
	# mlx-lm: its benchmark warms up and runs the trials itself.
	launch "$tp" "$py" -m mlx_lm.benchmark --model "$ckpt" -p "$prompt" -g "$gen" -n "$trials" |
		sed 's/^\[0\] //' | grep '^Trial' >"$out/mlxlm-$tp.txt"
done

"$py" - "$out" "$prompt" "$gen" ${BENCH_TP:-1 2} <<'PY'
import json, re, statistics, sys
out, prompt, gen, tps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
print(f"prompt {prompt} tokens, {gen} generated, the same checkpoint; medians of the trials")
print(f"{'TP':>3} {'':8} {'prompt tok/s':>13} {'gen tok/s':>10} {'peak GB':>8}")
for tp in tps:
    ours = [json.loads(l) for l in open(f"{out}/ours-{tp}.jsonl")]
    ref = []
    for l in open(f"{out}/mlxlm-{tp}.txt"):
        kv = dict(re.findall(r"(\w+)=([0-9.]+)", l))
        ref.append({k: float(v) for k, v in kv.items()})
    rows = [("ours", [o["prompt_tps"] for o in ours], [o["generation_tps"] for o in ours], [o["peak_memory_gb"] for o in ours]),
            ("mlx-lm", [r["prompt_tps"] for r in ref], [r["generation_tps"] for r in ref], [r["peak_memory"] for r in ref])]
    for name, p, g, m in rows:
        print(f"{tp:>3} {name:8} {statistics.median(p):13.1f} {statistics.median(g):10.1f} {statistics.median(m):8.3f}")
PY
