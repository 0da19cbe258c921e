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
//!
//! Settings come, in rising precedence, from `plugins."cloudops-storage"` in
//! `tauri.conf.json` (the keys of the service's `config.toml`, as JSON), the `CLOUDOPS_*`
//! environment, and [`Builder::config`]. The data dir defaults to
//! `<app data dir>/cloudops-storage`.

mod bindings;
mod commands;
mod error;
mod events;
mod scope;
mod state;

use std::time::Duration;

use cloudops_storage_service::StorageConfig;
use tauri::plugin::TauriPlugin;
use tauri::{Manager, RunEvent, Runtime};

pub use bindings::typescript_bindings;
/// Call first in the app's `main` (see its safety note): key secrets out of the environment.
pub use cloudops_storage_service::take_key_secrets_from_env;
pub use error::{Error, ErrorPayload, Result};
pub use events::{StorageEvent, EVENT};
pub use scope::{ImportScope, IMPORT_ROOTS_ENV};
pub use state::Storage;

/// The plugin's name: commands are `plugin:cloudops-storage|<command>`.
pub const PLUGIN_NAME: &str = "cloudops-storage";

/// How often background state is checked for [`StorageEvent`]s by default.
pub const DEFAULT_EVENT_INTERVAL: Duration = Duration::from_secs(2);

/// Configures the plugin.
#[derive(Debug)]
pub struct Builder {
    config: Option<StorageConfig>,
    import_roots: Option<Vec<std::path::PathBuf>>,
    event_interval: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            config: None,
            import_roots: None,
            event_interval: DEFAULT_EVENT_INTERVAL,
        }
    }
}

impl Builder {
    /// Defaults: settings from `tauri.conf.json` and `CLOUDOPS_*`, the store in
    /// `<app data dir>/cloudops-storage`.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Use this configuration instead of `tauri.conf.json` and the environment.
    pub fn config(mut self, config: StorageConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// How often background state (backup results, pending embeddings) is checked for
    /// events. Default: [`DEFAULT_EVENT_INTERVAL`].
    pub fn event_interval(mut self, every: Duration) -> Self {
        self.event_interval = every;
        self
    }

    /// The folders whose files a page may import (`import_files`, `import_node`), instead of
    /// `import_roots` in `tauri.conf.json` or `CLOUDOPS_IMPORT_ROOTS`. Without any, a page
    /// imports nothing.
    pub fn import_roots(mut self, roots: impl IntoIterator<Item = std::path::PathBuf>) -> Self {
        self.import_roots = Some(roots.into_iter().collect());
        self
    }

    /// The plugin.
    pub fn build<R: Runtime>(self) -> TauriPlugin<R, Option<serde_json::Value>> {
        let Builder {
            config: configured,
            import_roots,
            event_interval,
        } = self;
        tauri::plugin::Builder::<R, Option<serde_json::Value>>::new(PLUGIN_NAME)
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
            .setup(move |app, api| {
                let (conf, conf_roots) = split_import_roots(api.config().as_ref())?;
                let config = match configured {
                    Some(config) => config,
                    None => app_config(app, conf)?,
                };
                let roots = match (import_roots, std::env::var_os(IMPORT_ROOTS_ENV)) {
                    (Some(roots), _) => roots,
                    (None, Some(listed)) => std::env::split_paths(&listed).collect(),
                    (None, None) => conf_roots,
                };
                app.manage(ImportScope::new(roots));
                let storage = tauri::async_runtime::block_on(Storage::open(config));
                app.manage(storage);
                events::watch(app.clone(), event_interval);
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
pub fn init<R: Runtime>() -> TauriPlugin<R, Option<serde_json::Value>> {
    Builder::new().build()
}

/// The configuration from `tauri.conf.json` (when present) and the environment, with the
/// data dir defaulting to the app's.
fn app_config<R: Runtime>(
    app: &tauri::AppHandle<R>,
    mut conf: serde_json::Value,
) -> std::result::Result<StorageConfig, Box<dyn std::error::Error>> {
    let Some(fields) = conf.as_object_mut() else {
        return Err(format!("plugins.{PLUGIN_NAME} in tauri.conf.json must be an object").into());
    };
    if !fields.contains_key("data_dir") {
        let dir = app.path().app_data_dir()?.join(PLUGIN_NAME);
        fields.insert("data_dir".into(), serde_json::Value::String(dir.display().to_string()));
    }
    let base: StorageConfig =
        serde_json::from_value(conf).map_err(|e| format!("plugins.{PLUGIN_NAME} in tauri.conf.json: {e}"))?;
    Ok(StorageConfig::builder()
        .with_base(base)
        .with_env()
        .with_create_if_missing(true)
        .build()?)
}

/// The plugin's own key of `tauri.conf.json`, `import_roots` (a list of folders), taken out of
/// the service's settings.
fn split_import_roots(
    from_conf: Option<&serde_json::Value>,
) -> std::result::Result<(serde_json::Value, Vec<std::path::PathBuf>), Box<dyn std::error::Error>> {
    let mut conf = from_conf.cloned().unwrap_or_else(|| serde_json::json!({}));
    let roots = match conf.as_object_mut().and_then(|fields| fields.remove("import_roots")) {
        None => Vec::new(),
        Some(listed) => serde_json::from_value(listed)
            .map_err(|e| format!("plugins.{PLUGIN_NAME}.import_roots in tauri.conf.json must list folders: {e}"))?,
    };
    Ok((conf, roots))
}
