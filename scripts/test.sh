#!/usr/bin/env bash
# The project's test command (README "Set-up", step 2; .ci/run calls it too).
#
# Runs the whole suite, unit, integration and CLI end-to-end tests, on real on-disk
# qdrant-edge stores. The release profile is used on purpose: the demo is built with it too,
# so the engine (a ~13-minute cold build on 2 cores) is compiled once for both.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --workspace --release "$@"
