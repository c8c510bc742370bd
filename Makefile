# Tollgate — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

FILTERS := header_mod jwt_auth ratelimit canary
# Benchmark-only modules (`bench verify`): built next to the filters, never copied to dist/,
# and in a cargo run of their own so their dependencies never change the filters' features.
BENCH_MODULES := verify_bench
WASM_TARGET := wasm32-wasip1
WASM_OUT := target/$(WASM_TARGET)/release

.PHONY: help setup build manifests test unit e2e lint fmt fuzz run run-check bench bench-headers bench-jwt bench-ratelimit bench-canary bench-all-filters bench-ratelimit-server bench-controller clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## Install everything the build and tests need (idempotent, quick once done; every target below runs it first)
	@scripts/setup.sh

build: setup ## Build the filters into dist/*.wasm and dist/libtollgate.so, the tollgate binary, the tools and the Kubernetes install (dist/install.yaml) into dist/
	@echo "==> building the dynamic module (all filters): libtollgate.so"
	cargo build --profile release-native -p dynamic-module
	@scripts/install-built.sh dist target/release-native/libtollgate.so
	@echo "==> building wasm filters: $(FILTERS)"
	cargo build --release --target $(WASM_TARGET) $(foreach f,$(FILTERS),-p $(subst _,-,$(f)))
	@scripts/install-built.sh dist $(foreach f,$(FILTERS),$(WASM_OUT)/$(f).wasm)
	@echo "==> building benchmark modules: $(BENCH_MODULES)"
	cargo build --release --target $(WASM_TARGET) -p verify-bench-wasm
	@for f in $(BENCH_MODULES); do echo "    $(WASM_OUT)/$$f.wasm ($$(stat -c %s $(WASM_OUT)/$$f.wasm) bytes, not shipped)"; done
	@echo "==> building tools (echo-backend, bench)"
	cargo build --release -p e2e --bins
	@scripts/install-built.sh dist target/release/echo-backend
	@echo "==> building the tollgate binary"
	cargo build --release -p tollgate
	@scripts/install-built.sh dist target/release/tollgate
	@$(MAKE) --no-print-directory manifests

manifests: ## Write dist/install.yaml (the Kubernetes install, `tollgate manifests install`) from the built binary
	@test -x dist/tollgate || { echo "no dist/tollgate: run make build" >&2; exit 1; }
	dist/tollgate manifests install > dist/install.yaml.partial || { rm -f dist/install.yaml.partial; exit 1; }
	@mv dist/install.yaml.partial dist/install.yaml
	@echo "    dist/install.yaml ($$(grep -c '^kind: ' dist/install.yaml) objects)"

lint: setup ## rustfmt check, clippy with warnings as errors, no dangling link or cited path, the dynamic module's imports exported by the pinned Envoy
	cargo fmt --all -- --check
	cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target $(WASM_TARGET) $(foreach f,$(FILTERS),-p $(subst _,-,$(f))) -p verify-bench-wasm -- -D warnings
	@# fuzz/ is a workspace of its own; sharing target/ reuses the dependencies checked above.
	cargo clippy --manifest-path fuzz/Cargo.toml --target-dir target --all-targets -- -D warnings
	cargo run --quiet -p doc-check
	cargo build --quiet -p dynamic-module
	@scripts/check-module-symbols.sh target/debug/libtollgate.so

fmt: ## Format the code
	cargo fmt --all
	cargo fmt --manifest-path fuzz/Cargo.toml --all

unit: setup ## Unit tests (filters/core and the harness's own tests)
	cargo test --workspace --lib --bins

e2e: build ## End-to-end tests against a real Envoy
	cargo test -p e2e --tests

test: setup lint build ## Setup, lint, unit tests, end-to-end tests, the demo's checks and a bounded fuzz run (what CI runs)
	@mkdir -p .run
	cargo test --workspace --no-fail-fast 2>&1 | tee .run/test.log
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "all tests: %d passed, %d failed\n", p, f }' .run/test.log
	@FILTER_RUNTIME=dynamic-module scripts/run.sh --check
	@FILTER_RUNTIME=wasm scripts/run.sh --check
	@$(MAKE) --no-print-directory fuzz

fuzz: setup ## Run every fuzz target for FUZZ_SECONDS (default 60) at once; fails on a crash
	@scripts/fuzz.sh

run: build ## The demo: tollgate serve on examples/quickstart/, Envoy over ADS, echo backends; prints curl commands
	@scripts/run.sh

run-check: build ## Run the demo's curl commands on both filter runtimes, check every answer, stop (part of make test)
	@FILTER_RUNTIME=dynamic-module scripts/run.sh --check
	@FILTER_RUNTIME=wasm scripts/run.sh --check

bench: bench-headers bench-jwt bench-ratelimit bench-canary bench-all-filters bench-ratelimit-server bench-controller ## All benchmarks

bench-headers: build ## Header filter vs native header_mutation vs no filter (prints a table)
	target/release/bench headers

bench-jwt: build ## JWT filter vs native jwt_authn (RS256, ES256; one token, 10k distinct tokens), then one verification per algorithm in V8
	target/release/bench jwt
	target/release/bench verify

bench-ratelimit: build ## Rate limit filter vs native, limit never reached: local mode vs local_ratelimit, global mode vs ratelimit (same service and Redis)
	target/release/bench ratelimit
	target/release/bench ratelimit-global

bench-canary: build ## Canary filter + cluster_header route vs native weighted_clusters (weights 1:2)
	target/release/bench canary

bench-all-filters: build ## All four filters in one chain vs Envoy's own four: cost and memory (RSS)
	target/release/bench all

bench-ratelimit-server: build ## tollgate ratelimit-server driven by a gRPC client at concurrency 1, 16, 64, on a hot over-limit key, and on a Redis Cluster
	cargo bench -p tollgate --bench ratelimit_server

# Share of routes given a HeaderPolicy and a RateLimitPolicy in bench-controller.
POLICY_SHARE ?= 0.1

bench-controller: build ## tollgate translate / serve + Envoy at 1,000 and 10,000 HTTPRoutes, both filter runtimes: time, peak RSS, xDS bytes, edit-to-served p50/p99 (POLICY_SHARE=0.1)
	target/release/controller-bench run --policy-share $(POLICY_SHARE)

clean: ## Remove build outputs
	cargo clean
	cargo clean --manifest-path fuzz/Cargo.toml
	rm -rf dist
