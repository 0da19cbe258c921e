//! Keys and sealing: key sources, the wrapped data key, HKDF subkeys and AES-256-GCM fields.
//!
//! This module owns every secret. It never logs or formats key material, and it never falls
//! back from the configured key source to another.

mod config;
mod envelope;
mod error;
mod key_file;
mod key_source;
mod keyring;
mod kit_wrap;
mod recovery;
mod seal;
mod secret_env;
mod wrap;

pub use config::{
    default_key_file, KeyConfig, KeySourceKind, Passphrase, DEFAULT_KEY_ENV_VAR, DEFAULT_PASSPHRASE_ENV_VAR,
};
pub(crate) use envelope::ENVELOPE_FILE;
pub use envelope::{KeyStatus, WrappedKeys};

/// Whether a KEK rotation also starts a new data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub enum DataKeyEpoch {
    /// Only re-wrap the data keys (moving the KEK to another source, routine rotation).
    Keep,
    /// Also start a new data key for everything written from now on (the old KEK leaked).
    New,
}
pub use error::CryptoError;
pub(crate) use keyring::Purpose;
pub use recovery::{RecoveryKey, RecoveryKit};
pub(crate) use seal::{SealContext, Sealer};
pub use secret_env::take_key_secrets_from_env;

pub(crate) use envelope::{
    create as create_keys, exists as keys_exist, install as install_keys, issue_recovery_key, open as open_keys,
    probe_source, rotate_kek, unlock_wrapped, wrapped_keys, UnlockedKeys,
};

impl UnlockedKeys {
    /// The subkey for `purpose` of the store's index key: search tokens and the vector
    /// rotation, the same in every epoch.
    ///
    /// # Errors
    /// [`CryptoError::Envelope`] when the envelope does not hold its index key.
    pub(crate) fn index_subkey(&self, purpose: Purpose) -> Result<zeroize::Zeroizing<[u8; 32]>, CryptoError> {
        self.data_keys
            .iter()
            .find(|k| k.key_id == self.index_key_id)
            .map(|k| k.subkey(purpose))
            .ok_or_else(|| CryptoError::Envelope {
                path: ENVELOPE_FILE.to_string(),
                reason: format!("the index data key {} is missing", self.index_key_id),
            })
    }

    /// The sealer for content fields.
    pub(crate) fn sealer(&self) -> Sealer {
        Sealer::new(&self.data_keys, self.active_key_id)
    }
}

/// A sealer with a fixed test key, for unit tests of the mapping layers.
#[cfg(test)]
pub(crate) fn test_sealer() -> Sealer {
    let key = keyring::DataKey::new(1, zeroize::Zeroizing::new([9u8; 32]), &uuid::Uuid::nil());
    Sealer::new(&[key], 1)
}

/// Backup subkeys of a fixed test key, for unit tests of manifests.
#[cfg(test)]
pub(crate) fn test_backup_keys() -> BackupKeys {
    let key = keyring::DataKey::new(1, zeroize::Zeroizing::new([9u8; 32]), &uuid::Uuid::nil());
    UnlockedKeys {
        active_key_id: 1,
        index_key_id: 1,
        data_keys: vec![key],
        status: KeyStatus {
            store_id: uuid::Uuid::nil(),
            key_source: KeySourceKind::Env,
            key_location: String::new(),
            active_key_id: 1,
            data_keys: 1,
            created_at_ms: 0,
            kek_rotated_at_ms: None,
            recovery_kit_created_at_ms: None,
        },
    }
    .backup_keys()
}

/// Backup subkeys of every data key, by key id: one encrypts archives and chunks, one
/// authenticates manifests, one names chunks.
pub(crate) struct BackupKeys {
    pub(crate) active_key_id: u32,
    keys: std::collections::HashMap<u32, (keyring::SecretKey, keyring::SecretKey)>,
    chunk_ids: std::collections::HashMap<u32, keyring::SecretKey>,
}

impl BackupKeys {
    /// The archive subkey of data key `key_id`.
    pub(crate) fn key(&self, key_id: u32) -> Option<[u8; 32]> {
        self.keys.get(&key_id).map(|(k, _)| **k)
    }

    /// The manifest-authentication subkey of data key `key_id`.
    pub(crate) fn manifest_key(&self, key_id: u32) -> Option<&[u8; 32]> {
        self.keys.get(&key_id).map(|(_, k)| &**k)
    }

    /// The chunk-naming subkey of data key `key_id`.
    pub(crate) fn chunk_id_key(&self, key_id: u32) -> Option<[u8; 32]> {
        self.chunk_ids.get(&key_id).map(|k| **k)
    }
}

impl std::fmt::Debug for BackupKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupKeys")
            .field("active_key_id", &self.active_key_id)
            .finish_non_exhaustive()
    }
}

impl UnlockedKeys {
    /// The backup subkeys.
    pub(crate) fn backup_keys(&self) -> BackupKeys {
        BackupKeys {
            active_key_id: self.active_key_id,
            keys: self
                .data_keys
                .iter()
                .map(|k| (k.key_id, (k.subkey(Purpose::Backup), k.subkey(Purpose::BackupManifest))))
                .collect(),
            chunk_ids: self
                .data_keys
                .iter()
                .map(|k| (k.key_id, k.subkey(Purpose::BackupChunkId)))
                .collect(),
        }
    }
}
