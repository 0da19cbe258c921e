//! Builds the page (TypeScript, bundled by esbuild; scripts/build-desktop-ui.sh) before Tauri
//! embeds it, then runs Tauri's build (capabilities checked against the plugin's permissions).

use std::path::Path;
use std::process::Command;

fn main() {
    // Read at run time: a build script compiled for one checkout is reused by another that
    // shares CARGO_TARGET_DIR (CI's clones), and `env!` would point it at the first checkout.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_string());
    let root = Path::new(&manifest_dir).join("../..");
    for input in [
        "examples/desktop/ui/index.html",
        "examples/desktop/ui/style.css",
        "examples/desktop/ui/tsconfig.json",
        "examples/desktop/ui/src",
        "examples/desktop/ui/package.json",
        "crates/tauri-plugin-cloudops-storage/guest-js",
        "package-lock.json",
        "scripts/build-desktop-ui.sh",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    let status = Command::new("bash")
        .arg(root.join("scripts/build-desktop-ui.sh"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("scripts/build-desktop-ui.sh failed ({s}): the example's page needs Node.js and npm"),
        Err(e) => panic!("could not run scripts/build-desktop-ui.sh: {e}"),
    }
    tauri_build::build();
}
