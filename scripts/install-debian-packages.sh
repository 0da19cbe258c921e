#!/usr/bin/env bash
# Install the Debian packages named on the command line that are not installed yet, in one apt
# run (needs root and apt-get; otherwise names what is missing and fails).
#
#   scripts/install-debian-packages.sh PACKAGE...
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing ${missing[*]} (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "!! missing Debian packages ${missing[*]} and no root to install them" >&2
  exit 1
fi
