//! Errors as JavaScript sees them: `{ "kind": "...", "message": "..." }`, with the library's
//! stable kinds (`not_found`, `invalid_input`, `locked`, `wrong_key`, ...) plus `unavailable`
//! when the store could not be opened at start-up.

use cloudops_storage_service::StorageError;
use serde::ser::SerializeStruct as _;

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
        kind: &'static str,
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
    /// The stable kind string JavaScript branches on.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Storage(e) => e.kind().as_str(),
            Error::Unavailable { kind, .. } => kind,
        }
    }
}

impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Error", 2)?;
        st.serialize_field("kind", self.kind())?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}

/// Result of a command.
pub type Result<T> = std::result::Result<T, Error>;
