//! Keys and sealing: key sources, the wrapped data key, HKDF subkeys and AES-256-GCM fields.
//!
//! This module owns every secret. It never logs or formats key material, and it never falls
//! back from the configured key source to another.

mod envelope;
mod error;
mod key_source;
mod keyring;
mod seal;

pub use envelope::{KeyStatus, ENVELOPE_FILE};
pub use error::CryptoError;
pub use key_source::{KdfParams, KEYCHAIN_SERVICE};
pub use keyring::Purpose;
pub use seal::{SealContext, Sealer};

pub(crate) use envelope::{create as create_keys, exists as keys_exist, open as open_keys, rotate_kek, UnlockedKeys};

impl UnlockedKeys {
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
