//! # cloudops-storage-service
//!
//! Local-first, encrypted storage for an AI CloudOps assistant: chat history today, the AWS
//! estate and backups in later releases. Data lives in an embedded Qdrant (qdrant-edge) under
//! one data dir; message text, titles and metadata are sealed with AES-256-GCM before they
//! reach the engine, under a data key wrapped by a key from the OS keychain, a passphrase,
//! a key file or an environment variable.
//!
//! ```no_run
//! use cloudops_storage_service::{StorageConfig, StorageService, chat::{NewMessage, Role, HistoryRange}};
//! # async fn example() -> Result<(), cloudops_storage_service::StorageError> {
//! let config = StorageConfig::builder().with_data_dir("/tmp/store").with_env().build()?;
//! let service = StorageService::open(config).await?;
//! let ctx = service.chat.create_conversation("alice", "EC2 costs", serde_json::json!({})).await?;
//! service.chat.append(&ctx, NewMessage::new(Role::User, "Why did my bill go up?")).await?;
//! let last = service.chat.get_history(&ctx, HistoryRange::Last(5)).await?;
//! assert_eq!(last.len(), 1);
//! service.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod backup;
pub mod bench;
pub mod bench_estate;
pub mod bench_import;
pub mod bench_search;
pub mod chat;
pub mod clock;
pub mod config;
pub mod crypto;
mod disk;
pub mod embed;
mod error;
pub mod estate;
pub mod migrate;
mod service;
pub mod store;

pub use clock::now_ms;
pub use config::{ConfigError, ConfigKey, KeySourceKind, StorageConfig, StorageConfigBuilder};
pub use disk::{dir_size, disk_free_bytes};
pub use error::{ErrorKind, Result, StorageError};
pub use service::{Health, ReindexReport, StorageService};
