#!/usr/bin/env bash
# A real single-node S3 server (Garage) on 127.0.0.1 for the backup tests.
#
#   scripts/garage.sh install     install Garage when missing (cargo install, ~12 CPU-minutes)
#   scripts/garage.sh start DIR   start Garage with its files in DIR, create a bucket and a
#                                 key, and write DIR/env (export lines for the tests)
#   scripts/garage.sh stop DIR    stop it
#
# Garage comes from crates.io (`cargo install garage --locked`, cached in ~/.cargo/bin), built
# with what a single test node needs only: the SQLite metadata engine (bundled), no LMDB, no
# metrics exporter, no K2V API.
set -euo pipefail
cmd=${1:?usage: garage.sh install | start DIR | stop DIR}
if [ "$cmd" = install ]; then
  command -v garage >/dev/null && exit 0
  echo "== installing garage 2.5.0 (S3 server for the backup tests; first time only)"
  # Its own build: not the project's target dir, not the project's lint wrapper.
  exec env -u CARGO_TARGET_DIR -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS \
    cargo install garage --version 2.5.0 --locked --quiet --no-default-features --features bundled-libs,sqlite
fi
dir=${2:?usage: garage.sh start|stop DIR}
conf="$dir/garage.toml"
g() { garage -c "$conf" "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

case "$cmd" in
start)
  command -v garage >/dev/null || { echo "garage is not installed (scripts/garage.sh install)" >&2; exit 1; }
  mkdir -p "$dir/meta" "$dir/data"
  s3_port=$(free_port); rpc_port=$(free_port); admin_port=$(free_port)
  secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  cat > "$conf" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
TOML
  garage -c "$conf" server > "$dir/garage.log" 2>&1 &
  echo $! > "$dir/garage.pid"
  for _ in $(seq 1 100); do
    g status >/dev/null 2>&1 && break
    sleep 0.2
  done
  node=$(g node id -q | cut -d@ -f1)
  g layout assign -z dc1 -c 1G "$node" >/dev/null
  g layout apply --version 1 >/dev/null
  g bucket create cloudops-test >/dev/null
  key_out=$(g key create cloudops-test-key)
  key_id=$(echo "$key_out" | awk '/Key ID/ {print $NF}')
  secret_key=$(echo "$key_out" | awk '/Secret key/ {print $NF}')
  g bucket allow --read --write --owner cloudops-test --key cloudops-test-key >/dev/null
  cat > "$dir/env" <<ENV
export CLOUDOPS_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
export CLOUDOPS_TEST_S3_BUCKET=cloudops-test
export CLOUDOPS_TEST_GARAGE_CONFIG=$conf
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret_key
export AWS_REGION=garage
ENV
  echo "garage S3 on 127.0.0.1:$s3_port (files in $dir)"
  ;;
stop)
  if [ -f "$dir/garage.pid" ]; then
    kill "$(cat "$dir/garage.pid")" 2>/dev/null || true
    rm -f "$dir/garage.pid"
  fi
  ;;
*) echo "usage: garage.sh start|stop DIR" >&2; exit 2 ;;
esac
