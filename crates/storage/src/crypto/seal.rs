//! AES-256-GCM sealing of individual payload fields.
//!
//! A sealed field is `base64(version ‖ key_id ‖ nonce(12) ‖ ciphertext ‖ tag)`. The AAD binds
//! the ciphertext to `collection ‖ point_id ‖ field`, so a value copied into another record or
//! another field fails authentication instead of decrypting into the wrong place. Version 2
//! also binds the record's clear fields that decide who sees it and how it is used (a
//! message's user, conversation, role and index; a resource's account, region and type): an
//! edit of one of them through the engine fails authentication on read. Version 3 also binds
//! what ties a record's sealed fields to one write ([`SealContext::write`]: a conversation's
//! seal set, a resource's fingerprint, whether a message has metadata), so an older value of
//! one field put back, or a sealed field removed, fails too. Version 1 and 2 fields (written
//! before) still open, without those bindings, until they are rewritten.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;

use super::keyring::{DataKey, Purpose};
use super::CryptoError;

/// Version byte of the sealed-field format written now (clear fields and the write bound).
const FORMAT_VERSION: u8 = 3;
/// The second format: clear fields bound, the write not; still read.
const FORMAT_V2: u8 = 2;
/// The first format: collection, point and field bound; still read.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// Where a sealed value lives, and the clear fields of its record it is bound to; all of it
/// is authenticated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealContext<'a> {
    /// Collection name.
    pub(crate) collection: &'a str,
    /// Point id of the record.
    pub(crate) point_id: uuid::Uuid,
    /// Payload field name.
    pub(crate) field: &'a str,
    /// Clear fields of the record bound to the value, as (name, value) in a fixed order.
    pub(crate) bound: &'a [(&'a str, &'a str)],
    /// What ties the record's sealed fields to the one write that sealed them all (bound from
    /// format 3 on), as (name, value) in a fixed order.
    pub(crate) write: &'a [(&'a str, &'a str)],
}

/// Seals and opens fields with the content subkeys of every known data key. The keys can be
/// replaced while it is shared ([`Sealer::replace`]): a new epoch takes effect for the next
/// value sealed.
pub(crate) struct Sealer {
    keys: std::sync::RwLock<SealerKeys>,
}

struct SealerKeys {
    active_key_id: u32,
    ciphers: HashMap<u32, Aes256Gcm>,
}

impl SealerKeys {
    fn new(keys: &[DataKey], active_key_id: u32) -> Self {
        let ciphers = keys
            .iter()
            .map(|k| {
                let sub = k.subkey(Purpose::Content);
                (k.key_id, Aes256Gcm::new(sub.as_slice().into()))
            })
            .collect();
        SealerKeys { active_key_id, ciphers }
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("active_key_id", &self.active_key_id())
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub(crate) fn new(keys: &[DataKey], active_key_id: u32) -> Self {
        Sealer {
            keys: std::sync::RwLock::new(SealerKeys::new(keys, active_key_id)),
        }
    }

    /// Seal with `keys` from now on, `active_key_id` for new values.
    pub(crate) fn replace(&self, keys: &[DataKey], active_key_id: u32) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = SealerKeys::new(keys, active_key_id);
    }

    /// The data key new values are sealed with.
    pub(crate) fn active_key_id(&self) -> u32 {
        self.read().active_key_id
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, SealerKeys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `sealed` is in today's format under the active key; anything else is sealed
    /// again by `keys rekey`. Reads the header only (no authentication): a value that is not
    /// current, or not a sealed value at all, is `false`.
    pub(crate) fn is_current(&self, sealed: &str) -> bool {
        // 8 base64 characters are exactly the first 6 bytes: version, key id and one more.
        let Some(head) = sealed.get(..8).and_then(|h| B64.decode(h).ok()) else {
            return false;
        };
        head[0] == FORMAT_VERSION && u32::from_be_bytes([head[1], head[2], head[3], head[4]]) == self.active_key_id()
    }

    /// Seal `plaintext` for `ctx` with the active key.
    ///
    /// # Errors
    /// [`CryptoError::Key`] if the active key is missing (a broken invariant of the envelope).
    pub(crate) fn seal(&self, ctx: SealContext<'_>, plaintext: &[u8]) -> Result<String, CryptoError> {
        let keys = self.read();
        let cipher = keys
            .ciphers
            .get(&keys.active_key_id)
            .ok_or_else(|| CryptoError::Key(format!("active data key {} is not loaded", keys.active_key_id)))?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = aad(ctx, FORMAT_VERSION);
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Key("AES-GCM encryption failed".into()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&keys.active_key_id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(B64.encode(out))
    }

    /// Seal a UTF-8 string.
    ///
    /// # Errors
    /// As [`Sealer::seal`].
    pub(crate) fn seal_str(&self, ctx: SealContext<'_>, plaintext: &str) -> Result<String, CryptoError> {
        self.seal(ctx, plaintext.as_bytes())
    }

    /// Open a sealed value for `ctx`.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`], [`CryptoError::UnsupportedVersion`],
    /// [`CryptoError::UnknownKeyId`] or [`CryptoError::Tampered`].
    pub(crate) fn open(&self, ctx: SealContext<'_>, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let malformed = |reason: &str| CryptoError::Malformed {
            field: ctx.field.to_string(),
            reason: reason.to_string(),
        };
        let bytes = B64.decode(sealed).map_err(|_| malformed("not base64"))?;
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(malformed("too short"));
        }
        let version = bytes[0];
        if !matches!(version, FORMAT_V1 | FORMAT_V2 | FORMAT_VERSION) {
            return Err(CryptoError::UnsupportedVersion {
                field: ctx.field.to_string(),
                version,
            });
        }
        let key_id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let keys = self.read();
        let cipher = keys.ciphers.get(&key_id).ok_or_else(|| CryptoError::UnknownKeyId {
            field: ctx.field.to_string(),
            key_id,
        })?;
        let nonce = Nonce::from_slice(&bytes[5..HEADER_LEN]);
        let aad = aad(ctx, version);
        cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &bytes[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Tampered {
                collection: ctx.collection.to_string(),
                field: ctx.field.to_string(),
            })
    }

    /// Open a sealed UTF-8 string.
    ///
    /// # Errors
    /// As [`Sealer::open`], plus [`CryptoError::Malformed`] for invalid UTF-8.
    pub(crate) fn open_str(&self, ctx: SealContext<'_>, sealed: &str) -> Result<String, CryptoError> {
        String::from_utf8(self.open(ctx, sealed)?).map_err(|_| CryptoError::Malformed {
            field: ctx.field.to_string(),
            reason: "not UTF-8".into(),
        })
    }
}

/// Version 1: `collection ‖ 0 ‖ point_id (16 bytes) ‖ field`: the collection name cannot
/// contain NUL, and the id has a fixed length, so the encoding is unambiguous. Version 2
/// prefixes the field with its length and appends each bound clear field as
/// `len(name) ‖ name ‖ len(value) ‖ value` (u32 big-endian lengths). Version 3 appends the
/// write's pairs the same way. The version itself needs no place in the AAD: a version-3
/// value read as version 2 misses the write's pairs and fails.
fn aad(ctx: SealContext<'_>, version: u8) -> Vec<u8> {
    let mut aad = Vec::with_capacity(ctx.collection.len() + 21 + ctx.field.len() + 64);
    aad.extend_from_slice(ctx.collection.as_bytes());
    aad.push(0);
    aad.extend_from_slice(ctx.point_id.as_bytes());
    if version == FORMAT_V1 {
        aad.extend_from_slice(ctx.field.as_bytes());
        return aad;
    }
    let mut part = |bytes: &[u8]| {
        aad.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        aad.extend_from_slice(bytes);
    };
    part(ctx.field.as_bytes());
    let write: &[(&str, &str)] = if version >= FORMAT_VERSION { ctx.write } else { &[] };
    for (name, value) in ctx.bound.iter().chain(write) {
        part(name.as_bytes());
        part(value.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn sealer(secret: u8) -> Sealer {
        let key = DataKey::new(1, Zeroizing::new([secret; 32]), &uuid::Uuid::nil());
        Sealer::new(&[key], 1)
    }

    fn ctx(field: &str, id: u128) -> SealContext<'_> {
        SealContext {
            collection: "c",
            point_id: uuid::Uuid::from_u128(id),
            field,
            bound: &[("user_id", "alice"), ("role", "user")],
            write: &[("seal_set", "1")],
        }
    }

    #[test]
    fn an_edited_bound_clear_field_fails_and_version_1_still_opens() {
        let s = sealer(1);
        let a = s.seal_str(ctx("content", 1), "hello").unwrap();
        for bound in [
            &[("user_id", "mallory"), ("role", "user")][..],
            &[("user_id", "alice"), ("role", "system")][..],
            &[("user_id", "alice")][..],
            &[("user_id", "alice"), ("role", "user"), ("x", "")][..],
        ] {
            let edited = SealContext {
                bound,
                ..ctx("content", 1)
            };
            assert!(
                matches!(s.open(edited, &a), Err(CryptoError::Tampered { .. })),
                "{bound:?}"
            );
        }
        // A field written in the first format (no binding) still opens.
        assert_eq!(
            s.open_str(ctx("content", 1), &sealed_as(&s, FORMAT_V1, "old")).unwrap(),
            "old"
        );
    }

    /// `text` sealed for `ctx("content", 1)` in an older format.
    fn sealed_as(s: &Sealer, version: u8, text: &str) -> String {
        let keys = s.read();
        let cipher = keys.ciphers.get(&1).unwrap();
        let nonce = [7u8; NONCE_LEN];
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: text.as_bytes(),
                    aad: &aad(ctx("content", 1), version),
                },
            )
            .unwrap();
        let mut raw = vec![version];
        raw.extend_from_slice(&1u32.to_be_bytes());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ct);
        B64.encode(&raw)
    }

    #[test]
    fn another_write_fails_and_version_2_opens_without_one() {
        let s = sealer(1);
        let a = s.seal_str(ctx("content", 1), "hello").unwrap();
        for write in [&[("seal_set", "2")][..], &[][..], &[("seal_set", "1"), ("x", "")][..]] {
            let other = SealContext {
                write,
                ..ctx("content", 1)
            };
            assert!(
                matches!(s.open(other, &a), Err(CryptoError::Tampered { .. })),
                "{write:?}"
            );
        }
        // The header's version cannot be lowered to drop the write's binding.
        let mut raw = B64.decode(&a).unwrap();
        raw[0] = FORMAT_V2;
        assert!(matches!(
            s.open(ctx("content", 1), &B64.encode(&raw)),
            Err(CryptoError::Tampered { .. })
        ));
        // A version 2 value (written before) opens whatever the record's write says.
        let old = sealed_as(&s, FORMAT_V2, "v2");
        for write in [&[("seal_set", "9")][..], &[][..]] {
            let c = SealContext {
                write,
                ..ctx("content", 1)
            };
            assert_eq!(s.open_str(c, &old).unwrap(), "v2");
        }
    }

    #[test]
    fn only_todays_format_under_the_active_key_is_current() {
        let s = sealer(1);
        let a = s.seal_str(ctx("content", 1), "hello").unwrap();
        assert!(s.is_current(&a));
        assert!(!s.is_current(&sealed_as(&s, FORMAT_V2, "v2")));
        assert!(!s.is_current(&sealed_as(&s, FORMAT_V1, "v1")));
        assert!(!s.is_current("short"));
        assert!(!s.is_current("!!!!!!!!!!!!"));
        let two = DataKey::new(2, Zeroizing::new([2; 32]), &uuid::Uuid::nil());
        let one = DataKey::new(1, Zeroizing::new([1; 32]), &uuid::Uuid::nil());
        s.replace(&[one, two], 2);
        assert!(!s.is_current(&a), "sealed under a key that is no longer active");
        assert!(s.is_current(&s.seal_str(ctx("content", 1), "hello").unwrap()));
    }

    #[test]
    fn round_trip_and_randomised_nonce() {
        let s = sealer(1);
        let a = s.seal_str(ctx("content", 1), "hello").unwrap();
        let b = s.seal_str(ctx("content", 1), "hello").unwrap();
        assert_ne!(a, b);
        assert_eq!(s.open_str(ctx("content", 1), &a).unwrap(), "hello");
    }

    #[test]
    fn moved_field_or_point_fails() {
        let s = sealer(1);
        let a = s.seal_str(ctx("content", 1), "hello").unwrap();
        assert!(matches!(s.open(ctx("title", 1), &a), Err(CryptoError::Tampered { .. })));
        assert!(matches!(
            s.open(ctx("content", 2), &a),
            Err(CryptoError::Tampered { .. })
        ));
    }

    #[test]
    fn flipped_bit_wrong_key_and_garbage_fail() {
        let s = sealer(1);
        let a = s.seal_str(ctx("content", 1), "hello").unwrap();
        let mut raw = B64.decode(&a).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(matches!(
            s.open(ctx("content", 1), &B64.encode(&raw)),
            Err(CryptoError::Tampered { .. })
        ));
        assert!(matches!(
            sealer(2).open(ctx("content", 1), &a),
            Err(CryptoError::Tampered { .. })
        ));
        assert!(matches!(
            s.open(ctx("content", 1), "!!"),
            Err(CryptoError::Malformed { .. })
        ));
        raw[0] = 9;
        assert!(matches!(
            s.open(ctx("content", 1), &B64.encode(&raw)),
            Err(CryptoError::UnsupportedVersion { .. })
        ));
    }
}
