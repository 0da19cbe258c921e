//! The example desktop app: the cloudops-storage plugin and a page using its TypeScript API.
//!
//! Settings come from `tauri.conf.json` (`plugins."cloudops-storage"`) and `CLOUDOPS_*`; the
//! store lives in the app's data dir unless `CLOUDOPS_DATA_DIR` says otherwise.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_cloudops_storage::init())
        .run(tauri::generate_context!());
    if let Err(e) = app {
        eprintln!("cloudops-desktop-example: {e}");
        std::process::exit(1);
    }
}
