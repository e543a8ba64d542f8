#!/usr/bin/env bash
# Builds the package, then runs bench/run.mjs (wasm vs decimal.js peer vs native Rust) and
# bench/postgres.mjs (provisions per second through the PostgreSQL adapter).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/build.sh
ln -sfn ../pkg node_modules/ally-engine
node bench/run.mjs
source scripts/postgres.sh
ensure_postgresql
node bench/postgres.mjs
