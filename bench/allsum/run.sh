#!/bin/sh
# Side-by-side all-sum benchmark: Go (package jaccl) against Python MLX on
# the ring back-end, two ranks on this machine. Run from anywhere; extra
# arguments go to the benchmark (see --help).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
CGO_ENABLED=0 ${GO:-go} build -o "$bin/allsum" ./bench/allsum
"$bin/allsum" --python "${PYTHON:-$root/.venv/bin/python}" "$@"
