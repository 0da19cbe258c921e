#!/usr/bin/env bash
# What the Tauri plugin, the example app and its end-to-end test need on Linux, installed once
# when missing:
# - Debian: the WebKitGTK 4.1, GTK 3 and rsvg development packages (Tauri 2 links them, even
#   for its mock runtime), WebKitWebDriver (webkit2gtk-driver), Xvfb (xvfb, xauth);
# - crates.io: tauri-driver (the WebDriver front for Tauri apps).
# Needs root and apt-get for the Debian part; otherwise says what is missing.
set -euo pipefail

packages=()
pkg-config --exists webkit2gtk-4.1 gtk+-3.0 librsvg-2.0 2>/dev/null \
  || packages+=(pkg-config libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev)
command -v WebKitWebDriver >/dev/null || packages+=(webkit2gtk-driver)
command -v Xvfb >/dev/null || packages+=(xvfb xauth)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${packages[*]} (Tauri plugin and example app; first time only)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    echo "!! missing ${packages[*]} and no root to install them: the Tauri crates will not build" \
         "or the end-to-end test will skip (fail under CI=true)" >&2
    pkg-config --exists webkit2gtk-4.1 gtk+-3.0 librsvg-2.0 2>/dev/null || exit 1
  fi
fi
if ! command -v tauri-driver >/dev/null; then
  echo "== installing tauri-driver (cargo install; first time only)"
  env -u CARGO_TARGET_DIR -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo install tauri-driver --version 2.1.0 --locked --quiet
fi
