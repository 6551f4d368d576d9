#!/bin/sh
# Side-by-side load benchmark: two local ranks over ring load one generated
# Kimi K2.5-layout checkpoint with our direct and eval-shard-eval
# strategies (examples/kimiload), with mlx-lm's sharded_load, and with the
# naive lazy shard-then-eval load, next to the plain read bandwidth of the
# same files (cat). Run from anywhere after `make setup`.
#
# Environment:
#   PYTHON         the interpreter with mlx and mlx-lm (default .venv/bin/python)
#   BENCH_CKPT     checkpoint directory (default build/bench-ckpt; generated once)
#   BENCH_SCALE, BENCH_LAYERS, BENCH_FILES
#                  its shape for mkcheckpoint (default 0.25, 5, 4: 2.56 GB)
#   BENCH_FLAGS    extra kimiload flags for our runs (e.g. "--workers 8 --read pread")
#   BENCH_REPEAT   runs of each loader; the table shows the median (default 3)
#   BENCH_CACHE    cold (drop the page cache before every run; needs root)
#                  or warm (read every file once first); default cold when
#                  the page cache can be dropped, else warm
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
py=${PYTHON:-$root/.venv/bin/python}
ckpt=${BENCH_CKPT:-$root/build/bench-ckpt}
repeat=${BENCH_REPEAT:-3}
bin=$root/build/bench-load-bin
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for so in "$root/build/lib/libmlxc.so" "$root/build/lib/libmlxc.dylib"; do
	if [ -z "${MLX_C_LIBRARY:-}" ] && [ -f "$so" ]; then
		MLX_C_LIBRARY=$so
		export MLX_C_LIBRARY
	fi
done

mkdir -p "$bin"
CGO_ENABLED=0 ${GO:-go} build -o "$bin/" ./examples/kimiload ./examples/launch ./examples/mkcheckpoint
# mkcheckpoint finds its stamp and returns at once when the checkpoint is there.
"$bin/mkcheckpoint" --out "$ckpt" --scale "${BENCH_SCALE:-0.25}" --layers "${BENCH_LAYERS:-5}" \
	--files "${BENCH_FILES:-4}" 2>/dev/null | tail -n 1

cache=${BENCH_CACHE:-}
if [ -z "$cache" ]; then
	if [ -w /proc/sys/vm/drop_caches ]; then cache=cold; else cache=warm; fi
fi
if [ "$cache" = cold ] && [ ! -w /proc/sys/vm/drop_caches ]; then
	echo "bench/load: BENCH_CACHE=cold needs a writable /proc/sys/vm/drop_caches (root on Linux)" >&2
	exit 1
fi

# Every run starts from the same page-cache state: empty (cold) or holding
# every shard file (warm).
prepare() {
	if [ "$cache" = cold ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	else
		cat "$ckpt"/*.safetensors >/dev/null
	fi
}

echo "== plain read of the shard files (cat, one after another and all at once), $cache page cache =="
# One cat reads a file at a time; a loader reads several at once, which a
# fast disk rewards, so the parallel read is the limit the goals use.
for how in serial parallel; do
	i=1
	while [ "$i" -le "$repeat" ]; do
		prepare
		"$py" -c '
import json, subprocess, sys, time, os
how, files = sys.argv[1], sys.argv[2:]
t = time.perf_counter()
if how == "serial":
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)
else:
    ps = [subprocess.Popen(["cat", f], stdout=subprocess.DEVNULL) for f in files]
    if any(p.wait() for p in ps):
        sys.exit("cat failed")
w = time.perf_counter() - t
print("PLAIN_JSON " + json.dumps({"wall_s": w, "bytes": sum(os.path.getsize(f) for f in files)}))
' "$how" "$ckpt"/*.safetensors >"$out/plain-$how.$i.log"
		i=$((i + 1))
	done
done

run() { # name command...
	name=$1
	shift
	echo "== $name =="
	i=1
	while [ "$i" -le "$repeat" ]; do
		prepare
		if ! "$@" >"$out/$name.$i.log" 2>&1; then
			echo "bench/load: $name failed; its output:" >&2
			cat "$out/$name.$i.log" >&2
			exit 1
		fi
		i=$((i + 1))
	done
}

run direct "$bin/launch" -n 2 -- "$bin/kimiload" --model "$ckpt" --strategy direct --json ${BENCH_FLAGS:-}
run eval-shard-eval "$bin/launch" -n 2 -- "$bin/kimiload" --model "$ckpt" --strategy eval-shard-eval --json ${BENCH_FLAGS:-}
run mlx-lm "$bin/launch" -n 2 -- "$py" "$root/bench/load/mlxlm_rank.py" --model "$ckpt" --mode sharded_load
run naive "$bin/launch" -n 2 -- "$py" "$root/bench/load/mlxlm_rank.py" --model "$ckpt" --mode naive

echo
"$py" "$root/bench/load/aggregate.py" --cache "$cache" --checkpoint "$ckpt" "$out"
