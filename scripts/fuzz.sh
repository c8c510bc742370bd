#!/usr/bin/env bash
# make fuzz: build the cargo-fuzz targets in fuzz/ and run every one of them for
# FUZZ_SECONDS (default 60), all at once (one process each, sharing the CI
# machine's 2 cores), so the run takes FUZZ_SECONDS plus the build.
# Fails if any target finds a crash, naming the input that caused it.
#
# Each run starts from the committed seeds (fuzz/corpus/<target>) and writes the
# inputs it finds to .run/fuzz/<target>/corpus (git-ignored, emptied per run),
# so fuzzing never changes the tree. Crash inputs go to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
# Tokens are refused unread past 16 KiB (token::MAX_TOKEN_BYTES); a little more
# lets the fuzzer reach that check from both sides.
MAX_LEN=20000
# An input this slow is reported like a crash: the filter would stall a worker on it.
UNIT_TIMEOUT_SECONDS=10
# So is one that makes the process this big: every parser here has bounded memory
# (the YAML loader's alias and size budgets among them), far below this.
RSS_LIMIT_MB=1024
# No sanitizer: AddressSanitizer needs `-Zsanitizer`, which a stable toolchain
# refuses, and tollgate-core forbids `unsafe`. What we look for are panics (a panic
# kills the wasm VM) and broken invariants; cargo fuzz builds with debug
# assertions, so integer overflow panics too.
SANITIZER=none
RUN_DIR=.run/fuzz

die() { printf 'make fuzz: %s\n' "$*" >&2; exit 1; }

[[ "$FUZZ_SECONDS" =~ ^[1-9][0-9]*$ ]] || die "FUZZ_SECONDS must be a whole number of seconds, got '$FUZZ_SECONDS'"
cargo fuzz --version >/dev/null 2>&1 || die "cargo-fuzz is not installed; run 'make setup'"

mapfile -t targets < <(cargo fuzz list)
[ ${#targets[@]} -gt 0 ] || die "cargo fuzz list found no targets in fuzz/"

echo "==> building fuzz targets (${targets[*]})"
start=$SECONDS
cargo fuzz build --sanitizer "$SANITIZER"
echo "    built in $((SECONDS - start)) s"

# libFuzzer prints a line per new or reduced input or newly reached function, and
# its recommended dictionary; those go to the log only. Progress (a pulse line at
# every power of two of executions), the final stats and any crash report are shown.
noise='^#[0-9]+[[:space:]]+(NEW|REDUCE)[[:space:]]|^[[:space:]]+NEW_FUNC|^"|[Rr]ecommended dictionary'

fuzz_one() {
  local target=$1 dir="$RUN_DIR/$1"
  rm -rf "$dir" && mkdir -p "$dir/corpus"
  local args=(-max_total_time="$FUZZ_SECONDS" -max_len="$MAX_LEN" -timeout="$UNIT_TIMEOUT_SECONDS" -rss_limit_mb="$RSS_LIMIT_MB"
              -print_final_stats=1)
  [ -f "fuzz/dict/$target.dict" ] && args+=(-dict="fuzz/dict/$target.dict")
  # The first corpus directory receives new inputs; the seed directory is only read.
  cargo fuzz run --sanitizer "$SANITIZER" "$target" "$dir/corpus" "fuzz/corpus/$target" -- "${args[@]}" 2>&1 \
    | tee "$dir/log" | { grep --line-buffered -Ev "$noise" || true; } | sed -u "s/^/  [$target] /"
}

echo "==> fuzzing ${targets[*]} for ${FUZZ_SECONDS} s each, in parallel (logs in $RUN_DIR/<target>/log)"
pids=()
for target in "${targets[@]}"; do
  fuzz_one "$target" &
  pids+=($!)
done

failed=()
for i in "${!targets[@]}"; do
  wait "${pids[$i]}" || failed+=("${targets[$i]}")
done

echo "==> summary (cov: edges reached, ft: features, corp: inputs kept)"
for target in "${targets[@]}"; do
  log="$RUN_DIR/$target/log"
  runs=$(awk '/^stat::number_of_executed_units:/ { print $2 }' "$log")
  rate=$(awk '/^stat::average_exec_per_sec:/ { print $2 }' "$log")
  cov=$({ grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" || true; } | tail -1)
  printf '    %-12s %s runs, %s exec/s, %s\n' "$target" "${runs:-?}" "${rate:-?}" "${cov:-no coverage reported}"
done

if [ ${#failed[@]} -gt 0 ]; then
  for target in "${failed[@]}"; do
    log="$RUN_DIR/$target/log"
    printf 'make fuzz: %s FAILED (full log: %s)\n' "$target" "$log" >&2
    grep -Eo 'Test unit written to [^ ]+' "$log" | sed 's/^Test unit written to /    input: /' >&2 || true
    printf '    reproduce: cargo fuzz run --sanitizer %s %s <input>\n' "$SANITIZER" "$target" >&2
  done
  exit 1
fi
echo "==> fuzzing found nothing"
