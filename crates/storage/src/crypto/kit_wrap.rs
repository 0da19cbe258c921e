//! Wrapping data keys for a recovery kit by its public key, so that a data key made after
//! the kit was issued (a new epoch after a leaked KEK) is wrapped for the kit without the kit
//! being on the machine.
//!
//! The kit's recovery key yields an X25519 secret ([`RecoveryKey::agreement_secret`]); the
//! envelope keeps its public half. Each data key is wrapped under a KEK agreed between a
//! one-time X25519 key and the kit's public key (HKDF-SHA256 over the shared secret, salted
//! with the store id, bound to both public keys), then AES-256-GCM as every other wrap. Only
//! the recovery key opens such a wrap.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::keyring::SecretKey;
use super::recovery::RecoveryKey;
use super::wrap::{fingerprint, unwrap_dek, wrap_dek, WrappedDek};
use super::CryptoError;

const LABEL: &[u8] = b"cloudops-storage/recovery-wrap/v2";

/// The public key of `key` for store `store_id`, base64, as the envelope keeps it.
pub(super) fn public_key(key: &RecoveryKey, store_id: &uuid::Uuid) -> String {
    B64.encode(PublicKey::from(&key.agreement_secret(store_id)).as_bytes())
}

/// The fingerprint of a kit's public key (base64 as stored), which names the kit.
pub(super) fn kit_id(public_key: &str) -> String {
    fingerprint(LABEL, public_key.as_bytes())
}

/// Wrap data key `key_id` for the kit whose public key (base64) is `public_key`.
///
/// # Errors
/// [`CryptoError::Envelope`] when the stored public key is not one.
pub(super) fn wrap_for_kit(
    public_key: &str,
    store_id: &uuid::Uuid,
    key_id: u32,
    dek: &[u8; 32],
) -> Result<WrappedDek, CryptoError> {
    let recipient = decode_public(public_key)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::thread_rng().fill_bytes(seed.as_mut_slice());
    let ephemeral = StaticSecret::from(*seed);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let kek = agreed_kek(&ephemeral, &recipient, &ephemeral_public, &recipient, store_id)?;
    let mut wrapped = wrap_dek(&kek, store_id, key_id, dek)?;
    wrapped.ephemeral = Some(B64.encode(ephemeral_public.as_bytes()));
    Ok(wrapped)
}

/// Unwrap a data key wrapped for the kit of `key`.
///
/// # Errors
/// [`CryptoError::Envelope`] when it does not open.
pub(super) fn unwrap_with_kit(
    key: &RecoveryKey,
    store_id: &uuid::Uuid,
    w: &WrappedDek,
) -> Result<SecretKey, CryptoError> {
    let bad = |reason: &str| CryptoError::Envelope {
        path: super::ENVELOPE_FILE.into(),
        reason: format!("recovery wrap of data key {}: {reason}", w.key_id),
    };
    let ephemeral = decode_public(w.ephemeral.as_deref().ok_or_else(|| bad("it has no one-time key"))?)?;
    let secret = key.agreement_secret(store_id);
    let own = PublicKey::from(&secret);
    let kek = agreed_kek(&secret, &ephemeral, &ephemeral, &own, store_id)?;
    unwrap_dek(&kek, store_id, w)
}

/// The KEK of `ours` agreeing with `theirs`, bound to the one-time and the kit's public keys.
fn agreed_kek(
    ours: &StaticSecret,
    theirs: &PublicKey,
    ephemeral: &PublicKey,
    recipient: &PublicKey,
    store_id: &uuid::Uuid,
) -> Result<SecretKey, CryptoError> {
    let shared = ours.diffie_hellman(theirs);
    if !shared.was_contributory() {
        return Err(CryptoError::Envelope {
            path: super::ENVELOPE_FILE.into(),
            reason: "a recovery wrap names a public key of low order".into(),
        });
    }
    let hk = Hkdf::<Sha256>::new(Some(store_id.as_bytes()), shared.as_bytes());
    let mut info = LABEL.to_vec();
    info.extend_from_slice(ephemeral.as_bytes());
    info.extend_from_slice(recipient.as_bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    if hk.expand(&info, out.as_mut_slice()).is_err() {
        unreachable!("HKDF expand of 32 bytes cannot fail");
    }
    Ok(out)
}

fn decode_public(text: &str) -> Result<PublicKey, CryptoError> {
    let bytes: [u8; 32] =
        B64.decode(text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| CryptoError::Envelope {
                path: super::ENVELOPE_FILE.into(),
                reason: "a recovery public key is not 32 bytes of base64".into(),
            })?;
    Ok(PublicKey::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_kit_opens_what_its_public_key_wrapped() {
        let store = uuid::Uuid::from_u128(5);
        let kit = RecoveryKey::generate();
        let public = public_key(&kit, &store);
        let dek = [42u8; 32];
        let wrapped = wrap_for_kit(&public, &store, 2, &dek).unwrap();
        assert_eq!(*unwrap_with_kit(&kit, &store, &wrapped).unwrap(), dek);
        // Another kit, another store, or a wrap moved to another key id does not open.
        assert!(unwrap_with_kit(&RecoveryKey::generate(), &store, &wrapped).is_err());
        assert!(unwrap_with_kit(&kit, &uuid::Uuid::from_u128(6), &wrapped).is_err());
        let moved = WrappedDek {
            key_id: 3,
            ..wrapped.clone()
        };
        assert!(unwrap_with_kit(&kit, &store, &moved).is_err());
        // The one-time key differs per wrap; a low-order one is refused.
        let again = wrap_for_kit(&public, &store, 2, &dek).unwrap();
        assert_ne!(again.ephemeral, wrapped.ephemeral);
        let low = WrappedDek {
            ephemeral: Some(B64.encode([0u8; 32])),
            ..wrapped
        };
        assert!(unwrap_with_kit(&kit, &store, &low)
            .unwrap_err()
            .to_string()
            .contains("low order"));
    }
}
