#!/usr/bin/env bash
# Every test: style and lints, native Rust tests, the package build, TypeScript declarations
# under --strict, and the built package from JavaScript in Node (CJS and ESM), Bun, Deno, workerd,
# headless Chromium and a Vite-bundled page in it. Installs what is missing first; under CI=true a missing component fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/setup.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
results=()
record() { results+=("$1"); }

# Chromium for the browser tests comes from Debian; test tools' own browser downloads cannot work here.
if ! command -v chromium >/dev/null 2>&1; then
  step "installing Debian's chromium"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
command -v chromium >/dev/null 2>&1 || { echo "chromium is required for the browser tests" >&2; exit 1; }

# PostgreSQL for the storage adapter tests.
source scripts/postgres.sh
step "PostgreSQL"
ensure_postgresql

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (native and wasm32) -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --quiet -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --no-default-features --quiet -- -D warnings
step "the core imports no JavaScript bindings"
if grep -rnE 'wasm_bindgen|js_sys|JsValue|serde_wasm_bindgen|tsify' src/domain src/engine src/domain.rs src/engine.rs; then
  echo "src/domain and src/engine must not use the bindings" >&2; exit 1
fi

step "cargo test (native)"
cargo test --quiet 2>&1 | tee target/cargo-test.log
native=$(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' target/cargo-test.log)
record "rust $native"

step "fuzzing: 300 000 executions over the edge parsers (examples/fuzz.rs)"
if cargo run --quiet --profile fuzz --example fuzz -- 300000 1 > target/fuzz.log; then
  cat target/fuzz.log
  record "fuzz 1 0"
else
  cat target/fuzz.log
  record "fuzz 0 1"
  printf '%s\n' "${results[@]}"
  exit 1
fi

step "build the package"
bash scripts/build.sh
ln -sfn ../pkg node_modules/ally-engine

step "TypeScript declarations under tsc --strict"
tsc -p tests/types
tsc -p examples/node-service
record "typescript 2 0"

run_js() {
  local name="$1"; shift
  step "$name"
  local log="target/js-$name.log"
  set +e
  "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  set -e
  local counts
  counts=$(grep -E "^\[$name\] [0-9]+ passed, [0-9]+ failed$" "$log" | tail -1 | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed/\1 \2/')
  [ -n "$counts" ] || counts="0 1"
  [ "$status" = 0 ] || [ "${counts#* }" != 0 ] || counts="${counts% *} 1"
  record "$name $counts"
}
run_js node-cjs node tests/js/node-cjs.cjs
run_js node-esm node tests/js/node-esm.mjs
run_js readme node tests/js/readme.mjs
run_js bun bun tests/js/bun.mjs
run_js deno env DENO_NO_UPDATE_CHECK=1 deno run --no-prompt --allow-read=. --node-modules-dir=manual tests/js/deno.mjs
run_js workerd node tests/js/run-workerd.mjs
run_js chromium node tests/js/run-browser.mjs
run_js vite node tests/js/run-vite.mjs
run_js postgres node tests/node/postgres.mjs
run_js smtp node tests/node/smtp.mjs
run_js faults node tests/node/faults.mjs
run_js interop node --expose-gc tests/node/interop.mjs
run_js hardened node tests/node/hardened.mjs
run_js service node tests/node/service.mjs
run_js cli node tests/node/cli.mjs
run_js edge node tests/node/run-edge.mjs

step "summary"
total_passed=0; total_failed=0
for r in "${results[@]}"; do
  set -- $r
  printf '  %-12s %5d passed, %d failed\n' "$1" "$2" "$3"
  total_passed=$((total_passed + $2)); total_failed=$((total_failed + $3))
done
echo "all: $total_passed passed, $total_failed failed"
[ "$total_failed" = 0 ]
