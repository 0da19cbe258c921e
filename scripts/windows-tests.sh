#!/usr/bin/env bash
# The library's unit and integration tests built for Windows (x86_64-pc-windows-gnu) and run
# under Wine, on this Linux machine.
#
#   scripts/windows-tests.sh [TEST ARGS...]     e.g. scripts/windows-tests.sh -- platform::
#
# Builds with Debian's Rust 1.96 and -Zbuild-std (like scripts/cross-check.sh), links with
# mingw-w64, and runs every test binary of cloudops-storage-service through wine64 (Debian
# packages, installed when missing). Keyword-only: the embedding model, the Qdrant server and
# the keychain are not given to the Windows binaries; Garage is, when installed (S3 tests).
# Each binary's summary line and a final tally are printed; the per-test results are in
# $CROSS_TARGET_DIR/windows-tests/*.log. Not part of CI (it does not fit in its time).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-pc-windows-gnu
cache="${CLOUDOPS_CACHE:-$HOME/.cache/cloudops-storage}"
export CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-$cache/cross-target}"
logs="$CARGO_TARGET_DIR/windows-tests"
mkdir -p "$logs"

scripts/install-debian-packages.sh rustc-web cargo-web rust-web-src mingw-w64 wine wine64
wine=$(command -v wine64 || command -v wine)

export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export PATH="/usr/bin:$PATH"
export CARGO_TERM_COLOR=never
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
# Links add one object (scripts/windows/wine-file-allocation.c: Wine 8 does not implement the
# FileAllocationInfo call that qdrant-edge's WAL preallocation and std's File::create make). It
# comes in through a wrapper of the same name first on PATH, because a changed linker setting
# would make cargo rebuild everything, std included.
shims="$CARGO_TARGET_DIR/wine-shims"
mkdir -p "$shims"
x86_64-w64-mingw32-gcc -O2 -Wall -c scripts/windows/wine-file-allocation.c -o "$shims/new.o"
if ! cmp -s "$shims/new.o" "$shims/wine-file-allocation.o"; then
  # cargo does not see a changed object behind the linker: the test executables are removed
  # so that they are linked again (their crate is compiled again for it).
  mv "$shims/new.o" "$shims/wine-file-allocation.o"
  rm -f "$CARGO_TARGET_DIR/$target/release/deps/"{it,cloudops_storage_service}-*.exe
fi
rm -f "$shims/new.o"
cat > "$shims/x86_64-w64-mingw32-gcc" <<LINK
#!/bin/sh
# Compiles (-c, -E, -S) pass through; links get the shim object first, before the libraries
# are searched, so that kernel32's definitions are never pulled in.
for arg; do case \$arg in -c|-E|-S) exec /usr/bin/x86_64-w64-mingw32-gcc "\$@";; esac; done
exec /usr/bin/x86_64-w64-mingw32-gcc "$shims/wine-file-allocation.o" "\$@"
LINK
chmod +x "$shims/x86_64-w64-mingw32-gcc"
export PATH="$shims:$PATH"
# A Wine prefix of our own, made once; no desktop integration, no debug chatter.
export WINEPREFIX="$cache/wine"
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
[ -d "$WINEPREFIX" ] || "$wine" wineboot --init >/dev/null 2>&1 || true
# Wine 8 has no bcryptprimitives.dll, where Rust's std finds ProcessPrng: a shim on top of
# RtlGenRandom goes into this prefix (never anywhere else).
shim="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [ ! -f "$shim" ]; then
  x86_64-w64-mingw32-gcc -O2 -shared -o "$shim" scripts/windows/bcryptprimitives.c -ladvapi32 -Wl,--kill-at
fi

echo "== building the library's tests for $target"
started=$SECONDS
/usr/bin/cargo test -Zbuild-std --target $target -p cloudops-storage-service --release --no-run \
  --message-format=json-render-diagnostics > "$logs/build.json"
echo "-- built in $((SECONDS - started)) s"
mapfile -t binaries < <(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])
' "$logs/build.json")

# Garage on loopback serves the S3 tests, when installed.
garage_dir=""
cleanup() { if [ -n "$garage_dir" ]; then scripts/garage.sh stop "$garage_dir"; rm -rf "$garage_dir"; fi; }
trap cleanup EXIT
if command -v garage >/dev/null; then
  garage_dir=$(mktemp -d)
  scripts/garage.sh start "$garage_dir"
  # shellcheck disable=SC1091
  source "$garage_dir/env"
fi

passed=0 failed=0 ignored=0 status=0
for bin in "${binaries[@]}"; do
  name=$(basename "$bin" .exe)
  echo "== $name under $("$wine" --version)"
  log="$logs/$name.log"
  if (cd "$(dirname "$bin")" && "$wine" "$bin" --test-threads=2 "$@") > "$log" 2>&1; then :; else status=1; fi
  summary=$(grep -E "^test result:" "$log" | tail -1 || true)
  echo "${summary:-!! no summary: the binary did not finish (see $log)}"
  grep -E "^test .* FAILED$" "$log" || true
  if [[ $summary =~ ([0-9]+)\ passed\;\ ([0-9]+)\ failed\;\ ([0-9]+)\ ignored ]]; then
    passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2])); ignored=$((ignored + BASH_REMATCH[3]))
  else
    failed=$((failed + 1))
  fi
done
echo "windows: $passed passed, $failed failed, $ignored ignored"
exit $status
