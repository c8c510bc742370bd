#!/usr/bin/env bash
# make run: the whole thing on 127.0.0.1 — two echo backends, `tollgate serve`
# on examples/quickstart/ (a Gateway, routes and one policy of each kind), and
# an Envoy bootstrapped by `tollgate bootstrap` pulling its config over ADS.
# Prints the curl commands that show each part working; Ctrl-C stops all.
#
# scripts/run.sh --check runs those commands itself, checks every answer and
# exits (make test runs it, once per filter runtime): the demo cannot rot
# unnoticed. FILTER_RUNTIME=wasm serves the wasm filters instead of the
# dynamic module (dist/libtollgate.so, the default).
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG_DIR=examples/quickstart
LISTENER=127.0.0.1:10080        # the Gateway's port 80, served on 80 + 10000
ENVOY_ADMIN=127.0.0.1:9901
XDS=127.0.0.1:18000
TOLLGATE_ADMIN=127.0.0.1:19001
RUN_DIR=.run/quickstart
CHECK=false
[ "${1:-}" = "--check" ] && CHECK=true
FILTER_RUNTIME=${FILTER_RUNTIME:-dynamic-module}
case "$FILTER_RUNTIME" in
  dynamic-module|wasm) ;;
  *) printf 'make run: FILTER_RUNTIME is dynamic-module or wasm, not %s\n' "$FILTER_RUNTIME" >&2; exit 1 ;;
esac
mkdir -p "$RUN_DIR"

die() { printf 'make run: %s\n' "$*" >&2; exit 1; }

if [ -n "${ENVOY_BIN:-}" ]; then ENVOY=$ENVOY_BIN
elif [ -x .venv/bin/envoy ]; then ENVOY=.venv/bin/envoy
elif command -v envoy >/dev/null; then ENVOY=$(command -v envoy)
else die "no Envoy found: run 'make setup', or set ENVOY_BIN, or put envoy on PATH"; fi
for f in dist/tollgate dist/echo-backend dist/jwt_auth.wasm dist/libtollgate.so; do
  [ -e "$f" ] || die "$f is missing: run 'make build'"
done

for port in 10080 9901 18000 19001 3000 3001; do
  if ss -ltnH "sport = :$port" | grep -q .; then die "port $port is in use (stop what listens there, e.g. an earlier make run)"; fi
done

pids=()
cleanup() {
  trap - INT TERM EXIT
  $CHECK || { echo; echo "stopping (Envoy, tollgate serve, backends)…"; }
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

# Waits (at most 20 s) until "$@" succeeds; $pid must stay alive meanwhile.
wait_for() {
  local what=$1 pid=$2 log=$3; shift 3
  for _ in $(seq 1 200); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { tail -30 "$log" >&2; die "$what exited; its log is above ($log)"; }
    sleep 0.1
  done
  tail -30 "$log" >&2
  die "$what not ready after 20s; see $log"
}

dist/echo-backend --listen 127.0.0.1:3000 --pod backend >"$RUN_DIR/backend.log" 2>&1 & pids+=($!)
dist/echo-backend --listen 127.0.0.1:3001 --pod backend-canary >"$RUN_DIR/backend-canary.log" 2>&1 & pids+=($!)
dist/tollgate serve --config-dir "$CONFIG_DIR" --xds-listen "$XDS" --admin "$TOLLGATE_ADMIN" \
  --filter-runtime "$FILTER_RUNTIME" --status-dir "$RUN_DIR/status" >"$RUN_DIR/tollgate.log" 2>&1 & serve_pid=$!
pids+=("$serve_pid")
wait_for "tollgate serve" "$serve_pid" "$RUN_DIR/tollgate.log" curl -fsS "http://$TOLLGATE_ADMIN/readyz"
dist/tollgate bootstrap --xds-address "$XDS" --node-id quickstart --admin-address "$ENVOY_ADMIN" >"$RUN_DIR/envoy.json"
# Envoy finds libtollgate.so (the dynamic module `tollgate`) in dist/.
ENVOY_DYNAMIC_MODULES_SEARCH_PATH="$PWD/dist" \
  "$ENVOY" -c "$RUN_DIR/envoy.json" --disable-hot-restart --concurrency 2 -l info >"$RUN_DIR/envoy.log" 2>&1 & envoy_pid=$!
pids+=("$envoy_pid")
wait_for Envoy "$envoy_pid" "$RUN_DIR/envoy.log" curl -fsS "http://$ENVOY_ADMIN/ready"
# Ready means the listener came over ADS; wait for the routes too.
wait_for Envoy "$envoy_pid" "$RUN_DIR/envoy.log" curl -fsS -H 'host: www.example.com' "http://$LISTENER/bar"

TOKEN=$(cat "$CONFIG_DIR/token.jwt")

if $CHECK; then
  failures=0
  # expect WHAT WANT GOT
  expect() {
    if [ "$2" = "$3" ]; then printf '  ok    %s\n' "$1"
    else printf '  FAIL  %s: want %s, got %s\n' "$1" "$2" "$3"; failures=$((failures + 1)); fi
  }
  status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
  header() { local name=$1; shift; curl -s -D - -o /dev/null "$@" | tr -d '\r' | awk -v n="$name" 'tolower($1) == tolower(n) ":" { $1 = ""; sub(/^ /, ""); print }'; }
  pod() { curl -s "$@" | sed -n 's/.*"pod": *"\([^"]*\)".*/\1/p'; }
  echo "make run --check: the quickstart through Envoy ($FILTER_RUNTIME filters)"
  expect "JWT: /foo without a token is 401" 401 "$(status -H 'host: www.example.com' "http://$LISTENER/foo")"
  expect "JWT: /foo with the token is 200" 200 "$(status -H 'host: www.example.com' -H "authorization: Bearer $TOKEN" "http://$LISTENER/foo")"
  expect "JWT: /bar needs no token" 200 "$(status -H 'host: www.example.com' "http://$LISTENER/bar")"
  expect "RequestHeaderModifier adds my-added-header" 1 "$(curl -s -H 'host: www.example.com' "http://$LISTENER/headers" | grep -c '"my-added-header"')"
  expect "HeaderPolicy sets x-served-by" tollgate "$(header x-served-by -H 'host: www.example.com' "http://$LISTENER/bar")"
  for i in 1 2 3; do
    expect "rate limit: request $i of x-user-id one" 200 "$(status -H 'host: ratelimit.example' -H 'x-user-id: one' "http://$LISTENER/")"
  done
  expect "rate limit: request 4 of x-user-id one" 429 "$(status -H 'host: ratelimit.example' -H 'x-user-id: one' "http://$LISTENER/")"
  expect "rate limit: x-user-id two is not limited" 200 "$(status -H 'host: ratelimit.example' -H 'x-user-id: two' "http://$LISTENER/")"
  expect "CanaryPolicy: x-canary: true goes to backend-canary" backend-canary "$(pod -H 'host: canary.example' -H 'x-canary: true' "http://$LISTENER/")"
  expect "CanaryPolicy: everyone else to backend" backend "$(pod -H 'host: canary.example' "http://$LISTENER/")"
  canary=0
  for _ in $(seq 1 60); do [ "$(pod -H 'host: split.example' "http://$LISTENER/")" = backend-canary ] && canary=$((canary + 1)); done
  expect "weights 1:2: 25-55 of 60 to backend-canary" yes "$([ "$canary" -ge 25 ] && [ "$canary" -le 55 ] && echo yes || echo "no ($canary)")"
  expect "status: all 4 policies Accepted" 4 "$(curl -s "http://$TOLLGATE_ADMIN/status" | sed -n '/^policies:/,$p' | grep -c 'reason: Accepted$')"
  [ "$failures" -eq 0 ] || { tail -20 "$RUN_DIR/tollgate.log" >&2; die "$failures check(s) failed; logs in $RUN_DIR/"; }
  echo "make run --check: all good ($FILTER_RUNTIME)"
  exit 0
fi

cat <<EOT

Envoy $("$ENVOY" --version | grep -o '/1\.[0-9.]*/' | tr -d /) is up, configured by tollgate serve from $CONFIG_DIR/
  Gateway eg    http://$LISTENER (port 80 + 10000)     Envoy admin     http://$ENVOY_ADMIN
  backends      backend 127.0.0.1:3000, backend-canary 127.0.0.1:3001
  tollgate      xDS $XDS, admin http://$TOLLGATE_ADMIN   logs and status.yaml in $RUN_DIR/

JWT (policies/jwt.yaml) on /foo, not on /bar:
  curl -i -H 'host: www.example.com' http://$LISTENER/foo                      # 401
  curl -i -H 'host: www.example.com' -H "authorization: Bearer \$(cat $CONFIG_DIR/token.jwt)" http://$LISTENER/foo
  curl -i -H 'host: www.example.com' http://$LISTENER/bar                      # 200, no token needed

Rate limit (policies/ratelimit.yaml): x-user-id one gets 3 an hour, then 429; two is never limited:
  for i in 1 2 3 4; do curl -s -o /dev/null -w '%{http_code} ' -H 'host: ratelimit.example' -H 'x-user-id: one' http://$LISTENER/; done; echo

Headers: the Gateway-wide HeaderPolicy and a route's RequestHeaderModifier:
  curl -si -H 'host: www.example.com' http://$LISTENER/headers | grep -i -e x-served-by -e my-added-header

Weights 1:2 (split.example) and a CanaryPolicy (canary.example):
  for i in \$(seq 1 30); do curl -s -H 'host: split.example' http://$LISTENER/ | grep -o '"pod": *"[^"]*"'; done | sort | uniq -c
  curl -s -H 'host: canary.example' -H 'x-canary: true' http://$LISTENER/ | grep -o '"pod": *"[^"]*"'

Edit anything in $CONFIG_DIR/ and it reaches Envoy without a restart. Status:
  curl -s http://$TOLLGATE_ADMIN/status          # or: dist/tollgate validate $CONFIG_DIR
  curl -s http://$ENVOY_ADMIN/stats/prometheus | grep tollgate_

Press Ctrl-C to stop.
EOT

wait "$envoy_pid"
