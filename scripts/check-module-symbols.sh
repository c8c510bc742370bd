#!/usr/bin/env bash
# make lint: the dynamic module may only import Envoy callbacks that the pinned
# Envoy exports, and must speak the ABI version that Envoy speaks. Envoy loads
# modules with RTLD_NOW, so a missing callback fails the load; but it checks no
# signature, which is why every callback we declare is also called by an e2e
# test (filters/dynamic-module/src/abi.rs).
# usage: scripts/check-module-symbols.sh LIBTOLLGATE_SO
set -euo pipefail
cd "$(dirname "$0")/.."
module=${1:?usage: $0 libtollgate.so}

envoy_elf=$(ls .venv/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -1 || true)
[ -n "$envoy_elf" ] || { echo "check-module-symbols: no Envoy ELF under .venv (run make setup)" >&2; exit 1; }

exported=$(nm -D --defined-only "$envoy_elf" | awk '{print $NF}' | grep '^envoy_dynamic_module_callback_' | sort -u)
imported=$(nm -D --undefined-only "$module" | awk '{print $NF}' | grep '^envoy_dynamic_module_' | sort -u)
missing=$(comm -23 <(echo "$imported") <(echo "$exported"))
if [ -n "$missing" ]; then
  echo "check-module-symbols: $module imports callbacks the pinned Envoy does not export:" >&2
  echo "$missing" | sed 's/^/    /' >&2
  exit 1
fi

abi=$(grep -o 'ABI_VERSION: &\[u8\] = b"[^\\]*' filters/dynamic-module/src/abi.rs | sed 's/.*b"//')
[ -n "$abi" ] || { echo "check-module-symbols: no ABI_VERSION in filters/dynamic-module/src/abi.rs" >&2; exit 1; }
pinned=$(sed -n 's/^ENVOY_DYNAMIC_MODULE_ABI="\(.*\)"/\1/p' scripts/setup.sh)
if [ "$abi" != "$pinned" ]; then
  echo "check-module-symbols: abi.rs declares ABI $abi, scripts/setup.sh pins $pinned next to the Envoy wheel" >&2
  exit 1
fi
if ! grep -aqF "$abi" "$envoy_elf"; then
  echo "check-module-symbols: the pinned Envoy does not carry ABI version $abi" >&2
  exit 1
fi
echo "check-module-symbols: $(echo "$imported" | wc -l) callbacks imported, all exported by the pinned Envoy (ABI $abi)"
