#!/usr/bin/env bash
# Check the workspace for the desktops the app ships to, from this Linux machine.
#
#   scripts/cross-check.sh [TARGET...]
#
# Default targets: x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin (CI passes the
# first two). For each target, clippy with -D warnings (which is `cargo check` plus the lints)
# over every target kind (lib, bins, tests, benches, examples) of:
#   - the workspace: the library with its default features, the CLI, the Tauri plugin and the
#     example app;
#   - the library with --no-default-features.
# Zero errors and zero warnings, or the script fails.
#
# One exception, printed when it applies: on Apple targets the Tauri plugin and the example app
# are left out (CROSS_CHECK_APPLE_TAURI=1 puts them back). Next to Tauri, objc2-core-foundation
# is built with its `objc2` feature, which brings objc2's `IntoIterator for &Retained<T>` into
# the dependencies of qdrant-edge (through sysinfo), and qdrant-edge 0.7.2 then fails to
# type-check (E0275, overflow at src/segment/common/anonymize.rs:107). qdrant-edge 0.9.0 fixes
# that line (a turbofish) and takes sysinfo without default features; the engine upgrade lifts
# the exception. The library and the CLI are checked for Apple targets in full.
#
# rustup cannot fetch other targets' standard libraries here, so this uses Debian's Rust 1.96
# (`rustc-web`, `cargo-web`, `rust-web-src`, `rust-web-clippy`: /usr/bin/cargo, /usr/bin/rustc)
# with `-Zbuild-std` (RUSTC_BOOTSTRAP=1), which builds std for the target from its source. It
# never touches the project's own 1.95 toolchain: both are called by path, and the target dir
# is its own (CROSS_TARGET_DIR, default ~/.cache/cloudops-storage/cross-target).
# C code in dependencies (zstd, ring, aws-lc) is compiled for the target by its build scripts:
# for Windows with Debian's mingw-w64, for macOS with zig (the `ziglang` package on PyPI ships
# zig and the macOS libc headers), through the wrappers this script writes.
#
# Installs what is missing (Debian packages need root; pip installs ziglang for this user).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin)
cache="${CLOUDOPS_CACHE:-$HOME/.cache/cloudops-storage}"
export CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-$cache/cross-target}"
mkdir -p "$CARGO_TARGET_DIR"

packages=(rustc-web cargo-web rust-web-src rust-web-clippy)
for t in "${targets[@]}"; do
  case "$t" in *windows-gnu) packages+=(mingw-w64) ;; esac
done
scripts/install-debian-packages.sh "${packages[@]}"

# zig as the C compiler and archiver for Apple targets, behind wrappers that drop the flags the
# `cc` crate adds for Apple's clang (zig takes its target from -target) and turn GCC's -march
# into zig's -mcpu (qdrant-edge builds SIMD kernels with -march=haswell and
# -march=armv8.2-a+fp16; zig's aarch64-macos baseline, the Apple M1, already has fp16).
wrappers="$cache/cross-cc"
mkdir -p "$wrappers"
python=$(command -v python3)
apple_cc() {
  local triple=$1 zig_target=$2
  "$python" -c 'import ziglang' 2>/dev/null || {
    echo "== installing ziglang from PyPI (zig: a C compiler with macOS headers)"
    "$python" -m pip install --quiet ziglang
  }
  cat > "$wrappers/cc-$triple" <<SH
#!/usr/bin/env bash
args=()
skip=0
for a in "\$@"; do
  if [ \$skip = 1 ]; then skip=0; continue; fi
  case "\$a" in
    -arch) skip=1 ;;
    --target=*|-mmacosx-version-min=*|-mmacos-version-min=*) ;;
    -march=armv8*) ;;
    -march=*) args+=("-mcpu=\${a#-march=}") ;;
    *) args+=("\$a") ;;
  esac
done
exec $python -m ziglang cc -target $zig_target "\${args[@]}"
SH
  printf '#!/usr/bin/env bash\nexec %s -m ziglang ar "$@"\n' "$python" > "$wrappers/ar-$triple"
  chmod +x "$wrappers/cc-$triple" "$wrappers/ar-$triple"
  local var=${triple//-/_}
  export "CC_$var=$wrappers/cc-$triple" "AR_$var=$wrappers/ar-$triple"
}

# Debian's toolchain, by path, and first on PATH for the cargo-clippy and clippy-driver that
# cargo looks up: never the rustup proxies in ~/.cargo/bin.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export PATH="/usr/bin:$PATH"
export CARGO_TERM_COLOR=never
cargo=/usr/bin/cargo
echo "== $($cargo --version), $($RUSTC --version)"

status=0
for t in "${targets[@]}"; do
  case "$t" in
    aarch64-apple-darwin) apple_cc "$t" aarch64-macos ;;
    x86_64-apple-darwin) apple_cc "$t" x86_64-macos ;;
  esac
  workspace="--workspace"
  case "$t" in
    *-apple-darwin)
      if [ "${CROSS_CHECK_APPLE_TAURI:-0}" != 1 ]; then
        workspace="--workspace --exclude tauri-plugin-cloudops-storage --exclude cloudops-desktop-example"
        echo "-- $t: the Tauri plugin and the example app are left out: qdrant-edge 0.7.2 does not type-check next to objc2 (see this script's header)"
      fi
      ;;
  esac
  for run in "$workspace" "-p cloudops-storage-service --no-default-features"; do
    started=$SECONDS
    echo "== $t: clippy $run --all-targets -- -D warnings"
    # shellcheck disable=SC2086
    if $cargo clippy -Zbuild-std=std,panic_abort --target "$t" $run --all-targets --quiet -- -D warnings; then
      echo "-- $t ($run): clean in $((SECONDS - started)) s"
    else
      echo "!! $t ($run): errors above ($((SECONDS - started)) s)" >&2
      status=1
    fi
  done
done
exit $status
