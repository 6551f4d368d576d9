# mlxdist: `make demo` runs the main job, `make test` runs the tests.
# Both install what they need (a project venv with pinned pip MLX, the C ABI
# library) and are idempotent.

GO     ?= go
# The set-up command, the one an importing module runs
# (go run github.com/mlxdist/mlxdist/mlx/setup), run from this checkout.
SETUP  := CGO_ENABLED=0 $(GO) run ./mlx/setup

# MLX is pinned in one place, the Go side (mlx.PinnedVersion): the set-up
# command installs exactly that wheel and builds the C ABI library against
# its headers and libmlx. The other pins follow it.
MLX_VERSION := $(shell $(SETUP) -mlx-version)
MLX_LM_VERSION := 0.32.2
SAFETENSORS_VERSION := 0.8.0
# Reference implementations the tests compare against (tokenizers, chat
# templates, the OpenAI client), pinned like MLX.
REF_PKGS := tokenizers==0.23.3 transformers==5.24.0 tiktoken==0.14.0 jinja2==3.1.6 openai==3.51.0 gguf==0.19.0

PYTHON_BOOT ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mlxdist-$(MLX_VERSION)-$(MLX_LM_VERSION)-$(SAFETENSORS_VERSION)-ref2

export MLX_REQUIRED ?= 1

.PHONY: setup venv capi mlx-version test bins demo bench bench-calls bench-load bench-generate bench-serve bench-stream bench-pipeline fuzz clean help

help:
	@echo "make setup   project venv (pip MLX $(MLX_VERSION)) and the C ABI library"
	@echo "make test    setup, then every test, the race tests and the cross builds"
	@echo "make demo    setup, then the distributed load demo on local ranks"
	@echo "make bench   setup, then the benchmarks, side by side with Python MLX"

setup: $(STAMP)

venv: $(STAMP)

# pip MLX into .venv and the C ABI library into build/lib, by the same code
# an importing module runs, pointed at this checkout. It does nothing when
# both are current, and rebuilds what an interrupted run left.
capi:
	$(SETUP) -dir build -venv $(VENV) -python $(PYTHON_BOOT)

# The reference packages the tests compare against, into the same venv.
$(STAMP): | capi
	$(PY) -m pip install --disable-pip-version-check -q \
		"mlx-lm==$(MLX_LM_VERSION)" "safetensors==$(SAFETENSORS_VERSION)" numpy $(REF_PKGS)
	@touch $@

mlx-version:
	@echo $(MLX_VERSION)

test: setup
	CGO_ENABLED=0 $(GO) test -count=1 ./...
	CGO_ENABLED=1 $(GO) test -count=1 -race ./...
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 $(GO) build ./...
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build ./...
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build ./...
	$(GO) vet ./...

# The example programs, built the way users build them: no cgo.
bins: setup
	CGO_ENABLED=0 $(GO) build -o bin/ ./examples/...

DEMO_CKPT := build/demo-kimi

demo: bins
	bin/mlxinfo
	@echo
	@echo "== connectivity: the seed's all-sum test over 2 local ranks (ring) =="
	bin/launch -n 2 -- bin/connectivity
	@echo
	@echo "== a Kimi K2.5-layout checkpoint, scaled down (written once) =="
	bin/mkcheckpoint --out $(DEMO_CKPT) --scale 0.125 --layers 4 --experts 16 --files 4
	@echo
	@echo "== kimiload: the seed's loading test, TP=2 over 2 local ranks, direct reads =="
	bin/launch -n 2 -- bin/kimiload --model $(DEMO_CKPT) --verify
	@echo
	@echo "== reshard: each node keeps only its shard, and reads exactly its bytes =="
	bin/reshard --model $(DEMO_CKPT) --world 2 --out $(DEMO_CKPT)-rank{rank} --quiet
	bin/launch -n 2 -- bin/kimiload --model $(DEMO_CKPT)-rank{rank} --verify
	@echo
	@echo "== the plan for the real Kimi K2.5 on 512 GB nodes, next to the seed's measurement =="
	bin/kimiload --plan-only --describe kimi-k2.5
	@echo
	@echo "== load, then answer: the 4-bit bfloat16 checkpoint above, as real ones are, TP=2 =="
	bin/launch -n 2 -- bin/kimiload --model $(DEMO_CKPT) --prompt "What is 2+2? Answer in one sentence." --max-tokens 8
	@echo
	@echo "== load, then answer: a float32 Kimi-layout checkpoint, TP=2, the seed's prompt =="
	@echo "   (random weights: the ids mean nothing; they equal mlx-lm's on the same checkpoint)"
	bin/mkcheckpoint --out $(DEMO_CKPT)-f32 --scale 0.03 --layers 4 --experts 16 --files 2 --dtype F32 --unquantized
	bin/launch -n 2 -- bin/kimiload --model $(DEMO_CKPT)-f32 --prompt "What is 2+2? Answer in one sentence." --max-tokens 16

bench: setup
	$(MAKE) --no-print-directory bench-calls
	@echo
	@echo "== AllSum latency and bandwidth: Go vs Python, ring, 2 local ranks =="
	PYTHON=$(abspath $(PY)) sh bench/allsum/run.sh
	@echo
	@echo "== safetensors: open 182 files / 100k tensors; copy a tensor vs memcpy =="
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench 'OpenDir|Copy' -benchtime 2s ./safetensors/
	@echo
	@echo "== checkpoint generation =="
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench . -benchtime 20x ./internal/ckptgen/
	@echo
	@echo "== direct loads: mmap vs pread =="
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench BenchmarkDirect -benchtime 10x ./loader/
	@echo
	@echo "== tokenizer encode throughput: ours vs tiktoken and tokenizers =="
	PYTHON=$(abspath $(PY)) sh bench/tokenize/run.sh
	@echo
	$(MAKE) --no-print-directory bench-load
	$(MAKE) --no-print-directory bench-generate
	$(MAKE) --no-print-directory bench-serve
	$(MAKE) --no-print-directory bench-stream
	$(MAKE) --no-print-directory bench-pipeline

# The binding's per-call cost beside Python's, one run: create + free, a
# tiny op, a tiny op + eval, and a 4-byte all-sum once per trip to the MLX
# thread (ring, 2 local ranks).
bench-calls: setup
	@echo "== per-call cost: package mlx vs Python mlx.core =="
	$(PY) bench/mlxcalls.py
	@echo
	@echo "== a 4-byte all-sum per call: Go vs Python, ring, 2 local ranks =="
	PYTHON=$(abspath $(PY)) sh bench/allsum/run.sh --mb 16 --bw-iters 3

# Generation side by side: ours against mlx_lm.benchmark at TP=1 and TP=2
# over ring, on one float32 checkpoint.
bench-generate: setup
	@echo "== generation: ours vs mlx_lm.benchmark, TP=1 and TP=2 over ring =="
	PYTHON=$(abspath $(PY)) sh bench/generate/run.sh

# The OpenAI server beside mlx_lm.server: time to first token and tok/s,
# 1 and 4 clients, 1 and 2 ranks.
bench-serve: setup
	@echo "== serving: ours vs mlx_lm.server =="
	PYTHON=$(abspath $(PY)) sh bench/serve/run.sh

# Model load, side by side: ours (direct, resharded, mapped,
# eval-shard-eval), mlx-lm's sharded_load and the naive load, local ranks
# over ring, a generated 2.6 GB checkpoint, next to the plain read and the
# fill limit of the same bytes (BENCH_RANKS="2 4", BENCH_OUT=DIR: see
# bench/load/run.sh).
bench-load: setup
	@echo "== model load: ours vs mlx-lm sharded_load, local ranks over ring =="
	PYTHON=$(abspath $(PY)) sh bench/load/run.sh

# Loading from one node's disk: the streamed load against local files and
# against copying the folder first (mlx_lm.share) then sharded_load.
bench-stream: setup
	@echo "== streamed load from one node's disk vs local files vs copy then load, 2 local ranks over ring =="
	PYTHON=$(abspath $(PY)) sh bench/stream/run.sh

# Tensor and pipeline parallelism side by side with mlx-lm's --pipeline.
bench-pipeline: setup
	@echo "== generation tok/s: TP=2, PP=2, PP=3, ours vs mlx-lm =="
	PYTHON=$(abspath $(PY)) sh bench/pipeline/run.sh

# Long fuzzing, for your own runs (make test runs the seeds as a smoke).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzOpen -fuzztime 10m ./safetensors/
	$(GO) test -run '^$$' -fuzz FuzzResolve -fuzztime 2m ./loader/shard/
	$(GO) test -run '^$$' -fuzz FuzzNewPlan -fuzztime 2m ./loader/shard/
	$(GO) test -run '^$$' -fuzz FuzzPlan -fuzztime 2m ./netcfg/
	$(GO) test -run '^$$' -fuzz FuzzReadCluster -fuzztime 2m ./netcfg/
	$(GO) test -run '^$$' -fuzz FuzzParseHostfile -fuzztime 2m ./jaccl/cluster/
	$(GO) test -run '^$$' -fuzz FuzzProcParsers -fuzztime 2m ./memguard/
	$(GO) test -run '^$$' -fuzz FuzzEncode -fuzztime 5m ./tokenizer/
	TOKENIZER_CORPUS=100000,2 $(GO) test -count=1 -timeout 60m -run TestEncodeMatchesReferenceOnCorpus ./tokenizer/

clean:
	rm -rf build bin
