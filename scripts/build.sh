#!/usr/bin/env bash
# Builds the npm package into pkg/:
#   ally_engine_bg.wasm   the one module every entry loads (wasm-opt'd once)
#   ally_engine.cjs       Node require (wasm-pack --target nodejs)
#   web/ally_engine.js    ESM glue (wasm-pack --target web), used by:
#   node.js deno.js workerd.js web.js   thin per-runtime entries from js/
#   *.d.ts                generated declarations
#   pricing/              the same layout for the pricing-only module (no engine, no host ports):
#                         the small download for browsers and edge functions that only price
# Prints the .wasm sizes, raw and gzipped.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/setup.sh

out=target/wasm-pack
rm -rf "$out/nodejs/snippets" "$out/web/snippets" "$out/pricing/snippets"
for target in nodejs web; do
  wasm-pack --quiet build --release --target "$target" --out-dir "$out/$target" --no-pack >/dev/null
done
wasm-pack --quiet build --release --target web --out-dir "$out/pricing" --no-pack -- --no-default-features >/dev/null
# The .wasm must be the same for every target: the package ships it once.
cmp -s "$out/nodejs/ally_engine_bg.wasm" "$out/web/ally_engine_bg.wasm" \
  || { echo "the nodejs and web targets produced different .wasm files" >&2; exit 1; }

optimise() {
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-reference-types --enable-mutable-globals --enable-multivalue "$1" -o "$2"
}
rm -rf pkg
mkdir -p pkg/web pkg/pricing/web
optimise "$out/web/ally_engine_bg.wasm" pkg/ally_engine_bg.wasm
cp "$out/nodejs/ally_engine.js" pkg/ally_engine.cjs
cp "$out/nodejs/ally_engine.d.ts" pkg/ally_engine.d.ts
cp "$out/nodejs/ally_engine.d.ts" pkg/ally_engine.d.cts
cp "$out/web/ally_engine.js" "$out/web/ally_engine.d.ts" pkg/web/
# The boundary's codec (js/codec.js), which each glue loads as a wasm-bindgen snippet.
cp -r "$out/nodejs/snippets" pkg/snippets
cp -r "$out/web/snippets" pkg/web/snippets
printf '{ "type": "module" }\n' > pkg/web/package.json
cp js/node.js js/deno.js js/workerd.js js/web.js js/web.d.ts js/index.d.ts js/package.json pkg/
# Node-only adapters: PostgreSQL storage (pg) and SMTP mail (nodemailer), ESM and CommonJS.
cp js/postgres.cjs js/postgres.js js/postgres.d.ts js/smtp.cjs js/smtp.js js/smtp.d.ts pkg/
# The operator's command (`npx ally-engine`).
cp js/cli.mjs pkg/
cp js/README.md pkg/README.md

# The pricing-only module, with the same entry files in its own folder.
optimise "$out/pricing/ally_engine_bg.wasm" pkg/pricing/ally_engine_bg.wasm
cp "$out/pricing/ally_engine.js" "$out/pricing/ally_engine.d.ts" pkg/pricing/web/
cp -r "$out/pricing/snippets" pkg/pricing/web/snippets
cp js/deno.js js/workerd.js js/web.js js/web.d.ts js/index.d.ts pkg/pricing/
cp js/pricing-node.js pkg/pricing/node.js

for module in pkg/ally_engine_bg.wasm pkg/pricing/ally_engine_bg.wasm; do
  raw=$(stat -c %s "$module")
  gz=$(gzip -9 -c "$module" | wc -c)
  printf '[build] %s: %d bytes raw, %d bytes gzipped (limit for size-bound hosts: 262144 raw)\n' "$module" "$raw" "$gz"
done
[ "$(stat -c %s pkg/pricing/ally_engine_bg.wasm)" -le 262144 ] \
  || { echo "[build] the pricing module is over 256 KiB" >&2; exit 1; }
