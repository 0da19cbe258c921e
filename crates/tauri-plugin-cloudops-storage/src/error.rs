//! Errors as JavaScript sees them: `{ "kind": "...", "message": "..." }` ([`ErrorPayload`]),
//! with the library's stable kinds (`not_found`, `invalid_input`, `locked`, `wrong_key`, ...).

use cloudops_storage_service::{ErrorKind, StorageError};

/// What a command can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The library refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The store did not open when the app started (another instance holds it, a missing
    /// key, ...): every command reports why, with the kind of the original error.
    #[error("the store is not available: {message}")]
    Unavailable {
        /// Kind of the error that kept it closed.
        kind: ErrorKind,
        /// Its message.
        message: String,
    },
}

impl From<cloudops_storage_service::BackupError> for Error {
    fn from(e: cloudops_storage_service::BackupError) -> Self {
        Error::Storage(e.into())
    }
}

impl Error {
    /// The stable kind JavaScript branches on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Storage(e) => e.kind(),
            Error::Unavailable { kind, .. } => *kind,
        }
    }
}

/// A failed command as the page receives it (the rejection value of `invoke`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct ErrorPayload {
    /// Stable kind to branch on.
    pub kind: ErrorKind,
    /// Human-readable reason, with the fix when there is one.
    pub message: String,
}

impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        ErrorPayload {
            kind: self.kind(),
            message: self.to_string(),
        }
        .serialize(s)
    }
}

/// Result of a command.
pub type Result<T> = std::result::Result<T, Error>;
