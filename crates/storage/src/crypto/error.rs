//! Errors of key management and sealing. None of them ever holds key material or plaintext.

use super::config::KeySourceKind;

/// Errors from key sources, the key envelope and field sealing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The chosen key source cannot be used here; nothing falls back silently.
    #[error("key source `{source_kind}` is unavailable: {reason}. Alternatives: {alternatives}")]
    KeySourceUnavailable {
        /// The source that was asked for.
        source_kind: KeySourceKind,
        /// Why it cannot be used.
        reason: String,
        /// The other sources and how to select them.
        alternatives: String,
    },
    /// The key from the source does not unwrap this store's data key.
    #[error("wrong key: the `{source_kind}` key does not open this store ({hint})")]
    WrongKey {
        /// The source that produced the key.
        source_kind: KeySourceKind,
        /// What to check.
        hint: String,
    },
    /// A sealed field failed authentication: modified, truncated or moved.
    #[error("sealed field `{field}` in {collection} failed authentication (tampered, moved or corrupt)")]
    Tampered {
        /// Collection of the record.
        collection: String,
        /// Field name.
        field: String,
    },
    /// A sealed field has a format version this build does not know.
    #[error("sealed field `{field}` has unsupported format version {version}")]
    UnsupportedVersion {
        /// Field name.
        field: String,
        /// The version byte found.
        version: u8,
    },
    /// A sealed field names a data key this store does not have.
    #[error("sealed field `{field}` was sealed with unknown key id {key_id}")]
    UnknownKeyId {
        /// Field name.
        field: String,
        /// The key id found.
        key_id: u32,
    },
    /// A sealed field is not valid base64 or is too short.
    #[error("sealed field `{field}` is malformed: {reason}")]
    Malformed {
        /// Field name.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The key envelope file is missing, unreadable or invalid.
    #[error("key envelope {path}: {reason}")]
    Envelope {
        /// Path of `keys.json`.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The store was created with another key source than the one configured.
    #[error("this store's key is held by the `{stored}` key source, but `{configured}` was selected (use --key-source {stored}, or `keys rotate --to {configured}` with the current source)")]
    SourceMismatch {
        /// Source recorded in the envelope.
        stored: KeySourceKind,
        /// Source configured now.
        configured: KeySourceKind,
    },
    /// A key file exists with permissions other users can read.
    #[error("key file {path} has mode {mode:o}; it must be readable by its owner only (run `chmod 600 {path}`)")]
    InsecureKeyFile {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A recovery key as typed cannot be a recovery key (length, alphabet or checksum).
    #[error("that is not a valid recovery key: {reason}")]
    BadRecoveryKey {
        /// What is wrong with it.
        reason: String,
    },
    /// A well-formed recovery key that does not open these keys.
    #[error("wrong recovery key: {hint}")]
    WrongRecoveryKey {
        /// What it failed to open, and what to check.
        hint: String,
    },
    /// The keys hold no recovery wrap (the store never had a recovery kit).
    #[error("{what} has no recovery kit: it cannot be opened with a recovery key (run `cloudops-storage keys recovery-kit` on the machine that holds the store)")]
    NoRecoveryKit {
        /// The store or backup.
        what: String,
    },
    /// A new data-key epoch was asked for while the recovery kit was issued before kits had
    /// public keys: the new key could not be wrapped for it.
    #[error("this store's recovery kit was issued by an older version and cannot receive a new data key: run `cloudops-storage keys recovery-kit` first (it starts a new data key itself), then rotate")]
    KitCannotReceive,
    /// Key derivation or key-file handling failed.
    #[error("{0}")]
    Key(String),
}
