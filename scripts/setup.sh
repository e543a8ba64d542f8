#!/usr/bin/env bash
# Installs what building the package needs, and nothing twice: the wasm target, the pinned
# wasm-bindgen CLI (same version as the crate's pin), wasm-pack, and the npm dev tools (wasm-opt,
# TypeScript, Deno, workerd, Playwright, decimal.js). Idempotent; sourced by the other scripts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WASM_BINDGEN_VERSION="0.2.130"
export PATH="$HOME/.cargo/bin:$root/node_modules/.bin:$PATH"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes)"
  # No --locked: one of its locked dependencies is no longer on the registry.
  cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --force
fi

if ! command -v wasm-pack >/dev/null 2>&1; then
  log "installing wasm-pack (a few minutes)"
  cargo install wasm-pack --locked
fi

if [ ! -x "$root/node_modules/.bin/wasm-opt" ] || [ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
  log "installing npm dev tools"
  # `npm install` rather than `npm ci`: it follows the lock file, but unlike `npm ci` it accepts
  # that the lock lists only the platform packages (deno, workerd) this registry serves.
  (cd "$root" && npm install --no-audit --no-fund)
fi
