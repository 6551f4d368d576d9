#!/bin/sh
# Side-by-side load benchmark. N local ranks over ring load one generated
# Kimi K2.5-layout checkpoint with our direct strategy (from the checkpoint,
# and from each rank's resharded copy, copied and mapped) and
# eval-shard-eval (examples/kimiload; reading with our reader and with
# MLX's own loader), with mlx-lm's sharded_load and with
# the naive lazy shard-then-eval load; next to two limits for the same
# bytes: the plain read of the files (cat) and the fill limit (filllimit:
# each rank's bytes copied from the page cache into fresh memory by as many
# threads as the loader's workers, nothing else). Self-contained: it builds
# libmlxc (when missing) and the Go programs from this checkout.
#
# Environment:
#   PYTHON         the interpreter with mlx and mlx-lm (default .venv/bin/python)
#   BENCH_OUT      results directory (default build/bench-load): results.json,
#                  memory.svg, table.txt, and the raw logs/ and samples/
#   BENCH_RANKS    rank counts to run, space-separated (default "2"; e.g. "2 4")
#   BENCH_CKPT     checkpoint directory (default build/bench-ckpt; generated once)
#   BENCH_SCALE, BENCH_LAYERS, BENCH_FILES
#                  its shape for mkcheckpoint (default 0.25, 5, 4: 2.56 GB)
#   BENCH_WORKERS  the loader's workers and the fill limit's threads per rank
#                  (default 4)
#   BENCH_FLAGS    extra kimiload flags for our runs (e.g. "--read pread")
#   BENCH_REPEAT   runs of each loader; the table shows the median (default 3)
#   BENCH_CACHE    cold (drop the page cache before every run; needs root)
#                  or warm (read every file once first); default cold when
#                  the page cache can be dropped, else warm
#   BENCH_SKIP     loaders to leave out, space-separated (e.g. "naive")
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
py=${PYTHON:-$root/.venv/bin/python}
case $py in
*/*) ;;
*) py=$(command -v "$py") || { echo "bench/load: PYTHON=${PYTHON} is not on PATH" >&2; exit 1; } ;;
esac
ckpt=${BENCH_CKPT:-$root/build/bench-ckpt}
out=${BENCH_OUT:-$root/build/bench-load}
ranks_list=${BENCH_RANKS:-2}
workers=${BENCH_WORKERS:-4}
repeat=${BENCH_REPEAT:-3}
skip=" ${BENCH_SKIP:-} "
bin=$root/build/bench-load-bin
mkdir -p "$out" "$ckpt"
out=$(cd "$out" && pwd)
ckpt=$(cd "$ckpt" && pwd)
rm -rf "$out/logs" "$out/samples"
mkdir -p "$out/logs" "$out/samples"

cache=${BENCH_CACHE:-}
if [ -z "$cache" ]; then
	if [ -w /proc/sys/vm/drop_caches ]; then cache=cold; else cache=warm; fi
fi
if [ "$cache" = cold ] && [ ! -w /proc/sys/vm/drop_caches ]; then
	echo "bench/load: BENCH_CACHE=cold needs a writable /proc/sys/vm/drop_caches (root on Linux)" >&2
	exit 1
fi

cmd="PYTHON=$py BENCH_OUT=$out BENCH_RANKS='$ranks_list' BENCH_CKPT=$ckpt BENCH_SCALE=${BENCH_SCALE:-0.25} BENCH_LAYERS=${BENCH_LAYERS:-5} BENCH_FILES=${BENCH_FILES:-4} BENCH_WORKERS=$workers BENCH_REPEAT=$repeat BENCH_CACHE=$cache BENCH_FLAGS='${BENCH_FLAGS:-}' BENCH_SKIP='${BENCH_SKIP:-}' bench/load/run.sh"
echo "== bench/load: $cmd"
echo "== $(uname -srm), $(getconf _NPROCESSORS_ONLN) CPUs, $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "$cmd" >"$out/command.txt"

if [ -z "${MLX_C_LIBRARY:-}" ]; then
	for so in "$root/build/lib/libmlxc.so" "$root/build/lib/libmlxc.dylib"; do
		if [ -f "$so" ]; then MLX_C_LIBRARY=$so; fi
	done
	if [ -z "${MLX_C_LIBRARY:-}" ]; then
		echo "== building libmlxc (go run ./mlx/setup)"
		venv=$(cd "$(dirname "$py")/.." && pwd)
		if [ -f "$venv/pyvenv.cfg" ]; then
			CGO_ENABLED=0 ${GO:-go} run ./mlx/setup -dir "$root/build" -venv "$venv"
		else
			CGO_ENABLED=0 ${GO:-go} run ./mlx/setup -dir "$root/build" -python "$py"
		fi
		for so in "$root/build/lib/libmlxc.so" "$root/build/lib/libmlxc.dylib"; do
			if [ -f "$so" ]; then MLX_C_LIBRARY=$so; fi
		done
	fi
	export MLX_C_LIBRARY
fi

mkdir -p "$bin"
CGO_ENABLED=0 ${GO:-go} build -o "$bin/" ./examples/kimiload ./examples/launch ./examples/mkcheckpoint \
	./examples/reshard ./bench/load/filllimit
# mkcheckpoint and reshard find their stamps and return at once when the
# checkpoint is there.
"$bin/mkcheckpoint" --out "$ckpt" --scale "${BENCH_SCALE:-0.25}" --layers "${BENCH_LAYERS:-5}" \
	--files "${BENCH_FILES:-4}" 2>/dev/null | tail -n 1
# The per-rank checkpoints only when a loader that reads them runs.
case $skip in
*" direct-resharded "*) case $skip in *" map-resharded "*) resharded=no ;; *) resharded=yes ;; esac ;;
*) resharded=yes ;;
esac
if [ "$resharded" = yes ]; then
	for n in $ranks_list; do
		"$bin/reshard" --model "$ckpt" --world "$n" --out "$ckpt-tp$n/rank{rank}" --quiet >/dev/null
	done
fi

# Every run starts from the same page-cache state: empty (cold) or holding
# every file it reads (warm).
prepare() { # files...
	if [ "$cache" = cold ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	else
		cat "$@" >/dev/null
	fi
}

echo "== plain read of the shard files (cat, one after another and all at once), $cache page cache"
# One cat reads a file at a time; a loader reads several at once, which a
# fast disk rewards, so the faster of the two is the limit the goals use.
for how in serial parallel; do
	i=1
	while [ "$i" -le "$repeat" ]; do
		prepare "$ckpt"/*.safetensors
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
' "$how" "$ckpt"/*.safetensors >"$out/logs/plain-$how.$i.log"
		i=$((i + 1))
	done
done

run() { # name files-glob command... ({i} in the command is the run's number)
	name=$1 files=$2
	shift 2
	case $skip in *" ${name%-n*} "*) return 0 ;; esac
	echo "== $name"
	i=1
	while [ "$i" -le "$repeat" ]; do
		# shellcheck disable=SC2086 # the glob is meant to expand
		prepare $files
		log=$out/logs/$name.$i.log
		cmdline=$(printf '%s\n' "$*" | sed "s/{i}/$i/g")
		# shellcheck disable=SC2086 # word splitting is meant
		if ! sh -c "$cmdline" >"$log" 2>&1; then
			echo "bench/load: $name failed; its output:" >&2
			cat "$log" >&2
			exit 1
		fi
		i=$((i + 1))
	done
}

for n in $ranks_list; do
	all="$ckpt/*.safetensors"
	mine="$ckpt-tp$n/rank*/*.safetensors"
	s=$out/samples
	# The fill limit's ranks start together, as the loaders' ranks do after
	# their barrier; each times itself and the slowest is the job's time.
	run "fill-limit-n$n" "$all" "k=0; while [ \$k -lt $n ]; do '$bin/filllimit' --model '$ckpt' --ranks $n --rank \$k --threads $workers & k=\$((k+1)); done; wait"
	run "direct-n$n" "$all" "'$bin/launch' -n $n -- '$bin/kimiload' --model '$ckpt' --strategy direct --workers $workers --json --samples '$s/direct-n$n.{i}.r{rank}.jsonl' ${BENCH_FLAGS:-}"
	run "direct-resharded-n$n" "$mine" "'$bin/launch' -n $n -- '$bin/kimiload' --model '$ckpt-tp$n/rank{rank}' --strategy direct --workers $workers --json --samples '$s/direct-resharded-n$n.{i}.r{rank}.jsonl' ${BENCH_FLAGS:-}"
	run "map-resharded-n$n" "$mine" "'$bin/launch' -n $n -- '$bin/kimiload' --model '$ckpt-tp$n/rank{rank}' --strategy direct --read map --workers $workers --json --samples '$s/map-resharded-n$n.{i}.r{rank}.jsonl'"
	run "eval-shard-eval-n$n" "$all" "'$bin/launch' -n $n -- '$bin/kimiload' --model '$ckpt' --strategy eval-shard-eval --json --samples '$s/eval-shard-eval-n$n.{i}.r{rank}.jsonl'"
	run "eval-shard-eval-mlxread-n$n" "$all" "'$bin/launch' -n $n -- '$bin/kimiload' --model '$ckpt' --strategy eval-shard-eval --read mlx --json --samples '$s/eval-shard-eval-mlxread-n$n.{i}.r{rank}.jsonl'"
	run "mlx-lm-n$n" "$all" "'$bin/launch' -n $n -- '$py' '$root/bench/load/mlxlm_rank.py' --model '$ckpt' --mode sharded_load --samples '$s/mlx-lm-n$n.{i}.r{rank}.jsonl'"
	run "naive-n$n" "$all" "'$bin/launch' -n $n -- '$py' '$root/bench/load/mlxlm_rank.py' --model '$ckpt' --mode naive --samples '$s/naive-n$n.{i}.r{rank}.jsonl'"
done

echo
"$py" "$root/bench/load/aggregate.py" --cache "$cache" --checkpoint "$ckpt" --command "$cmd" --out "$out" "$out/logs" | tee "$out/table.txt"
