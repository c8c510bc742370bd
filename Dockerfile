# syntax=docker/dockerfile:1
# The Tollgate image: the controller (`tollgate`, /usr/local/bin) and the filters the provisioned Envoy pods
# copy out of it with an init container (/usr/lib/tollgate: libtollgate.so and the four .wasm files).
# `tollgate manifests install --image` names it; docs/kubernetes.md says how it is used.
#
# NOT built in CI: no container registry is reachable from our machines, so neither base image can be
# pulled there. Build it where one is, from the repository root:
#   docker build -t registry.example/tollgate:0.1.0 .
# The builder runs the same cargo builds as `make build` (Makefile) for what ships.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# rust-toolchain.toml pins the toolchain and adds the wasm32-wasip1 target; rustup installs it here
# (`toolchain install` without a name needs rustup 1.28; older ones install it on `rustup show`).
RUN rustup toolchain install || rustup show
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile release-native -p dynamic-module \
 && cargo build --locked --release --target wasm32-wasip1 -p header-mod -p jwt-auth -p ratelimit -p canary \
 && cargo build --locked --release -p tollgate \
 && mkdir -p /out/lib \
 && cp target/release/tollgate /out/ \
 && cp target/release-native/libtollgate.so \
       target/wasm32-wasip1/release/canary.wasm \
       target/wasm32-wasip1/release/header_mod.wasm \
       target/wasm32-wasip1/release/jwt_auth.wasm \
       target/wasm32-wasip1/release/ratelimit.wasm \
       /out/lib/

# Debian slim rather than distroless: the Envoy pods' init container runs `cp` from this image.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/tollgate /usr/local/bin/tollgate
COPY --from=builder /out/lib/ /usr/lib/tollgate/
# The user the install's securityContext names (runAsUser 65532, runAsNonRoot).
USER 65532:65532
ENTRYPOINT ["tollgate"]
