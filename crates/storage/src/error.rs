//! The umbrella error type of the library and its stable, machine-readable kind.
//!
//! Each layer has its own error enum listing only what that layer can hit
//! ([`ConfigError`], [`CryptoError`], [`StoreError`]); [`StorageError`] is their
//! superset so callers can use `?` everywhere. No variant ever carries plaintext,
//! key material or keyed tokens in its message.

use crate::backup::BackupError;
use crate::config::ConfigError;
use crate::crypto::CryptoError;
use crate::embed::EmbedError;
use crate::store::StoreError;

/// Any error the storage service can return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The configuration is invalid or unreadable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Key management, sealing or unsealing failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The vector store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A backup operation failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// Embedding failed, or the store was indexed with another model.
    #[error(transparent)]
    Embedding(#[from] EmbedError),
    /// A named thing does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of thing was looked up ("conversation", ...).
        what: &'static str,
        /// Its identifier.
        id: String,
    },
    /// The input was rejected before anything was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field or argument.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The data dir holds no store yet and creation was not requested.
    #[error("no store in {path}: run `cloudops-storage init` first")]
    NotInitialized {
        /// The data dir that was opened.
        path: String,
    },
    /// A stored record could not be decoded (corruption or a newer format).
    #[error("corrupt record {id} in {collection}: {reason}")]
    CorruptRecord {
        /// Collection holding the record.
        collection: &'static str,
        /// Point id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file-system operation outside the engine failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done ("reading", "creating directory", ...).
        action: &'static str,
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The service has been shut down.
    #[error("the storage service has been shut down")]
    ShutDown,
}

/// A stable classification of [`StorageError`], for JSON output and matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Invalid configuration.
    Config,
    /// The selected key source cannot be used.
    KeySourceUnavailable,
    /// Wrong key for this store.
    WrongKey,
    /// Ciphertext failed authentication.
    Tampered,
    /// Other key or crypto problem.
    Crypto,
    /// Another process owns the data dir.
    Locked,
    /// The data dir's disk is (nearly) full.
    DiskFull,
    /// The engine failed.
    Store,
    /// Something was not found.
    NotFound,
    /// Input rejected.
    InvalidInput,
    /// The store does not exist yet.
    NotInitialized,
    /// A stored record is unreadable.
    Corrupt,
    /// File-system error.
    Io,
    /// The service is shut down.
    ShutDown,
    /// A backup is corrupt, fails its checksum or its counts.
    CorruptBackup,
    /// Another backup failure (not found, disk space, I/O).
    Backup,
    /// The store's vectors were made by another embedding model: run `reindex`.
    EmbedderMismatch,
    /// The embedding model or endpoint failed.
    Embedding,
}

impl ErrorKind {
    /// Stable snake_case name, used in `--json` error output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::KeySourceUnavailable => "key_source_unavailable",
            ErrorKind::WrongKey => "wrong_key",
            ErrorKind::Tampered => "tampered",
            ErrorKind::Crypto => "crypto",
            ErrorKind::Locked => "locked",
            ErrorKind::DiskFull => "disk_full",
            ErrorKind::Store => "store",
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotInitialized => "not_initialized",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Io => "io",
            ErrorKind::ShutDown => "shut_down",
            ErrorKind::CorruptBackup => "corrupt_backup",
            ErrorKind::Backup => "backup",
            ErrorKind::EmbedderMismatch => "embedder_mismatch",
            ErrorKind::Embedding => "embedding",
        }
    }
}

impl StorageError {
    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::Backup(BackupError::Store(e)) => StorageError::kind_of_store(e),
            StorageError::Backup(BackupError::Crypto(e)) => StorageError::kind_of_crypto(e),
            StorageError::Backup(
                BackupError::Corrupt { .. } | BackupError::ChecksumMismatch { .. } | BackupError::CountMismatch { .. },
            ) => ErrorKind::CorruptBackup,
            StorageError::Backup(_) => ErrorKind::Backup,
            StorageError::Config(_) => ErrorKind::Config,
            StorageError::Embedding(EmbedError::Mismatch { .. }) => ErrorKind::EmbedderMismatch,
            StorageError::Embedding(_) => ErrorKind::Embedding,
            StorageError::Crypto(e) => StorageError::kind_of_crypto(e),
            StorageError::Store(e) => StorageError::kind_of_store(e),
            StorageError::NotFound { .. } => ErrorKind::NotFound,
            StorageError::InvalidInput { .. } => ErrorKind::InvalidInput,
            StorageError::NotInitialized { .. } => ErrorKind::NotInitialized,
            StorageError::CorruptRecord { .. } => ErrorKind::Corrupt,
            StorageError::Io { .. } => ErrorKind::Io,
            StorageError::ShutDown => ErrorKind::ShutDown,
        }
    }

    fn kind_of_crypto(e: &CryptoError) -> ErrorKind {
        match e {
            CryptoError::KeySourceUnavailable { .. } => ErrorKind::KeySourceUnavailable,
            CryptoError::WrongKey { .. } => ErrorKind::WrongKey,
            CryptoError::Tampered { .. } => ErrorKind::Tampered,
            _ => ErrorKind::Crypto,
        }
    }

    fn kind_of_store(e: &StoreError) -> ErrorKind {
        match e {
            StoreError::Locked { .. } => ErrorKind::Locked,
            StoreError::DiskFull { .. } => ErrorKind::DiskFull,
            _ => ErrorKind::Store,
        }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        StorageError::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Result alias for the library.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
