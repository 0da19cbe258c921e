#!/usr/bin/env bash
# Builds the JavaScript side: installs the pinned npm packages (package-lock.json) when missing,
# builds the plugin's TypeScript API (guest-js -> dist-js, type-checked by tsc) and bundles the
# example app's page (type-checked by tsc, bundled by esbuild into examples/desktop/ui/dist).
# The example's build.rs runs it, so `cargo build` of the example needs Node.js and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null; then
  echo "!! npm not found: the example app's page (and the plugin's TypeScript API) need Node.js and npm" >&2
  exit 1
fi
if [ ! -d node_modules/typescript ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build -w tauri-plugin-cloudops-storage-api
npm run --silent build -w cloudops-desktop-example-ui
