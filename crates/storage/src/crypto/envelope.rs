//! The key envelope `<data_dir>/keys.json`: the data keys, wrapped by the KEK.
//!
//! Only wrapped keys are on disk. A KEK rotation first writes an envelope holding both the old
//! and the new wrap, then commits the new KEK to its source, then drops the old wrap: a crash at
//! any point leaves an envelope that one of the two KEKs opens.
//!
//! With a recovery kit, the data keys are wrapped a second time under a KEK derived from the
//! recovery key ([`RecoveryKey`]); every backup carries the whole envelope ([`WrappedKeys`]),
//! so a backup can be opened on another machine with the recovery key alone.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::config::{KeyConfig, KeySourceKind};
use super::key_source::{KdfParams, KeySource};
use super::keyring::{DataKey, SecretKey};
use super::recovery::RecoveryKey;
use super::CryptoError;

/// File name of the envelope inside the data dir.
pub(crate) const ENVELOPE_FILE: &str = "keys.json";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EnvelopeFile {
    format: u32,
    store_id: uuid::Uuid,
    created_at_ms: i64,
    active_key_id: u32,
    kek_rotated_at_ms: Option<i64>,
    wraps: Vec<Wrap>,
    /// The data keys wrapped under the recovery key's KEK; absent until a kit is issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recovery: Option<RecoveryWrap>,
}

/// The data keys wrapped by the KEK derived from the recovery key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RecoveryWrap {
    /// Fingerprint of the recovery KEK.
    kek_id: String,
    /// When this recovery key was issued (unix ms).
    created_at_ms: i64,
    deks: Vec<WrappedDek>,
}

/// A store's key envelope as every backup carries it: the data keys wrapped under the KEK
/// and, with a recovery kit, under the recovery key. It never holds a clear key; a backup
/// authenticates it with its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WrappedKeys(EnvelopeFile);

impl WrappedKeys {
    /// The store these keys belong to.
    pub fn store_id(&self) -> uuid::Uuid {
        self.0.store_id
    }

    /// When the recovery key that opens them was issued, if one was.
    pub fn recovery_kit_created_at_ms(&self) -> Option<i64> {
        self.0.recovery.as_ref().map(|r| r.created_at_ms)
    }
}

/// The data keys wrapped by one KEK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Wrap {
    key_source: KeySourceKind,
    /// Fingerprint of the KEK (a hash; reveals nothing about it), to pick the right wrap.
    kek_id: String,
    kdf: Option<KdfParams>,
    deks: Vec<WrappedDek>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WrappedDek {
    key_id: u32,
    /// base64(nonce ‖ ciphertext ‖ tag)
    wrapped: String,
}

/// The unlocked keys of a store.
#[derive(Debug)]
pub(crate) struct UnlockedKeys {
    pub(crate) active_key_id: u32,
    pub(crate) data_keys: Vec<DataKey>,
    pub(crate) status: KeyStatus,
}

/// What `keys status` reports. Holds no secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct KeyStatus {
    /// The store's id.
    pub store_id: uuid::Uuid,
    /// The key source that holds the KEK.
    pub key_source: KeySourceKind,
    /// Where that source keeps it.
    pub key_location: String,
    /// Id of the data key that seals new data.
    pub active_key_id: u32,
    /// How many data keys the envelope holds.
    pub data_keys: usize,
    /// When the store's keys were created (unix ms).
    pub created_at_ms: i64,
    /// Last KEK rotation (unix ms), if any.
    pub kek_rotated_at_ms: Option<i64>,
    /// When the current recovery kit was issued (unix ms); `None`: there is none, and a
    /// backup cannot be restored on another machine.
    pub recovery_kit_created_at_ms: Option<i64>,
}

pub(crate) fn envelope_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ENVELOPE_FILE)
}

/// Whether the data dir has an envelope (i.e. holds a store).
pub(crate) fn exists(data_dir: &Path) -> bool {
    envelope_path(data_dir).exists()
}

/// Create the keys of a new store: a random DEK wrapped by a new KEK from the configured source.
pub(crate) fn create(data_dir: &Path, config: &KeyConfig) -> Result<UnlockedKeys, CryptoError> {
    let store_id = uuid::Uuid::new_v4();
    let source = KeySource::new(config);
    source.probe(&store_id)?;
    let new = source.create_kek(false)?;
    let mut dek = Zeroizing::new([0u8; 32]);
    rand::thread_rng().fill_bytes(dek.as_mut_slice());
    let key_id = 1;
    let now = now_ms();
    let envelope = EnvelopeFile {
        format: FORMAT,
        store_id,
        created_at_ms: now,
        active_key_id: key_id,
        kek_rotated_at_ms: None,
        wraps: vec![Wrap {
            key_source: source.kind(),
            kek_id: kek_id(&new.kek),
            kdf: new.kdf.clone(),
            deks: vec![wrap_dek(&new.kek, &store_id, key_id, &dek)?],
        }],
        recovery: None,
    };
    // Commit the KEK to its source first: an envelope nobody can open is worse than a stray key.
    source.commit(&store_id, &new)?;
    write(data_dir, &envelope)?;
    let data_keys = vec![DataKey::new(key_id, dek, &store_id)];
    Ok(UnlockedKeys {
        active_key_id: key_id,
        status: status(&envelope, &source),
        data_keys,
    })
}

/// Unlock an existing store's keys with the configured source.
pub(crate) fn open(data_dir: &Path, config: &KeyConfig) -> Result<UnlockedKeys, CryptoError> {
    let envelope = read(data_dir)?;
    let source = KeySource::new(config);
    let (_, deks) = unlock(&envelope, &source)?;
    Ok(UnlockedKeys {
        active_key_id: envelope.active_key_id,
        status: status(&envelope, &source),
        data_keys: deks,
    })
}

/// Re-wrap the data keys with a new KEK from `to` (which may be the same source). Data is untouched.
pub(crate) fn rotate_kek(data_dir: &Path, current: &KeyConfig, to: &KeyConfig) -> Result<KeyStatus, CryptoError> {
    let mut envelope = read(data_dir)?;
    let old_source = KeySource::new(current);
    let (old_index, deks) = unlock(&envelope, &old_source)?;
    let new_source = KeySource::new(to);
    new_source.probe(&envelope.store_id)?;
    let new = new_source.create_kek(current.source == to.source)?;
    let wrapped = deks
        .iter()
        .map(|d| wrap_dek(&new.kek, &envelope.store_id, d.key_id, d.secret()))
        .collect::<Result<Vec<_>, _>>()?;
    let new_wrap = Wrap {
        key_source: new_source.kind(),
        kek_id: kek_id(&new.kek),
        kdf: new.kdf.clone(),
        deks: wrapped,
    };
    // Step 1: both wraps on disk. Step 2: the source holds the new KEK. Step 3: old wrap gone.
    let old_wrap = envelope.wraps[old_index].clone();
    envelope.wraps = vec![old_wrap, new_wrap.clone()];
    write(data_dir, &envelope)?;
    new_source.commit(&envelope.store_id, &new)?;
    // Prove the new KEK, as its source now gives it back, opens the new wrap on disk before
    // the old wrap is dropped: a source that lost the key leaves the old one working. (An env
    // or passphrase source rotated in place gives the new secret under `<VAR>_NEW` until the
    // owner moves it, so there the proof is the wrap just made from it.)
    let in_place_variable =
        current.source == to.source && matches!(to.source, KeySourceKind::Env | KeySourceKind::Passphrase);
    let on_disk = read(data_dir)?;
    let only_new = EnvelopeFile {
        wraps: vec![new_wrap.clone()],
        ..on_disk
    };
    let reopened = if in_place_variable {
        deks.len()
    } else {
        unlock(&only_new, &new_source)?.1.len()
    };
    if reopened != deks.len() {
        return Err(CryptoError::Envelope {
            path: envelope_path(data_dir).display().to_string(),
            reason: "the new key-encryption key does not open every data key; the old one still does".into(),
        });
    }
    envelope.wraps = vec![new_wrap];
    envelope.kek_rotated_at_ms = Some(now_ms());
    write(data_dir, &envelope)?;
    tracing::info!(store_id = %envelope.store_id, to = %new_source.kind(), "key-encryption key rotated");
    Ok(status(&envelope, &new_source))
}

/// Issue a new recovery key: wrap the data keys under it (replacing the previous recovery
/// wrap, so the old key stops opening this store and its later backups), write the envelope,
/// and read it back to prove the new key opens it. Backups taken before keep the wrap they
/// carry and still open with the key that was current then.
pub(crate) fn issue_recovery_key(data_dir: &Path, config: &KeyConfig) -> Result<(RecoveryKey, KeyStatus), CryptoError> {
    let mut envelope = read(data_dir)?;
    let source = KeySource::new(config);
    let (_, deks) = unlock(&envelope, &source)?;
    let key = RecoveryKey::generate();
    let kek = key.kek(&envelope.store_id);
    envelope.recovery = Some(RecoveryWrap {
        kek_id: kek_id(&kek),
        created_at_ms: now_ms(),
        deks: deks
            .iter()
            .map(|d| wrap_dek(&kek, &envelope.store_id, d.key_id, d.secret()))
            .collect::<Result<_, _>>()?,
    });
    write(data_dir, &envelope)?;
    let written = read(data_dir)?;
    if written != envelope || unlock_recovery(&written, &key)?.len() != deks.len() {
        return Err(CryptoError::Envelope {
            path: envelope_path(data_dir).display().to_string(),
            reason: "reading the envelope back after writing the recovery wrap gave something else".into(),
        });
    }
    tracing::info!(store_id = %envelope.store_id, "recovery key issued");
    Ok((key, status(&envelope, &source)))
}

/// Check that `config`'s source can hold a KEK for `store_id`, before work that needs it.
pub(crate) fn probe_source(config: &KeyConfig, store_id: &uuid::Uuid) -> Result<(), CryptoError> {
    KeySource::new(config).probe(store_id)
}

/// The envelope of the store in `data_dir`, for a backup to carry.
pub(crate) fn wrapped_keys(data_dir: &Path) -> Result<WrappedKeys, CryptoError> {
    read(data_dir).map(WrappedKeys)
}

/// Unlock the keys a backup carries: with the recovery key when one is given, else with the
/// configured key source (a passphrase, key file or variable the owner still has).
pub(crate) fn unlock_wrapped(
    keys: &WrappedKeys,
    recovery: Option<&RecoveryKey>,
    config: &KeyConfig,
) -> Result<UnlockedKeys, CryptoError> {
    let envelope = &keys.0;
    let source = KeySource::new(config);
    let data_keys = match recovery {
        Some(key) => unlock_recovery(envelope, key)?,
        None => unlock(envelope, &source)?.1,
    };
    Ok(UnlockedKeys {
        active_key_id: envelope.active_key_id,
        data_keys,
        status: status(envelope, &source),
    })
}

/// Make `keys` (from a backup, unlocked as `unlocked`) this data dir's envelope, the data
/// keys wrapped under a new KEK from `config`'s source (committed to it and read back first);
/// the recovery wrap is kept. Refuses when the data dir already has an envelope.
pub(crate) fn install(
    data_dir: &Path,
    keys: &WrappedKeys,
    unlocked: &UnlockedKeys,
    config: &KeyConfig,
) -> Result<KeyStatus, CryptoError> {
    if exists(data_dir) {
        return Err(CryptoError::Envelope {
            path: envelope_path(data_dir).display().to_string(),
            reason: "already exists; refusing to replace the keys of a store".into(),
        });
    }
    let store_id = keys.0.store_id;
    let source = KeySource::new(config);
    source.probe(&store_id)?;
    let new = source.create_kek(false)?;
    let deks = unlocked
        .data_keys
        .iter()
        .map(|d| wrap_dek(&new.kek, &store_id, d.key_id, d.secret()))
        .collect::<Result<Vec<_>, _>>()?;
    let envelope = EnvelopeFile {
        wraps: vec![Wrap {
            key_source: source.kind(),
            kek_id: kek_id(&new.kek),
            kdf: new.kdf.clone(),
            deks,
        }],
        kek_rotated_at_ms: Some(now_ms()),
        ..keys.0.clone()
    };
    source.commit(&store_id, &new)?;
    write(data_dir, &envelope)?;
    // Prove this machine's source opens what was written before anyone relies on it.
    let reopened = unlock(&read(data_dir)?, &source)?.1;
    if reopened.len() != unlocked.data_keys.len() {
        return Err(CryptoError::Envelope {
            path: envelope_path(data_dir).display().to_string(),
            reason: "reading the installed envelope back gave other keys".into(),
        });
    }
    tracing::info!(store_id = %store_id, source = %source.kind(), "restored keys installed under this machine's key source");
    Ok(status(&envelope, &source))
}

fn unlock_recovery(envelope: &EnvelopeFile, key: &RecoveryKey) -> Result<Vec<DataKey>, CryptoError> {
    let wrap = envelope.recovery.as_ref().ok_or_else(|| CryptoError::NoRecoveryKit {
        what: format!("store {}", envelope.store_id),
    })?;
    let kek = key.kek(&envelope.store_id);
    if kek_id(&kek) != wrap.kek_id {
        return Err(CryptoError::WrongRecoveryKey {
            hint: format!(
                "it is not the recovery key of store {} issued {} UTC (a recovery kit issued later does not open what was backed up before it)",
                envelope.store_id,
                crate::clock::format_utc(wrap.created_at_ms)
            ),
        });
    }
    wrap.deks
        .iter()
        .map(|w| {
            let secret = unwrap_dek(&kek, &envelope.store_id, w)?;
            Ok(DataKey::new(w.key_id, secret, &envelope.store_id))
        })
        .collect()
}

fn unlock(envelope: &EnvelopeFile, source: &KeySource) -> Result<(usize, Vec<DataKey>), CryptoError> {
    let candidates: Vec<usize> = (0..envelope.wraps.len())
        .filter(|i| envelope.wraps[*i].key_source == source.kind())
        .collect();
    if candidates.is_empty() {
        let stored = envelope.wraps.first().map(|w| w.key_source).unwrap_or(source.kind());
        return Err(CryptoError::SourceMismatch {
            stored,
            configured: source.kind(),
        });
    }
    for index in candidates {
        let wrap = &envelope.wraps[index];
        let keks = source.load_keks(&envelope.store_id, wrap.kdf.as_ref())?;
        let Some(kek) = keks.into_iter().find(|k| kek_id(k) == wrap.kek_id) else {
            continue;
        };
        let deks = wrap
            .deks
            .iter()
            .map(|w| {
                let secret = unwrap_dek(&kek, &envelope.store_id, w)?;
                Ok(DataKey::new(w.key_id, secret, &envelope.store_id))
            })
            .collect::<Result<Vec<_>, CryptoError>>()?;
        return Ok((index, deks));
    }
    Err(CryptoError::WrongKey {
        source_kind: source.kind(),
        hint: match source.kind() {
            KeySourceKind::Passphrase => "check the passphrase".into(),
            _ => format!("check {}", source.location(&envelope.store_id)),
        },
    })
}

fn status(envelope: &EnvelopeFile, source: &KeySource) -> KeyStatus {
    KeyStatus {
        store_id: envelope.store_id,
        key_source: source.kind(),
        key_location: source.location(&envelope.store_id),
        active_key_id: envelope.active_key_id,
        data_keys: envelope.wraps.first().map(|w| w.deks.len()).unwrap_or(0),
        created_at_ms: envelope.created_at_ms,
        kek_rotated_at_ms: envelope.kek_rotated_at_ms,
        recovery_kit_created_at_ms: envelope.recovery.as_ref().map(|r| r.created_at_ms),
    }
}

fn kek_id(kek: &SecretKey) -> String {
    let mut h = Sha256::new();
    h.update(b"cloudops-storage/kek-id/v1");
    h.update(kek.as_slice());
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn wrap_aad(store_id: &uuid::Uuid, key_id: u32) -> Vec<u8> {
    let mut aad = b"cloudops-storage/dek/v1".to_vec();
    aad.extend_from_slice(store_id.as_bytes());
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad
}

fn wrap_dek(kek: &SecretKey, store_id: &uuid::Uuid, key_id: u32, dek: &[u8; 32]) -> Result<WrappedDek, CryptoError> {
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
    })
}

fn unwrap_dek(kek: &SecretKey, store_id: &uuid::Uuid, w: &WrappedDek) -> Result<SecretKey, CryptoError> {
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

fn read(data_dir: &Path) -> Result<EnvelopeFile, CryptoError> {
    let path = envelope_path(data_dir);
    let err = |reason: String| CryptoError::Envelope {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(format!("cannot read: {e}")))?;
    let envelope: EnvelopeFile = serde_json::from_str(&text).map_err(|e| err(format!("invalid: {e}")))?;
    if envelope.format != FORMAT {
        return Err(err(format!(
            "unsupported format {} (this build reads {FORMAT})",
            envelope.format
        )));
    }
    if envelope.wraps.is_empty() {
        return Err(err("holds no wrapped key".into()));
    }
    Ok(envelope)
}

/// Write atomically: temp file, fsync, rename, fsync the folder.
fn write(data_dir: &Path, envelope: &EnvelopeFile) -> Result<(), CryptoError> {
    let path = envelope_path(data_dir);
    let err = |e: std::io::Error| CryptoError::Envelope {
        path: path.display().to_string(),
        reason: format!("cannot write: {e}"),
    };
    let tmp = data_dir.join(format!("{ENVELOPE_FILE}.tmp"));
    let json = serde_json::to_vec_pretty(envelope).map_err(|e| err(std::io::Error::other(e)))?;
    let mut file = crate::platform::private_file(&tmp).map_err(err)?;
    file.write_all(&json).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    crate::platform::sync_dir(data_dir).map_err(err)
}

fn now_ms() -> i64 {
    crate::clock::now_ms()
}
