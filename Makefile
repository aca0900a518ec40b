# ringtune: `make demo` and `make test` are the two commands a newcomer needs; each installs what is missing.
SHELL := /bin/bash
NATIVE_BUILD := build/native
JOBS ?= $(shell nproc)

.PHONY: all deps build native ts test test-native test-js bench demo clean lint format lint-and-test-native

all: build

# Debian packages (skipped when present), then npm packages when the lockfile changed.
deps: .cache/deps.stamp node_modules/.ringtune-npm.stamp
.cache/deps.stamp: deploy/scripts/install-deps.sh
	@./deploy/scripts/install-deps.sh
	@mkdir -p .cache && touch $@
node_modules/.ringtune-npm.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

native: deps
	@cmake -S native -B $(NATIVE_BUILD) -DCMAKE_BUILD_TYPE=Release > /dev/null
	@cmake --build $(NATIVE_BUILD) -j $(JOBS)

ts: deps
	@rm -rf dist
	npx tsc -p tsconfig.json
	@chmod +x dist/cli/ringtune.js

build: native ts

test: build lint-and-test-native test-js test-containers-if-podman

# Lint and the native tests side by side (a sub-make with -j2, each one's output printed whole as it ends):
# ESLint and Prettier each keep one core busy while the native drivers wait on their own threads. Their
# prerequisites (deps, native) are already made, so the sub-make builds nothing again.
lint-and-test-native: build
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint test-native

# Formatting and lint are checked in `make test`; `make format` rewrites the tree in the house style.
# C++/CUDA formatting: clang-format with the repository's .clang-format, over the files git tracks.
CXX_SOURCES = $(shell git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')

lint: deps
	npx eslint --max-warnings 0 .
	npx prettier --check --log-level warn "**/*.ts"
	@echo "clang-format --dry-run --Werror <the C++/CUDA sources git tracks>"
	@clang-format --dry-run --Werror $(CXX_SOURCES)

format: deps
	npx prettier --write --log-level warn "**/*.ts"
	npx eslint --fix .
	clang-format -i $(CXX_SOURCES)

test-native: native
	$(NATIVE_BUILD)/ringtune_native_test
	@CUDA_EMU_TEST=$(NATIVE_BUILD)/ringtune_cuda_emu_test CUDA_TEST=$(NATIVE_BUILD)/ringtune_cuda_test \
	  ./deploy/scripts/cuda-tests.sh
	@./deploy/gpu/check-bundle-size.sh --projected

# What a GPU host without build tools is given (deploy/gpu/README.md): the GPU library, the CUDA test driver
# and bench for sm_80, sm_86, sm_89 and sm_90 in build/native-portable (x86-64-v3), stripped, with the product
# for the end-to-end checks (node, nats-server, dist/, production node_modules, the addon), as one xz archive in
# build/gpu-bundle; fails over 60 MiB carried. Not part of `make build`, which builds sm_90 only: four archs take
# nvcc several times as long.
.PHONY: gpu-bundle
gpu-bundle: ts
	./deploy/gpu/bundle.sh

# The JS tests in the lanes test/lanes.txt gives them: files that mostly wait beside files that compute, each
# lane one file at a time, then the timing-sensitive ones alone (deploy/scripts/test-js.sh).
test-js: build
	@./deploy/scripts/test-js.sh

# ringtune's OCI image (and the container tests' nats-server image), built by podman from a debootstrapped
# Debian root with nothing but Debian's and npm's registries; content-keyed, rebuilt only when its inputs change.
# RINGTUNE_MARCH sets the C++ core's CPU baseline (x86-64-v3).
.PHONY: image test-containers test-containers-if-podman
image:
	@RINGTUNE_MARCH=$(RINGTUNE_MARCH) ./deploy/image/build.sh

# The cluster as containers of that image on a podman network (test/containers/), driven by testcontainers.
test-containers: ts
	@./deploy/scripts/test-containers.sh

# `make test` runs the container tests where podman is installed (`make image` installs it), and says so where not.
test-containers-if-podman: ts
	@if command -v podman >/dev/null 2>&1; then ./deploy/scripts/test-containers.sh; \
	else echo "container tests: skipped (no podman; 'make image' installs it, then 'make test-containers')"; fi

bench: build
	$(NATIVE_BUILD)/ringtune_native_bench step

# The GPU benchmark (bench/cuda/bench_gpu.sh): the machine, the GEMM peak on random data, attention on tensor
# cores vs SIMT, each shape's training step (tokens/s, MFU vs 989 TFLOP/s and vs that peak, attention share)
# and PyTorch eager/torch.compile on the same shapes where torch sees the GPU, with the ratios, in one run.
# BENCH=/path/to/ringtune_cuda_bench runs a prebuilt binary (a GPU bundle's) without building here.
.PHONY: bench-gpu
bench-gpu: $(if $(BENCH),,native)
	./bench/cuda/bench_gpu.sh

# Sequence parallelism: step time of one worker vs SP=2 at 8192/16384 tokens, ring transfer hidden, longest
# row in a memory budget (bench/native/sequence_parallel.cpp). SP_BENCH_ARGS="--seq 2048 --steps 1" for a short run.
# OpenMP threads sleep rather than spin at barriers: on a busy shared machine spinning threads starve each other
# and the one-worker baseline (all cores, one team) would be timed at many times its cost.
.PHONY: bench-sp
bench-sp: native
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} $(NATIVE_BUILD)/ringtune_native_bench sp $(SP_BENCH_ARGS)

# Memory held and step time: full training vs LoRA rank 16 and 64 (bench/native/lora_step.cpp).
.PHONY: bench-lora
bench-lora: native
	$(NATIVE_BUILD)/ringtune_native_bench lora

# proto/schema/*.json, the JSON Schema documents of the job API, rewritten from the zod schemas; a test in
# `make test` fails while they are stale.
.PHONY: schema
schema: ts
	node dist/coordinator/jobs/write_json_schemas.js

# The bundled example end to end: a local cluster, the job with its progress, what it learned, cluster down.
demo: build
	@./deploy/scripts/demo.sh

# A local cluster in the background (logs and pid files in .run/): nats-server with JetStream (unless
# NATS_URL names one), the coordinator and WORKERS workers (default: one per GPU, else 2 on CPU).
.PHONY: cluster-up cluster-down
cluster-up: build
	@WORKERS="$(WORKERS)" TLS="$(TLS)" SERVE="$(SERVE)" SERVE_ADAPTERS="$(SERVE_ADAPTERS)" SERVE_HTTP="$(SERVE_HTTP)" SERVE_API_KEY_FILE="$(SERVE_API_KEY_FILE)" ./deploy/scripts/cluster-up.sh

# Stops exactly the processes cluster-up started (its pid files), nothing else.
cluster-down:
	@./deploy/scripts/cluster-down.sh

clean:
	rm -rf build dist .cache

# Data pipeline throughput (byte and BPE tokenizers, 100k generated records).
# Many adapters on one base: memory against merged models, batched vs one-at-a-time tokens/s, time to first token (bench/serve.ts).
.PHONY: bench-serve
bench-serve: build
	node dist/bench/serve.js

.PHONY: bench-data
bench-data: ts
	node dist/bench/data_pipeline.js

# Ring all-reduce bus bandwidth per transport beside raw loopback throughput (bench/allreduce.ts).
# QUICK=1 measures fewer sizes (4 and 32 MB), for small machines.
.PHONY: bench-allreduce
bench-allreduce: ts
	node dist/bench/allreduce.js $(if $(QUICK),--quick,)

# Share of a training step spent waiting on communication: the bench model on 2 worker processes (bench/cluster_step.ts).
.PHONY: bench-cluster
bench-cluster: build
	node dist/bench/cluster_step.js

# Longest row within a per-worker memory budget with and without activation checkpointing, and ZeRO-1's
# AdamW memory per rank against unsharded (bench/memory_budget.ts). BUDGET_GIB sets the budget (1.5).
.PHONY: bench-memory
bench-memory: build
	node dist/bench/memory_budget.js $(if $(BUDGET_GIB),--budget-gib $(BUDGET_GIB),)

# Qwen2.5-0.5B / 1.5B shapes: time to the first step against initialising the weights, step time, peak RSS.
.PHONY: bench-sizes
bench-sizes: build
	node dist/bench/real_sizes.js
