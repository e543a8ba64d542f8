#!/usr/bin/env bash
# The main job: build the package, then serve the pricing preview (www/) on localhost.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/build.sh
exec node scripts/serve.mjs "${PORT:-8080}"
