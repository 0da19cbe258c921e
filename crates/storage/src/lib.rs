//! # cloudops-storage-service
//!
//! Local-first, encrypted storage for an AI CloudOps assistant: chat history, the AWS
//! estate and encrypted backups. Data lives in an embedded Qdrant (qdrant-edge) under
//! one data dir; message text, titles and metadata are sealed with AES-256-GCM before they
//! reach the engine, under a data key wrapped by a key from the OS keychain, a passphrase,
//! a key file or an environment variable.
//!
//! ```no_run
//! use std::sync::Arc;
//! use cloudops_storage_service::{StorageConfig, StorageService, chat::{NewMessage, Role, SearchOptions}};
//! # async fn example() -> Result<(), cloudops_storage_service::StorageError> {
//! let config = StorageConfig::builder().with_data_dir("/tmp/store").with_env().build()?;
//! // One service for the life of the app, shared by every task (it is Send + Sync).
//! let service = Arc::new(StorageService::open(config).await?);
//! let ctx = service.chat.create_conversation("alice", "EC2 costs", serde_json::json!({})).await?;
//! let writer = {
//!     let (service, ctx) = (service.clone(), ctx.clone());
//!     tokio::spawn(async move {
//!         service.chat.append(&ctx, NewMessage::new(Role::User, "Why did my bill go up?")).await
//!     })
//! };
//! let searcher = {
//!     let service = service.clone();
//!     tokio::spawn(async move {
//!         service.chat.search_conversations("alice", "bill", &SearchOptions::default()).await
//!     })
//! };
//! writer.await.expect("task")?;
//! let _hits = searcher.await.expect("task")?;
//! // At exit: flush and close; later calls get a `shut_down` error, a second shutdown is Ok.
//! service.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod backup;
pub mod bench;
pub mod bench_estate;
pub mod bench_import;
pub mod bench_search;
mod blocking;
pub mod chat;
pub mod clock;
pub mod config;
pub mod crypto;
mod disk;
pub mod embed;
mod error;
pub mod estate;
mod fusion;
pub mod migrate;
pub mod progress;
mod service;
pub mod store;

pub use clock::now_ms;
pub use config::{ConfigError, ConfigKey, KeySourceKind, StorageConfig, StorageConfigBuilder};
pub use disk::{dir_size, disk_free_bytes};
pub use error::{ErrorKind, Result, StorageError};
pub use progress::{Phase, Progress, ProgressFn};
pub use service::{Health, ReindexReport, StorageService};
