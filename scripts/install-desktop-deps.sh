#!/usr/bin/env bash
# The system libraries the Tauri plugin crate links against on Linux (Tauri 2 always links
# GTK 3 and WebKitGTK 4.1 there, even for its mock runtime): Debian's -dev packages, installed
# once when pkg-config cannot find them. Needs root and apt-get; otherwise says what is missing.
set -euo pipefail

if pkg-config --exists webkit2gtk-4.1 gtk+-3.0 librsvg-2.0 2>/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing WebKitGTK, GTK and rsvg development packages (Tauri plugin; first time only)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    pkg-config libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev >/dev/null
else
  echo "!! pkg-config finds no webkit2gtk-4.1 / gtk+-3.0 / librsvg-2.0 and there is no root to install"
  echo "   libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev: the Tauri plugin crate will not build" >&2
  exit 1
fi
