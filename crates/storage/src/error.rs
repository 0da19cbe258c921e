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

/// A stable classification of [`StorageError`], for JSON output and matching; serialises as
/// its snake_case name ([`ErrorKind::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(rename_all = "snake_case"))]
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
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 18] = [
        ErrorKind::Config,
        ErrorKind::KeySourceUnavailable,
        ErrorKind::WrongKey,
        ErrorKind::Tampered,
        ErrorKind::Crypto,
        ErrorKind::Locked,
        ErrorKind::DiskFull,
        ErrorKind::Store,
        ErrorKind::NotFound,
        ErrorKind::InvalidInput,
        ErrorKind::NotInitialized,
        ErrorKind::Corrupt,
        ErrorKind::Io,
        ErrorKind::ShutDown,
        ErrorKind::CorruptBackup,
        ErrorKind::Backup,
        ErrorKind::EmbedderMismatch,
        ErrorKind::Embedding,
    ];

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

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// `{ "kind": "not_found", "message": "conversation c1 not found" }`: what an application
/// passes across an IPC boundary (the CLI prints the same under `"error"` with `--json`).
/// The message carries the causes, `: `-separated; like every message of this type it holds
/// no plaintext, key material or keyed token.
impl serde::Serialize for StorageError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct("StorageError", 2)?;
        s.serialize_field("kind", &self.kind())?;
        s.serialize_field("message", &self.message())?;
        s.end()
    }
}

impl From<crate::blocking::TaskFailed> for StorageError {
    fn from(e: crate::blocking::TaskFailed) -> Self {
        StorageError::Store(StoreError::Task(e))
    }
}

impl StorageError {
    /// This error and its causes, `: `-separated.
    pub fn message(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            // `#[error(transparent)]` variants repeat their source's text.
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        message
    }

    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::Backup(BackupError::Store(e)) => StorageError::kind_of_store(e),
            StorageError::Backup(BackupError::Crypto(e)) => StorageError::kind_of_crypto(e),
            StorageError::Backup(
                BackupError::Corrupt { .. }
                | BackupError::ChecksumMismatch { .. }
                | BackupError::CountMismatch { .. }
                | BackupError::Incomplete { .. },
            ) => ErrorKind::CorruptBackup,
            StorageError::Backup(BackupError::NotInitialized { .. }) => ErrorKind::NotInitialized,
            StorageError::Backup(BackupError::JournalNewerKey { .. } | BackupError::HeadNewerKey { .. }) => {
                ErrorKind::WrongKey
            }
            StorageError::Backup(BackupError::NotBuiltIn { .. }) => ErrorKind::Config,
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
            CryptoError::WrongKey { .. }
            | CryptoError::WrongRecoveryKey { .. }
            | CryptoError::BadRecoveryKey { .. } => ErrorKind::WrongKey,
            CryptoError::Tampered { .. } => ErrorKind::Tampered,
            _ => ErrorKind::Crypto,
        }
    }

    fn kind_of_store(e: &StoreError) -> ErrorKind {
        match e {
            StoreError::Locked { .. } => ErrorKind::Locked,
            StoreError::DiskFull { .. } => ErrorKind::DiskFull,
            StoreError::Closed => ErrorKind::ShutDown,
            StoreError::Misdirected { .. } => ErrorKind::Tampered,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeySourceKind;

    /// One error of every kind.
    fn one_of_each() -> Vec<StorageError> {
        let io = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        vec![
            ConfigError::UnknownKey {
                key: "colour".into(),
                known: "data_dir".into(),
            }
            .into(),
            CryptoError::KeySourceUnavailable {
                source_kind: KeySourceKind::Keychain,
                reason: "no Secret Service".into(),
                alternatives: "file".into(),
            }
            .into(),
            CryptoError::WrongKey {
                source_kind: KeySourceKind::File,
                hint: "another key file".into(),
            }
            .into(),
            CryptoError::Tampered {
                collection: "chat_messages".into(),
                field: "content".into(),
            }
            .into(),
            CryptoError::Key("bad length".into()).into(),
            StoreError::Locked {
                path: "/data".into(),
                holder: "PID 7".into(),
            }
            .into(),
            StoreError::DiskFull {
                path: "/data".into(),
                free_bytes: 1,
                reserve_bytes: 2,
            }
            .into(),
            StoreError::NoSuchCollection("x".into()).into(),
            StorageError::NotFound {
                what: "conversation",
                id: "c1".into(),
            },
            StorageError::InvalidInput {
                field: "title",
                reason: "too long".into(),
            },
            StorageError::NotInitialized { path: "/data".into() },
            StorageError::CorruptRecord {
                collection: "chat_messages",
                id: "1".into(),
                reason: "no content".into(),
            },
            StorageError::io("reading", std::path::Path::new("/f"), io()),
            StorageError::ShutDown,
            BackupError::Corrupt {
                name: "b1".into(),
                reason: "truncated".into(),
            }
            .into(),
            BackupError::NotFound("b2".into()).into(),
            EmbedError::Mismatch {
                stored: "a".into(),
                stored_dim: 384,
                configured: "b".into(),
                configured_dim: 768,
            }
            .into(),
            EmbedError::Inference("oom".into()).into(),
        ]
    }

    #[test]
    fn every_kind_serialises_as_kind_and_message() {
        let errors = one_of_each();
        let kinds: Vec<ErrorKind> = errors.iter().map(StorageError::kind).collect();
        assert_eq!(kinds, ErrorKind::ALL.to_vec(), "one error of each kind, in order");
        for e in &errors {
            let v = serde_json::to_value(e).unwrap();
            assert_eq!(v["kind"], e.kind().as_str());
            assert_eq!(v["message"], e.message());
            assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
        }
        let io = serde_json::to_value(&errors[12]).unwrap();
        assert_eq!(io["message"], "reading /f: denied", "causes are kept");
        assert_eq!(
            serde_json::to_value(&errors[8]).unwrap(),
            serde_json::json!({"kind": "not_found", "message": "conversation c1 not found"})
        );
    }
}
