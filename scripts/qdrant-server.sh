#!/usr/bin/env bash
# A real Qdrant server (1.18.3) on 127.0.0.1 for the remote-store tests.
#
#   scripts/qdrant-server.sh build            build the server once from ../shared/vendor into
#                                             ~/.cache/qdrant-server-1.18.3 (QDRANT_SERVER_CACHE);
#                                             print the binary's path
#   scripts/qdrant-server.sh start DIR        one node, files in DIR; writes DIR/env
#   scripts/qdrant-server.sh cluster DIR      three nodes in distributed mode (peers bootstrapped
#                                             on loopback), files in DIR/node{1,2,3}; writes DIR/env
#   scripts/qdrant-server.sh kill DIR N       SIGKILL node N of a cluster (tests restart it)
#   scripts/qdrant-server.sh restart DIR N    start node N of a cluster again, same files and ports
#   scripts/qdrant-server.sh stop DIR         stop every node started in DIR
#
# DIR/env holds export lines: CLOUDOPS_TEST_QDRANT_URL (gRPC of the single node) and
# CLOUDOPS_TEST_QDRANT_STORAGE (its files, which the no-plaintext tests scan), or
# CLOUDOPS_TEST_QDRANT_CLUSTER_URLS (gRPC of node 1,2,3, comma separated) and
# CLOUDOPS_TEST_QDRANT_CLUSTER_DIR (for kill/restart from the tests).
#
# Each collection's write-ahead log is preallocated: 4 MiB segments here (QDRANT_WAL_CAPACITY_MB;
# the server's default is 32) keep hundreds of test collections small on disk.
#
# The binary is a test fixture built from the offline source bundle in ../shared/vendor (Qdrant
# 1.18.3, ~14 CPU-minutes the first time; see its README). It is never copied into the project.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: qdrant-server.sh build|start|cluster|kill|restart|stop [DIR] [N]}
cache=${QDRANT_SERVER_CACHE:-$HOME/.cache/qdrant-server-1.18.3}
# The bundle sits in ../shared beside the checkout; a clone of a local checkout (CI clones one)
# also finds it beside the checkout it was cloned from.
vendor=${QDRANT_VENDOR_DIR:-$here/../../shared/vendor}
if [ -z "${QDRANT_VENDOR_DIR:-}" ] && [ ! -d "$vendor" ]; then
  origin=$(git -C "$here" config --get remote.origin.url 2>/dev/null || true)
  if [ -n "$origin" ] && [ -d "$origin/../shared/vendor" ]; then vendor="$origin/../shared/vendor"; fi
fi
bin="$cache/target/ci/qdrant"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

need_binary() {
  if [ ! -x "$bin" ]; then
    echo "the Qdrant server is not built: run scripts/qdrant-server.sh build" >&2
    exit 1
  fi
}

# start_node DIR NAME: start the node whose ports and arguments are in DIR/NAME/ports.
start_node() {
  local node_dir="$1/$2"
  # shellcheck disable=SC1091
  source "$node_dir/ports"
  # The server writes `.qdrant-initialized` into its working directory: give it its own. The
  # subshell execs the server, so the recorded PID is the server's own (kill and stop reach it).
  (
    cd "$node_dir"
    exec env \
      QDRANT__SERVICE__HOST=127.0.0.1 \
      QDRANT__SERVICE__HTTP_PORT="$http_port" QDRANT__SERVICE__GRPC_PORT="$grpc_port" \
      QDRANT__STORAGE__STORAGE_PATH="$node_dir/storage" \
      QDRANT__STORAGE__SNAPSHOTS_PATH="$node_dir/snapshots" \
      QDRANT__TELEMETRY_DISABLED=true QDRANT__LOG_LEVEL=WARN \
      QDRANT__STORAGE__WAL__WAL_CAPACITY_MB="${QDRANT_WAL_CAPACITY_MB:-4}" \
      ${p2p_port:+QDRANT__CLUSTER__ENABLED=true QDRANT__CLUSTER__P2P__PORT=$p2p_port} \
      "$bin" $node_args > "$node_dir/qdrant.log" 2>&1
  ) &
  echo $! > "$node_dir/qdrant.pid"
}

# wait_ready DIR NAME: until the node answers /readyz (60 s at most).
wait_ready() {
  local node_dir="$1/$2"
  # shellcheck disable=SC1091
  source "$node_dir/ports"
  for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$node_dir/qdrant.pid")" 2>/dev/null; then
      echo "qdrant node $2 exited; its log:" >&2; tail -20 "$node_dir/qdrant.log" >&2; exit 1
    fi
    sleep 0.2
  done
  echo "qdrant node $2 did not become ready in 60 s; its log:" >&2; tail -20 "$node_dir/qdrant.log" >&2
  exit 1
}

# wait_peers DIR N: until node 1 lists N peers.
wait_peers() {
  # shellcheck disable=SC1091
  source "$1/node1/ports"
  for _ in $(seq 1 300); do
    peers=$(curl -fsS "http://127.0.0.1:$http_port/cluster" 2>/dev/null \
      | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["result"]["peers"]))' 2>/dev/null || echo 0)
    [ "$peers" = "$2" ] && return 0
    sleep 0.2
  done
  echo "the cluster did not reach $2 peers in 60 s" >&2
  exit 1
}

case "$cmd" in
build)
  if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
  if [ ! -x "$vendor/build-qdrant-server.sh" ]; then
    echo "no Qdrant server source bundle at $vendor (set QDRANT_VENDOR_DIR, or point QDRANT_URL at a server)" >&2
    exit 1
  fi
  # Qdrant's `ci` profile inherits `codegen-units = 1` from its LTO release profile: at
  # opt-level 0 that only keeps one core busy through every large crate. 16 units (cargo's
  # default) cut the cold build (see docs/PERFORMANCE.md, "CI time").
  CARGO_PROFILE_CI_CODEGEN_UNITS="${CARGO_PROFILE_CI_CODEGEN_UNITS:-16}" "$vendor/build-qdrant-server.sh" "$cache"
  ;;
start)
  dir=${2:?usage: qdrant-server.sh start DIR}
  need_binary
  mkdir -p "$dir/single"
  printf 'http_port=%s\ngrpc_port=%s\np2p_port=\nnode_args=\n' "$(free_port)" "$(free_port)" > "$dir/single/ports"
  start_node "$dir" single
  wait_ready "$dir" single
  # shellcheck disable=SC1091
  source "$dir/single/ports"
  {
    echo "export CLOUDOPS_TEST_QDRANT_URL=http://127.0.0.1:$grpc_port"
    echo "export CLOUDOPS_TEST_QDRANT_STORAGE=$dir/single/storage"
  } > "$dir/env"
  echo "qdrant server on 127.0.0.1:$grpc_port (gRPC), :$http_port (HTTP); files in $dir/single"
  ;;
cluster)
  dir=${2:?usage: qdrant-server.sh cluster DIR}
  need_binary
  first_p2p=""
  urls=""
  for n in 1 2 3; do
    mkdir -p "$dir/node$n"
    p2p=$(free_port)
    if [ -z "$first_p2p" ]; then
      first_p2p=$p2p
      args="--uri http://127.0.0.1:$p2p"
    else
      args="--bootstrap http://127.0.0.1:$first_p2p --uri http://127.0.0.1:$p2p"
    fi
    grpc=$(free_port)
    printf 'http_port=%s\ngrpc_port=%s\np2p_port=%s\nnode_args="%s"\n' "$(free_port)" "$grpc" "$p2p" "$args" > "$dir/node$n/ports"
    start_node "$dir" "node$n"
    wait_ready "$dir" "node$n"
    urls="${urls:+$urls,}http://127.0.0.1:$grpc"
  done
  wait_peers "$dir" 3
  {
    echo "export CLOUDOPS_TEST_QDRANT_CLUSTER_URLS=$urls"
    echo "export CLOUDOPS_TEST_QDRANT_CLUSTER_DIR=$dir"
  } > "$dir/env"
  echo "qdrant 3-node cluster: $urls (files in $dir)"
  ;;
kill)
  dir=${2:?usage: qdrant-server.sh kill DIR N}; n=${3:?usage: qdrant-server.sh kill DIR N}
  pid=$(cat "$dir/node$n/qdrant.pid")
  kill -9 "$pid"
  # Until it is gone: a restart while the dying process still holds its WAL locks fails.
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  ;;
restart)
  dir=${2:?usage: qdrant-server.sh restart DIR N}; n=${3:?usage: qdrant-server.sh restart DIR N}
  need_binary
  start_node "$dir" "node$n"
  wait_ready "$dir" "node$n"
  ;;
stop)
  dir=${2:?usage: qdrant-server.sh stop DIR}
  for pid_file in "$dir"/*/qdrant.pid; do
    [ -f "$pid_file" ] || continue
    pid=$(cat "$pid_file")
    kill "$pid" 2>/dev/null || true
    # Wait (10 s at most) so the folder can be removed right after.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pid_file"
  done
  ;;
*) echo "usage: qdrant-server.sh build|start|cluster|kill|restart|stop [DIR] [N]" >&2; exit 2 ;;
esac
