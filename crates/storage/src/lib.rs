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
//! use cloudops_storage_service::{NewMessage, Role, SearchOptions, StorageConfig, StorageService};
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

mod backup;
mod blocking;
mod chat;
mod clock;
mod config;
mod crypto;
mod disk;
mod embed;
mod error;
mod estate;
mod fusion;
mod input_file;
mod malloc;
mod migrate;
mod names;
#[cfg(test)]
mod parser_props;
pub mod platform;
mod progress;
mod rekey;
mod search_mode;
mod service;
#[cfg(not(feature = "backend"))]
mod store;
/// The storage engine layer (for white-box tests and out-of-crate backends; not a stable API).
#[cfg(feature = "backend")]
#[doc(hidden)]
pub mod store;
mod store_migrate;
mod store_open;

// The service, its life cycle and configuration.
pub use config::{
    default_data_dir, default_key_file, default_model_dir, ChatConfig, ConfigError, ConfigKey, EmbeddingConfig,
    EmbeddingProvider, KeyConfig, KeySourceKind, Passphrase, StorageConfig, StorageConfigBuilder, StoreConfig,
    CONFIG_FILE_NAME, DEFAULT_KEY_ENV_VAR, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PASSPHRASE_ENV_VAR,
};
pub use crypto::{take_key_secrets_from_env, DataKeyEpoch, KeyStatus, RecoveryKey, RecoveryKit, WrappedKeys};
pub use malloc::{bound_malloc_arenas, DEFAULT_MALLOC_ARENAS};
pub use service::{Health, ReindexReport, StorageService};
pub use store::{CollectionStats, JournalMark, StoreMode, StoreSync};
pub use store_migrate::StoreMigrationReport;

// Errors: every call returns a `StorageError`, with a stable `ErrorKind`.
pub use backup::BackupError;
pub use crypto::CryptoError;
pub use embed::EmbedError;
pub use error::{ErrorKind, Result, StorageError};
pub use store::StoreError;

// Progress of long work (import, reindex, sync, backup, restore).
pub use progress::{ignore as no_progress, Phase, Progress, ProgressFn};
pub use rekey::{RekeyReport, Resealed};

// Chat history: conversations, messages, search, prompt context, imports.
pub use chat::{
    ArchivedFilter, ChatStorage, ContextOptions, ContextPair, Conversation, ConversationHit, ConversationPage,
    ConversationStatus, ConversationUpdate, DeleteReceipt, HistoryRange, ImportOutcome, ImportedConversation, Message,
    MessageHit, NewMessage, PromptContext, Role, SearchOptions, SearchResults,
};
pub use migrate::node::{FailedFile, NodeImportReport};
pub use search_mode::SearchMode;

// The AWS estate: resources, filters, search, sync, AWS CLI imports.
pub use estate::import::{ImportIssue, ImportOptions, SourceFormat};
pub use estate::{
    AWSResource, EstateStorage, FileReport, IAMPermissions, ImportReport, ListingSync, ResourceConstraints,
    ResourceFilter, ResourceHit, StatsBy, SyncReport, SyncScope, UpsertReport, UserContext, GLOBAL_REGION,
    LAST_SYNCED_RESOLUTION_MS, TOMBSTONE_RETENTION_MS,
};

// Backups: encrypted snapshots, local and S3, retention, restore.
pub use backup::{
    BackupConfig, BackupManager, BackupStatus, Clock, JournalReplay, JournalSweep, Manifest, PruneReport,
    RestoreOptions, RestoreReport, RestoreTarget, S3Config, S3Target, ShipReport, SweepReport, UploadReport,
};

// Embedding models an application can pass to `StorageService::open_with_embedder`.
#[cfg(feature = "bert")]
pub use embed::BertEmbedder;
#[cfg(feature = "http")]
pub use embed::HttpEmbedder;
pub use embed::{Embedder, EmbeddingRecord};
