#!/bin/sh
# Streaming benchmark: two local ranks over ring, only rank 0 has the
# checkpoint. Times our streamed load (kimiload --stream) against (a) both
# ranks loading from local files and (b) the mlx-lm way: copy the folder to
# rank 1 first (mlx_lm.share when the pinned mlx-lm has it, else cp -r),
# then mlx-lm's sharded_load; next to the bounds a streamed load is held
# to: reading the source's bytes (cat) and sending the receiver's bytes
# over the same link (link.py, MLX send/recv). Run from anywhere after
# `make setup`.
#
# Environment:
#   PYTHON         the interpreter with mlx and mlx-lm (default .venv/bin/python)
#   BENCH_CKPT     checkpoint directory (default build/bench-stream-ckpt; generated once)
#   BENCH_SCALE, BENCH_LAYERS, BENCH_FILES
#                  its shape for mkcheckpoint (default 0.25, 8, 4: about 4 GB)
#   BENCH_FLAGS    extra kimiload flags for the streamed run (e.g. "--stream-window-mb 512")
#   BENCH_REPEAT   runs of each way; the table shows the median (default 3)
#   BENCH_CACHE    cold (drop the page cache before every run; needs root)
#                  or warm (read every file once first); default cold when
#                  the page cache can be dropped, else warm
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
py=${PYTHON:-$root/.venv/bin/python}
ckpt=${BENCH_CKPT:-$root/build/bench-stream-ckpt}
repeat=${BENCH_REPEAT:-3}
bin=$root/build/bench-stream-bin
mkdir -p "$root/build"
# The copies land next to the checkpoint's build folder, on one file
# system, so that mlx_lm.share can rename its temporary directory.
out=$(mktemp -d "$root/build/bench-stream.XXXXXX")
trap 'rm -rf "$out"' EXIT

for so in "$root/build/lib/libmlxc.so" "$root/build/lib/libmlxc.dylib"; do
	if [ -z "${MLX_C_LIBRARY:-}" ] && [ -f "$so" ]; then
		MLX_C_LIBRARY=$so
		export MLX_C_LIBRARY
	fi
done

mkdir -p "$bin"
CGO_ENABLED=0 ${GO:-go} build -o "$bin/" ./examples/kimiload ./examples/launch ./examples/mkcheckpoint
"$bin/mkcheckpoint" --out "$ckpt" --scale "${BENCH_SCALE:-0.25}" --layers "${BENCH_LAYERS:-8}" \
	--files "${BENCH_FILES:-4}" 2>/dev/null | tail -n 1

cache=${BENCH_CACHE:-}
if [ -z "$cache" ]; then
	if [ -w /proc/sys/vm/drop_caches ]; then cache=cold; else cache=warm; fi
fi
if [ "$cache" = cold ] && [ ! -w /proc/sys/vm/drop_caches ]; then
	echo "bench/stream: BENCH_CACHE=cold needs a writable /proc/sys/vm/drop_caches (root on Linux)" >&2
	exit 1
fi
prepare() {
	if [ "$cache" = cold ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	else
		cat "$ckpt"/*.safetensors >/dev/null
	fi
}

run() { # name command...
	name=$1
	shift
	echo "== $name =="
	i=1
	while [ "$i" -le "$repeat" ]; do
		prepare
		if ! "$@" >"$out/$name.$i.log" 2>&1; then
			echo "bench/stream: $name failed; its output:" >&2
			cat "$out/$name.$i.log" >&2
			exit 1
		fi
		i=$((i + 1))
	done
}

# Only rank 0 finds a checkpoint at m{rank}.
ln -s "$ckpt" "$out/m0"
run streamed "$bin/launch" -n 2 -- "$bin/kimiload" --model "$out/m{rank}" --stream --json ${BENCH_FLAGS:-}
run local "$bin/launch" -n 2 -- "$bin/kimiload" --model "$ckpt" --json

# The bounds: what the streamed run's source read and its receiver got.
log=$out/streamed.1.log
recv=$("$py" -c '
import json, sys
for line in open(sys.argv[1]):
    i = line.find("KIMILOAD_JSON ")
    if i >= 0:
        print(json.loads(line[i + 14:])["per_rank"][1]["streamed_in"])
' "$log")
run plain "$py" -c '
import json, os, subprocess, sys, time
files = sys.argv[1:]
t = time.perf_counter()
ps = [subprocess.Popen(["cat", f], stdout=subprocess.DEVNULL) for f in files]
if any(p.wait() for p in ps):
    sys.exit("cat failed")
print("PLAIN_JSON " + json.dumps({"wall_s": time.perf_counter() - t, "bytes": sum(os.path.getsize(f) for f in files)}))
' "$ckpt"/*.safetensors
run link "$bin/launch" -n 2 -- "$py" "$root/bench/stream/link.py" --bytes "$recv"

# The mlx-lm way: copy the folder to rank 1, then sharded_load.
if "$py" -c 'import mlx_lm.share' 2>/dev/null; then
	tool=mlx_lm.share
else
	tool="cp -r"
fi
copy() {
	rm -rf "$out/copy1"
	t0=$("$py" -c 'import time; print(time.time())')
	if [ "$tool" = mlx_lm.share ]; then
		"$bin/launch" -n 2 -- "$py" -m mlx_lm share --path "$ckpt" --dst "$out/copy1" --tmpdir "$out"
	else
		cp -r "$ckpt" "$out/copy1"
	fi
	"$py" -c 'import json, sys, time; print("COPY_JSON " + json.dumps({"wall_s": time.time() - float(sys.argv[1])}))' "$t0"
}
run copy copy
ln -sfn "$out/copy1" "$out/m1"
run copied-load "$bin/launch" -n 2 -- sh -c 'exec "$0" "$1" --model "$2/m$MLX_RANK" --mode sharded_load' \
	"$py" "$root/bench/load/mlxlm_rank.py" "$out"

echo
"$py" "$root/bench/stream/aggregate.py" --cache "$cache" --checkpoint "$ckpt" --copy-tool "$tool" "$out"
