#!/usr/bin/env bash
# Print the path of a headless Chromium for the browser test, fetching one if needed.
# Order: $PMPPRAG_CHROMIUM, a chromium/chrome on PATH, else the Chromium build that the npm
# package @sparticuz/chromium ships inside its tarball (the npm registry is reachable where
# model hubs are not; no root needed). The package unpacks its binary to /tmp/chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PMPPRAG_CHROMIUM:-}" ]]; then echo "$PMPPRAG_CHROMIUM"; exit 0; fi
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null; then command -v "$name"; exit 0; fi
done
command -v node >/dev/null || { echo "no chromium on PATH and no node to fetch one: install chromium or set PMPPRAG_CHROMIUM" >&2; exit 1; }
dir=.cache/browser
if [[ ! -d $dir/node_modules/@sparticuz/chromium ]]; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --silent @sparticuz/chromium@147.0.0 >&2
fi
cd "$dir"
node --input-type=module -e 'import c from "@sparticuz/chromium"; console.log(await c.executablePath());'
