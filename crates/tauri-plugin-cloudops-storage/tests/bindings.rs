//! `guest-js/bindings.ts` is what the Rust types generate: a change to a type that crosses
//! IPC without regenerating the bindings fails here.

use std::path::Path;

#[test]
fn guest_js_bindings_match_the_rust_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-js/bindings.ts");
    let generated = tauri_plugin_cloudops_storage::typescript_bindings();
    if std::env::var_os("CLOUDOPS_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date: regenerate with \
         CLOUDOPS_BLESS=1 cargo test -p tauri-plugin-cloudops-storage --test bindings",
        path.display()
    );
}
