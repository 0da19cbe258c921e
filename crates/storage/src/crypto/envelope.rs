//! The key envelope `<data_dir>/keys.json`: the data keys, wrapped by the KEK.
//!
//! Only wrapped keys are on disk. A KEK rotation first writes an envelope holding both the old
//! and the new wrap, then commits the new KEK to its source, then drops the old wrap: a crash at
//! any point leaves an envelope that one of the two KEKs opens.
//!
//! With a recovery kit, the data keys are wrapped a second time for the recovery key
//! ([`RecoveryKey`]); every backup carries the whole envelope ([`WrappedKeys`]), so a backup
//! can be opened on another machine with the recovery key alone.
//!
//! **Epochs.** Issuing a recovery kit, and a KEK rotation with `new_epoch` (after a leak),
//! add a new random data key and make it the active one: everything sealed from then on
//! (records, backup chunks and indexes, manifests, shipped journal) is under a key that the
//! old kit and the old KEK never wrapped, so an old kit or leaked KEK together with every
//! envelope ever written opens nothing newer. Older data keys stay in the envelope, wrapped
//! under the current KEK and kit, so older data stays readable. Search keys (keyword tokens,
//! the vector rotation) derive from the store's first data key (`index_key_id`) in every
//! epoch, so records of every epoch stay findable by one query.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::config::{KeyConfig, KeySourceKind};
use super::key_source::{KdfParams, KeySource};
use super::keyring::{DataKey, SecretKey};
use super::kit_wrap;
use super::recovery::RecoveryKey;
use super::wrap::{kek_id, unwrap_dek, wrap_dek, WrappedDek};
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
    /// The data key whose subkeys make the search tokens and the vector rotation (the
    /// store's first; a new epoch keeps it).
    #[serde(default = "first_key_id")]
    index_key_id: u32,
    kek_rotated_at_ms: Option<i64>,
    wraps: Vec<Wrap>,
    /// The data keys wrapped under the recovery key's KEK; absent until a kit is issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recovery: Option<RecoveryWrap>,
}

fn first_key_id() -> u32 {
    1
}

/// The data keys wrapped for the recovery key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RecoveryWrap {
    /// Fingerprint of the kit: of its public key, or (kits issued before public keys) of the
    /// KEK derived from it.
    kek_id: String,
    /// When this recovery key was issued (unix ms).
    created_at_ms: i64,
    /// The kit's X25519 public key (base64): each data key is wrapped to it, and a data key
    /// made later can be too. Absent for kits issued before: their wraps are under a KEK
    /// derived from the key, and a new epoch needs a new kit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
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

/// The unlocked keys of a store.
#[derive(Debug)]
pub(crate) struct UnlockedKeys {
    pub(crate) active_key_id: u32,
    pub(crate) index_key_id: u32,
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
    /// Id of the data key that seals new data: the epoch (each recovery kit issued and each
    /// rotation with a new epoch adds one).
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
    let mut data_keys = Vec::new();
    let key_id = add_data_key(&store_id, &mut data_keys)?;
    let envelope = EnvelopeFile {
        format: FORMAT,
        store_id,
        created_at_ms: now_ms(),
        active_key_id: key_id,
        index_key_id: key_id,
        kek_rotated_at_ms: None,
        wraps: vec![kek_wrap(&source, &new.kek, new.kdf.clone(), &store_id, &data_keys)?],
        recovery: None,
    };
    // Commit the KEK to its source first: an envelope nobody can open is worse than a stray key.
    source.commit(&store_id, &new)?;
    write(data_dir, &envelope)?;
    Ok(unlocked(&envelope, &source, data_keys))
}

/// Unlock an existing store's keys with the configured source.
/// A passphrase wrap made with weaker Argon2id parameters than today's is rewrapped (same
/// passphrase, today's parameters) on the way.
pub(crate) fn open(data_dir: &Path, config: &KeyConfig) -> Result<UnlockedKeys, CryptoError> {
    let mut envelope = read(data_dir)?;
    let source = KeySource::new(config);
    let opened = unlock(&envelope, &source)?;
    if envelope.wraps[opened.index]
        .kdf
        .as_ref()
        .is_some_and(KdfParams::below_current)
    {
        upgrade_passphrase_wrap(data_dir, &mut envelope, opened.index, &source, &opened.deks);
    }
    Ok(unlocked(&envelope, &source, opened.deks))
}

/// Replace wrap `index` (a passphrase wrap under old Argon2id parameters) with one under
/// today's, from the same passphrase, in one atomic write. A failure (a passphrase too weak
/// for a new wrap, a full disk) keeps the old wrap and is logged: the store still opens.
fn upgrade_passphrase_wrap(
    data_dir: &Path,
    envelope: &mut EnvelopeFile,
    index: usize,
    source: &KeySource,
    deks: &[DataKey],
) {
    let upgraded = source.create_kek(false).and_then(|new| {
        let mut upgraded = envelope.clone();
        upgraded.wraps[index] = kek_wrap(source, &new.kek, new.kdf.clone(), &envelope.store_id, deks)?;
        write(data_dir, &upgraded)?;
        Ok(upgraded)
    });
    match upgraded {
        Ok(upgraded) => {
            *envelope = upgraded;
            tracing::info!(store_id = %envelope.store_id, "passphrase wrap upgraded to today's Argon2id parameters");
        }
        Err(e) => tracing::warn!(error = %e, "kept the passphrase wrap with older Argon2id parameters"),
    }
}

/// Re-wrap the data keys with a new KEK from `to` (which may be the same source). With
/// `new_epoch` (the old KEK may have leaked), also add a new data key, wrapped under the new
/// KEK and for the recovery kit only, and make it the active one. Data is untouched.
///
/// # Errors
/// Crypto errors of either source (the old KEK keeps working then);
/// [`CryptoError::KitCannotReceive`] for a new epoch while the kit predates public keys.
pub(crate) fn rotate_kek(
    data_dir: &Path,
    current: &KeyConfig,
    to: &KeyConfig,
    new_epoch: bool,
) -> Result<UnlockedKeys, CryptoError> {
    let mut envelope = read(data_dir)?;
    let old_source = KeySource::new(current);
    let opened = unlock(&envelope, &old_source)?;
    let mut deks = opened.deks;
    let store_id = envelope.store_id;
    let epoch = if new_epoch {
        let id = add_data_key(&store_id, &mut deks)?;
        if let Some(recovery) = envelope.recovery.as_mut() {
            let public = recovery.public_key.as_deref().ok_or(CryptoError::KitCannotReceive)?;
            let dek = deks
                .iter()
                .find(|d| d.key_id == id)
                .map(DataKey::secret)
                .ok_or_else(|| missing(id))?;
            recovery.deks.push(kit_wrap::wrap_for_kit(public, &store_id, id, dek)?);
        }
        Some(id)
    } else {
        None
    };
    let new_source = KeySource::new(to);
    new_source.probe(&store_id)?;
    let new = new_source.create_kek(current.source == to.source)?;
    let new_wrap = kek_wrap(&new_source, &new.kek, new.kdf.clone(), &store_id, &deks)?;
    // Step 1: both wraps on disk (the old one without the new epoch's key, which stays
    // inactive until step 3). Step 2: the source holds the new KEK. Step 3: old wrap gone.
    let old_wrap = envelope.wraps[opened.index].clone();
    envelope.wraps = vec![old_wrap, new_wrap.clone()];
    write(data_dir, &envelope)?;
    new_source.commit(&store_id, &new)?;
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
        unlock(&only_new, &new_source)?.deks.len()
    };
    if reopened != deks.len() {
        return Err(CryptoError::Envelope {
            path: envelope_path(data_dir).display().to_string(),
            reason: "the new key-encryption key does not open every data key; the old one still does".into(),
        });
    }
    envelope.wraps = vec![new_wrap];
    envelope.kek_rotated_at_ms = Some(now_ms());
    if let Some(id) = epoch {
        envelope.active_key_id = id;
    }
    write(data_dir, &envelope)?;
    tracing::info!(store_id = %store_id, to = %new_source.kind(), new_epoch, active_key_id = envelope.active_key_id, "key-encryption key rotated");
    Ok(unlocked(&envelope, &new_source, deks))
}

/// Issue a new recovery key: every data key is wrapped for the new kit only (replacing the
/// previous recovery wrap), and when it replaces a kit, a new epoch starts (a new data key
/// becomes the active one), so the old kit opens neither this store nor anything written
/// from now on, even with every envelope ever backed up. The envelope is read back to prove the KEK and the new key open
/// it. Backups taken before keep the wrap they carry and still open with the old kit.
pub(crate) fn issue_recovery_key(
    data_dir: &Path,
    config: &KeyConfig,
) -> Result<(RecoveryKey, UnlockedKeys), CryptoError> {
    let mut envelope = read(data_dir)?;
    let source = KeySource::new(config);
    let opened = unlock(&envelope, &source)?;
    let mut deks = opened.deks;
    let store_id = envelope.store_id;
    // The first kit revokes nothing: no epoch needed.
    let epoch = match envelope.recovery {
        Some(_) => Some(add_data_key(&store_id, &mut deks)?),
        None => None,
    };
    let key = RecoveryKey::generate();
    let public = kit_wrap::public_key(&key, &store_id);
    envelope.recovery = Some(RecoveryWrap {
        kek_id: kit_wrap::kit_id(&public),
        created_at_ms: now_ms(),
        deks: deks
            .iter()
            .map(|d| kit_wrap::wrap_for_kit(&public, &store_id, d.key_id, d.secret()))
            .collect::<Result<_, _>>()?,
        public_key: Some(public),
    });
    let mut wrap = envelope.wraps[opened.index].clone();
    if let Some(id) = epoch {
        let dek = deks
            .iter()
            .find(|d| d.key_id == id)
            .map(DataKey::secret)
            .ok_or_else(|| missing(id))?;
        wrap.deks.push(wrap_dek(&opened.kek, &store_id, id, dek)?);
        envelope.active_key_id = id;
    }
    envelope.wraps = vec![wrap];
    write(data_dir, &envelope)?;
    let written = read(data_dir)?;
    if written != envelope
        || unlock_recovery(&written, &key)?.len() != deks.len()
        || unlock(&written, &source)?.deks.len() != deks.len()
    {
        return Err(CryptoError::Envelope {
            path: envelope_path(data_dir).display().to_string(),
            reason: "reading the envelope back after writing the recovery wrap gave something else".into(),
        });
    }
    tracing::info!(store_id = %store_id, active_key_id = envelope.active_key_id, "recovery key issued");
    Ok((key, unlocked(&envelope, &source, deks)))
}

/// Check that `config`'s source can hold a KEK for `store_id`, before work that needs it.
pub(crate) fn probe_source(config: &KeyConfig, store_id: &uuid::Uuid) -> Result<(), CryptoError> {
    KeySource::new(config).probe(store_id)
}

/// The envelope of the store in `data_dir`, for a backup to carry: the recovery wrap and the
/// wraps under random KEKs (key file, keychain, variable), never a passphrase wrap, whose
/// salt and parameters would let anyone with the bucket guess the passphrase offline.
pub(crate) fn wrapped_keys(data_dir: &Path) -> Result<WrappedKeys, CryptoError> {
    let mut envelope = read(data_dir)?;
    envelope.wraps.retain(|w| w.key_source != KeySourceKind::Passphrase);
    Ok(WrappedKeys(envelope))
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
        None if envelope.wraps.is_empty() => {
            return Err(CryptoError::NoRecoveryKit {
                what: format!(
                    "this backup of store {} (backups never carry a passphrase wrap: open it with the recovery kit)",
                    envelope.store_id
                ),
            })
        }
        None => unlock(envelope, &source)?.deks,
    };
    Ok(unlocked(envelope, &source, data_keys))
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
    let envelope = EnvelopeFile {
        wraps: vec![kek_wrap(
            &source,
            &new.kek,
            new.kdf.clone(),
            &store_id,
            &unlocked.data_keys,
        )?],
        kek_rotated_at_ms: Some(now_ms()),
        ..keys.0.clone()
    };
    source.commit(&store_id, &new)?;
    write(data_dir, &envelope)?;
    // Prove this machine's source opens what was written before anyone relies on it.
    let reopened = unlock(&read(data_dir)?, &source)?.deks;
    if reopened.len() != unlocked.data_keys.len() {
        return Err(CryptoError::Envelope {
            path: envelope_path(data_dir).display().to_string(),
            reason: "reading the installed envelope back gave other keys".into(),
        });
    }
    tracing::info!(store_id = %store_id, source = %source.kind(), "restored keys installed under this machine's key source");
    Ok(status(&envelope, &source))
}

/// Add a new random data key to `deks`, with the next id; returns the id.
fn add_data_key(store_id: &uuid::Uuid, deks: &mut Vec<DataKey>) -> Result<u32, CryptoError> {
    let id = deks
        .iter()
        .map(|d| d.key_id)
        .max()
        .unwrap_or(0)
        .checked_add(1)
        .ok_or_else(|| CryptoError::Key("no data key id is left".into()))?;
    let mut dek = Zeroizing::new([0u8; 32]);
    rand::thread_rng().fill_bytes(dek.as_mut_slice());
    deks.push(DataKey::new(id, dek, store_id));
    Ok(id)
}

fn missing(key_id: u32) -> CryptoError {
    CryptoError::Key(format!("data key {key_id} is not loaded"))
}

/// Every data key in `deks` wrapped under `kek` from `source`.
fn kek_wrap(
    source: &KeySource,
    kek: &SecretKey,
    kdf: Option<KdfParams>,
    store_id: &uuid::Uuid,
    deks: &[DataKey],
) -> Result<Wrap, CryptoError> {
    Ok(Wrap {
        key_source: source.kind(),
        kek_id: kek_id(kek),
        kdf,
        deks: deks
            .iter()
            .map(|d| wrap_dek(kek, store_id, d.key_id, d.secret()))
            .collect::<Result<_, _>>()?,
    })
}

fn unlocked(envelope: &EnvelopeFile, source: &KeySource, data_keys: Vec<DataKey>) -> UnlockedKeys {
    UnlockedKeys {
        active_key_id: envelope.active_key_id,
        index_key_id: envelope.index_key_id,
        data_keys,
        status: status(envelope, source),
    }
}

fn unlock_recovery(envelope: &EnvelopeFile, key: &RecoveryKey) -> Result<Vec<DataKey>, CryptoError> {
    let store_id = envelope.store_id;
    let wrap = envelope.recovery.as_ref().ok_or_else(|| CryptoError::NoRecoveryKit {
        what: format!("store {store_id}"),
    })?;
    let (fingerprint, kek) = match &wrap.public_key {
        Some(_) => (kit_wrap::kit_id(&kit_wrap::public_key(key, &store_id)), None),
        None => {
            let kek = key.kek(&store_id);
            (kek_id(&kek), Some(kek))
        }
    };
    if fingerprint != wrap.kek_id {
        return Err(CryptoError::WrongRecoveryKey {
            hint: format!(
                "it is not the recovery key of store {store_id} issued {} UTC (a recovery kit opens what was backed up while it was the store's kit, and nothing written after a newer one was issued)",
                crate::clock::format_utc(wrap.created_at_ms)
            ),
        });
    }
    wrap.deks
        .iter()
        .map(|w| {
            let secret = match &kek {
                Some(kek) => unwrap_dek(kek, &store_id, w)?,
                None => kit_wrap::unwrap_with_kit(key, &store_id, w)?,
            };
            Ok(DataKey::new(w.key_id, secret, &store_id))
        })
        .collect()
}

/// The data keys of the first wrap whose KEK `source` gives, with that wrap's index and KEK.
struct Opened {
    index: usize,
    kek: SecretKey,
    deks: Vec<DataKey>,
}

fn unlock(envelope: &EnvelopeFile, source: &KeySource) -> Result<Opened, CryptoError> {
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
        return Ok(Opened { index, kek, deks });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Passphrase;

    #[test]
    fn an_old_argon2_wrap_is_upgraded_on_open_and_opens_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let pass = "vivid tundra oboe lantern mosaic";
        let config = KeyConfig {
            source: KeySourceKind::Passphrase,
            passphrase: Some(Passphrase::new(pass)),
            passphrase_env_var: "COS_TEST_UNSET_PASSPHRASE_VAR".into(),
            ..KeyConfig::default()
        };
        let created = create(dir.path(), &config).unwrap();
        // What an older version wrote: 19 MiB and 2 passes.
        let mut envelope = read(dir.path()).unwrap();
        let weak = KdfParams {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            ..envelope.wraps[0].kdf.clone().unwrap()
        };
        let kek = super::super::key_source::derive_from_passphrase(pass, &weak).unwrap();
        let source = KeySource::new(&config);
        envelope.wraps[0] = kek_wrap(&source, &kek, Some(weak), &envelope.store_id, &created.data_keys).unwrap();
        write(dir.path(), &envelope).unwrap();
        assert!(read(dir.path()).unwrap().wraps[0].kdf.as_ref().unwrap().below_current());

        let opened = open(dir.path(), &config).unwrap();
        let kdf = read(dir.path()).unwrap().wraps[0].kdf.clone().unwrap();
        assert!(!kdf.below_current(), "{kdf:?}");
        assert_eq!(opened.data_keys.len(), 1);
        assert_eq!(opened.data_keys[0].secret(), created.data_keys[0].secret());
        // And it opens again from the upgraded wrap.
        assert_eq!(
            open(dir.path(), &config).unwrap().data_keys[0].secret(),
            created.data_keys[0].secret()
        );
    }
}
