# ringtune: `make demo` and `make test` are the two commands a newcomer needs; each installs what is missing.
SHELL := /bin/bash
NATIVE_BUILD := build/native
JOBS ?= $(shell nproc)

.PHONY: all deps build native ts test test-native test-js bench demo clean

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

test: build test-native test-js

test-native: native
	$(NATIVE_BUILD)/ringtune_native_test test

test-js: build
	node --test --test-concurrency=1 dist/test/

bench: build
	$(NATIVE_BUILD)/ringtune_native_test bench

demo:
	@echo "make demo arrives with the cluster (issue: coordinator and workers over NATS)."
	@echo "Until then: 'make test' builds everything and runs the tests; see README.md for the ringtune commands."
	@exit 1

clean:
	rm -rf build dist .cache

# Data pipeline throughput (byte and BPE tokenizers, 100k generated records).
.PHONY: bench-data
bench-data: ts
	node dist/bench/data_pipeline.js

# Ring all-reduce bus bandwidth per transport beside raw loopback throughput (bench/allreduce.ts).
# QUICK=1 measures fewer sizes (4 and 32 MB), for small machines.
.PHONY: bench-allreduce
bench-allreduce: ts
	node dist/bench/allreduce.js $(if $(QUICK),--quick,)
