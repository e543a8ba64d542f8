#!/usr/bin/env bash
# Builds the npm package into pkg/:
#   ally_engine_bg.wasm   the one module every entry loads (wasm-opt'd once)
#   ally_engine.cjs       Node require (wasm-pack --target nodejs)
#   web/ally_engine.js    ESM glue (wasm-pack --target web), used by:
#   node.js deno.js workerd.js web.js   thin per-runtime entries from js/
#   *.d.ts                generated declarations
# Prints the .wasm size, raw and gzipped.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/setup.sh

out=target/wasm-pack
for target in nodejs web; do
  wasm-pack --quiet build --release --target "$target" --out-dir "$out/$target" --no-pack >/dev/null
done
# The .wasm must be the same for every target: the package ships it once.
cmp -s "$out/nodejs/ally_engine_bg.wasm" "$out/web/ally_engine_bg.wasm" \
  || { echo "the nodejs and web targets produced different .wasm files" >&2; exit 1; }

rm -rf pkg
mkdir -p pkg/web
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-reference-types --enable-mutable-globals --enable-multivalue \
  "$out/web/ally_engine_bg.wasm" -o pkg/ally_engine_bg.wasm
cp "$out/nodejs/ally_engine.js" pkg/ally_engine.cjs
cp "$out/nodejs/ally_engine.d.ts" pkg/ally_engine.d.ts
cp "$out/nodejs/ally_engine.d.ts" pkg/ally_engine.d.cts
cp "$out/web/ally_engine.js" "$out/web/ally_engine.d.ts" pkg/web/
printf '{ "type": "module" }\n' > pkg/web/package.json
cp js/node.js js/deno.js js/workerd.js js/web.js js/web.d.ts js/package.json pkg/
cp README.md pkg/README.md 2>/dev/null || true

raw=$(stat -c %s pkg/ally_engine_bg.wasm)
gz=$(gzip -9 -c pkg/ally_engine_bg.wasm | wc -c)
printf '[build] pkg/ally_engine_bg.wasm: %d bytes raw, %d bytes gzipped (target: at most 262144 raw)\n' "$raw" "$gz"
if [ "$raw" -gt 262144 ]; then
  echo "[build] warning: the .wasm is over the 256 KiB target" >&2
fi
