#!/bin/sh
# Serving benchmark: mlxdist's serve beside mlx_lm.server on one float32
# Llama-layout checkpoint (written once), greedy, over 1 and 2 local ranks
# (ring), 1 and 4 concurrent clients. Run from anywhere; extra arguments go
# to bench.py (see --help).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
py=${PYTHON:-$root/.venv/bin/python}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
CGO_ENABLED=0 ${GO:-go} build -o "$bin/" ./examples/launch ./examples/serve ./examples/mkcheckpoint
logs=build/bench-serve-logs
mkdir -p "$logs"
ckpt=${CKPT:-build/bench-serve-llama}
"$bin/mkcheckpoint" --out "$ckpt" --model llama --scale 0.125 --layers 4 --dtype F32 --unquantized --files 1 >/dev/null
"$py" bench/serve/bench.py --model "$ckpt" --launch "$bin/launch" --serve "$bin/serve" --python "$py" --logdir "$logs" "$@"
