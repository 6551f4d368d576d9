#!/bin/sh
# Builds libmlxc against the MLX wheel of $PYTHON (default: the project venv).
# usage: build.sh BUILD_DIR OUT_DIR
set -eu
build=${1:-build/capi}
out=${2:-build/lib}
here=$(cd "$(dirname "$0")" && pwd)
python=$(cd "$(dirname "${PYTHON:-.venv/bin/python}")" && pwd)/$(basename "${PYTHON:-.venv/bin/python}")
# Run from / so that this repository's own mlx/ directory does not shadow the wheel.
mlx_dir=$(cd / && "$python" -c 'import mlx, os; print(os.path.join(list(mlx.__path__)[0], "share", "cmake", "MLX"))')
if [ ! -f "$mlx_dir/MLXConfig.cmake" ]; then
  echo "build.sh: no MLX CMake package at $mlx_dir: install the mlx-cpu (Linux) or mlx-metal (macOS) wheel" >&2
  exit 1
fi
cmake -S "$here" -B "$build" -DMLX_DIR="$mlx_dir" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$(mkdir -p "$out" && cd "$out" && pwd)" >/dev/null
cmake --build "$build" -j 2
