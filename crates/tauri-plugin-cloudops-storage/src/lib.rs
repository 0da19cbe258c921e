//! # tauri-plugin-cloudops-storage
//!
//! The cloudops-storage service (encrypted chat history and AWS estate on an embedded Qdrant)
//! as Tauri 2 commands. The service opens in the plugin's setup, is managed as state, and is
//! shut down when the app exits, so nothing acknowledged is lost when the window closes.
//!
//! ```ignore
//! tauri::Builder::default()
//!     .plugin(tauri_plugin_cloudops_storage::init())
//!     .run(tauri::generate_context!())
//!     .expect("error while running tauri application");
//! ```

mod commands;
mod error;
mod state;

use cloudops_storage_service::StorageConfig;
use tauri::plugin::TauriPlugin;
use tauri::{Manager, RunEvent, Runtime};

pub use error::{Error, Result};
pub use state::Storage;

/// The plugin's name: commands are `plugin:cloudops-storage|<command>`.
pub const PLUGIN_NAME: &str = "cloudops-storage";

/// Configures the plugin.
#[derive(Debug, Default)]
pub struct Builder {
    config: Option<StorageConfig>,
}

impl Builder {
    /// Defaults: the store in `<app data dir>/cloudops-storage`, settings from `CLOUDOPS_*`.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Use this configuration instead (data dir, key source, embedding, backups).
    pub fn config(mut self, config: StorageConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// The plugin.
    pub fn build<R: Runtime>(self) -> TauriPlugin<R> {
        let configured = self.config;
        tauri::plugin::Builder::new(PLUGIN_NAME)
            .invoke_handler(tauri::generate_handler![
                commands::chat::create_conversation,
                commands::chat::append,
                commands::chat::get_history,
                commands::chat::list_conversations,
                commands::chat::rename,
                commands::chat::archive,
                commands::chat::delete_conversation,
                commands::chat::erase_user,
                commands::chat::search_conversations,
                commands::chat::context_for_prompt,
                commands::chat::import_node,
                commands::estate::import_files,
                commands::estate::upsert_resources,
                commands::estate::search,
                commands::estate::get,
                commands::estate::stats,
                commands::estate::sync,
                commands::backup::backup_now,
                commands::backup::list_backups,
                commands::backup::verify_backup,
                commands::backup::restore_backup,
                commands::backup::backup_status,
                commands::key_status,
                commands::rotate_key,
                commands::health,
            ])
            .setup(move |app, _api| {
                let config = match configured {
                    Some(config) => config,
                    None => default_config(app)?,
                };
                let storage = tauri::async_runtime::block_on(Storage::open(config));
                app.manage(storage);
                Ok(())
            })
            .on_event(|app, event| {
                if let RunEvent::Exit = event {
                    if let Some(storage) = app.try_state::<Storage>() {
                        tauri::async_runtime::block_on(storage.shutdown());
                    }
                }
            })
            .build()
    }
}

/// The plugin with its defaults.
pub fn init<R: Runtime>() -> TauriPlugin<R> {
    Builder::new().build()
}

fn default_config<R: Runtime>(
    app: &tauri::AppHandle<R>,
) -> std::result::Result<StorageConfig, Box<dyn std::error::Error>> {
    let data_dir = app.path().app_data_dir()?.join(PLUGIN_NAME);
    Ok(StorageConfig::builder()
        .with_env()
        .with_data_dir(data_dir)
        .with_create_if_missing(true)
        .build()?)
}
