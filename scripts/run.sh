#!/usr/bin/env bash
# make run: Envoy with the example config in envoy-configs/, the built filters and
# two echo backends, all on 127.0.0.1; prints the curl commands that show each
# filter working. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=envoy-configs/header-mod.yaml
LISTENER=127.0.0.1:10000
ADMIN=127.0.0.1:9901
RUN_DIR=.run
mkdir -p "$RUN_DIR"

die() { printf 'make run: %s\n' "$*" >&2; exit 1; }

if [ -n "${ENVOY_BIN:-}" ]; then ENVOY=$ENVOY_BIN
elif [ -x .venv/bin/envoy ]; then ENVOY=.venv/bin/envoy
elif command -v envoy >/dev/null; then ENVOY=$(command -v envoy)
else die "no Envoy found: run 'make setup', or set ENVOY_BIN, or put envoy on PATH"; fi

for port in 10000 9901 3000 3001; do
  if ss -ltnH "sport = :$port" | grep -q .; then die "port $port is in use (stop what listens there, e.g. an earlier make run)"; fi
done

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping (Envoy and backends)…"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

dist/echo-backend --listen 127.0.0.1:3000 --pod echo-a >"$RUN_DIR/echo-a.log" 2>&1 & pids+=($!)
dist/echo-backend --listen 127.0.0.1:3001 --pod echo-b >"$RUN_DIR/echo-b.log" 2>&1 & pids+=($!)
"$ENVOY" -c "$CONFIG" --disable-hot-restart --concurrency 2 -l info >"$RUN_DIR/envoy.log" 2>&1 & envoy_pid=$!
pids+=("$envoy_pid")

for _ in $(seq 1 200); do
  curl -fsS "http://$ADMIN/ready" >/dev/null 2>&1 && break
  kill -0 "$envoy_pid" 2>/dev/null || { tail -30 "$RUN_DIR/envoy.log" >&2; die "Envoy exited; its log is above ($RUN_DIR/envoy.log)"; }
  sleep 0.1
done
curl -fsS "http://$ADMIN/ready" >/dev/null || die "Envoy not ready after 20s; see $RUN_DIR/envoy.log"

cat <<EOT

Envoy $("$ENVOY" --version | grep -o '/1\.[0-9.]*/' | tr -d /) is up with $CONFIG
  listener  http://$LISTENER        admin  http://$ADMIN
  backends  echo-a 127.0.0.1:3000   echo-b 127.0.0.1:3001      logs in $RUN_DIR/

Header modification (dist/header_mod.wasm), per-route policies:

  # Gateway API RequestHeaderModifier 'add my-added-header: added-value' on route /headers:
  curl -s http://$LISTENER/headers | grep -A1 my-added-header

  # route /req-header-add adds 'foo: bar':
  curl -s http://$LISTENER/req-header-add | grep -A1 '"foo"'

  # default policy: sets x-forwarded-path from a template, removes x-internal-secret,
  # and on the response sets x-served-by and strips every x-debug-* header the backend sent:
  curl -si 'http://$LISTENER/anything?q=1' -H 'x-internal-secret: s3cr3t' \\
       -H 'X-Echo-Set-Header: X-Debug-Trace:abc,X-Kept:yes'

  # the filter's counters, in Prometheus format (flushed to Envoy once a second):
  curl -s http://$ADMIN/stats/prometheus | grep tollgate_

Press Ctrl-C to stop.
EOT

wait "$envoy_pid"
