//! Wrapping one data key under one key-encryption key: AES-256-GCM, bound to the store and
//! the data key's id, and the fingerprint that picks the right KEK for a wrap.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::envelope::ENVELOPE_FILE;
use super::keyring::SecretKey;
use super::CryptoError;

/// One data key, wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct WrappedDek {
    pub(super) key_id: u32,
    /// base64(nonce ‖ ciphertext ‖ tag)
    pub(super) wrapped: String,
    /// For a wrap to a recovery kit's public key: base64 of the one-time X25519 public key
    /// the wrapping KEK was agreed with (see `kit_wrap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ephemeral: Option<String>,
}

/// Fingerprint of a KEK (a hash; reveals nothing about it).
pub(super) fn kek_id(kek: &SecretKey) -> String {
    fingerprint(b"cloudops-storage/kek-id/v1", kek.as_slice())
}

/// The first 8 bytes of `SHA-256(label ‖ bytes)` in hex.
pub(super) fn fingerprint(label: &[u8], bytes: &[u8]) -> String {
    let digest = Sha256::new().chain_update(label).chain_update(bytes).finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn wrap_aad(store_id: &uuid::Uuid, key_id: u32) -> Vec<u8> {
    let mut aad = b"cloudops-storage/dek/v1".to_vec();
    aad.extend_from_slice(store_id.as_bytes());
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad
}

/// Wrap data key `key_id` of store `store_id` under `kek`.
pub(super) fn wrap_dek(
    kek: &SecretKey,
    store_id: &uuid::Uuid,
    key_id: u32,
    dek: &[u8; 32],
) -> Result<WrappedDek, CryptoError> {
    let cipher = Aes256Gcm::new(kek.as_slice().into());
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let aad = wrap_aad(store_id, key_id);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: dek, aad: &aad })
        .map_err(|_| CryptoError::Key("wrapping the data key failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(WrappedDek {
        key_id,
        wrapped: B64.encode(out),
        ephemeral: None,
    })
}

/// Unwrap `w` with `kek`.
///
/// # Errors
/// [`CryptoError::Envelope`] when it does not open (another KEK, altered, moved).
pub(super) fn unwrap_dek(kek: &SecretKey, store_id: &uuid::Uuid, w: &WrappedDek) -> Result<SecretKey, CryptoError> {
    let bad = || CryptoError::Envelope {
        path: ENVELOPE_FILE.into(),
        reason: format!("wrapped data key {} is corrupt or was modified", w.key_id),
    };
    let raw = B64.decode(&w.wrapped).map_err(|_| bad())?;
    if raw.len() != 12 + 32 + 16 {
        return Err(bad());
    }
    let cipher = Aes256Gcm::new(kek.as_slice().into());
    let aad = wrap_aad(store_id, w.key_id);
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                Nonce::from_slice(&raw[..12]),
                Payload {
                    msg: &raw[12..],
                    aad: &aad,
                },
            )
            .map_err(|_| bad())?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&plain);
    Ok(key)
}
