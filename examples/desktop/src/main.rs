//! The example desktop app: the cloudops-storage plugin and a page using its TypeScript API.
//!
//! Settings come from `tauri.conf.json` (`plugins."cloudops-storage"`) and `CLOUDOPS_*`; the
//! store lives in the app's data dir unless `CLOUDOPS_DATA_DIR` says otherwise. The page may
//! import files from the user's Downloads, Documents and Desktop folders, or from the folders
//! `CLOUDOPS_IMPORT_ROOTS` lists.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // SAFETY: first thing in main, before the logger, Tauri and WebKit start threads. The
    // key secrets then never reach the WebKit helper processes' environment.
    unsafe { tauri_plugin_cloudops_storage::take_key_secrets_from_env(&[]) };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let app = tauri::Builder::default()
        .plugin(plugin().build())
        .run(tauri::generate_context!());
    if let Err(e) = app {
        eprintln!("cloudops-desktop-example: {e}");
        std::process::exit(1);
    }
}

/// The plugin, with the folders the page may import from.
fn plugin() -> tauri_plugin_cloudops_storage::Builder {
    let builder = tauri_plugin_cloudops_storage::Builder::new();
    if std::env::var_os(tauri_plugin_cloudops_storage::IMPORT_ROOTS_ENV).is_some() {
        return builder;
    }
    match std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE")) {
        Some(home) => {
            let home = std::path::PathBuf::from(home);
            builder.import_roots(["Downloads", "Documents", "Desktop"].map(|folder| home.join(folder)))
        }
        None => builder,
    }
}
