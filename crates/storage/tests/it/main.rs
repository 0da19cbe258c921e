//! Service-level tests on a real on-disk qdrant-edge store. One binary (every test binary
//! relinks the engine), one module per concern.

mod api;
mod backup;
mod chat;
mod common;
mod distrust;
mod epochs;
mod estate;
mod estate_eval;
mod estate_files;
mod estate_import;
mod eval;
mod faults;
mod head;
mod lifecycle;
mod migrate;
mod recovery;
#[cfg(feature = "remote")]
mod remote;
mod search;
mod secret_env;
mod security;

/// A file-key config rooted at `dir` (data in `dir/data`, key in `dir/master.key`), shared by
/// a test and the child process it spawns.
pub(crate) fn config_in(dir: &std::path::Path) -> cloudops_storage_service::StorageConfig {
    use cloudops_storage_service::ConfigKey;
    cloudops_storage_service::StorageConfig::builder()
        .with_data_dir(dir.join("data"))
        .with_config(ConfigKey::KeySource, "file")
        .with_config(ConfigKey::KeyFile, dir.join("master.key").display().to_string())
        .with_config(ConfigKey::EmbeddingProvider, "none")
        .build()
        .expect("valid config")
}
