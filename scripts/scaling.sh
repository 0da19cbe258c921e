#!/usr/bin/env bash
# The scaling table and plot of docs/PERFORMANCE.md: the chat, search and estate benches at
# 10k, 100k and 1M (override with SCALING_SIZES="10000 100000"), their JSON kept in
# docs/scaling/<workload>-<size>.json, then docs/scaling.svg and a Markdown table on stdout
# (scripts/plot-scaling.py). The 1M runs take about an hour on a 2-core machine; a size whose
# JSON is already there is skipped (delete it to measure again).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cloudops-storage/target}"
cargo build --release -p cloudops-storage-cli --quiet
bin="$CARGO_TARGET_DIR/release/cloudops-storage"
out=docs/scaling
mkdir -p "$out"
for n in ${SCALING_SIZES:-10000 100000 1000000}; do
  run() {
    local name=$1; shift
    if [ -s "$out/$name-$n.json" ]; then echo "== $name at $n: kept"; return; fi
    echo "== $name at $n  [$(date +%T)]"
    # Written beside, then moved: an interrupted run leaves no half file behind.
    /usr/bin/time -f "$name $n: %e s wall, %U s user, %S s system, %M KiB peak" \
      "$bin" bench "$@" --json > "$out/$name-$n.json.part"
    mv "$out/$name-$n.json.part" "$out/$name-$n.json"
  }
  run chat --messages "$n"
  # One user with 1,000 messages up to 100k; at 1M the targets are for a user with 10,000.
  run search --search --messages "$n" --samples 500 --per-user "$(( n >= 1000000 ? 10000 : 1000 ))"
  run estate --resources "$n" --samples 500
  run estate-dense --resources "$n" --dense --samples 500
done
python3 scripts/plot-scaling.py "$out" docs/scaling.svg
