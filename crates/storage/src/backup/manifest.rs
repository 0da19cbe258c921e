//! The manifest written beside each archive: what it holds and how to check it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::BackupError;
use crate::crypto::{BackupKeys, WrappedKeys};
use crate::store::CollectionStats;

/// Largest manifest read, in bytes (a real one is under 2 KiB).
pub(crate) const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Latest creation time a manifest may claim: the last millisecond of year 9999.
const MAX_CREATED_AT_MS: i64 = 253_402_300_799_999;

/// Version of the archive format described by a manifest.
pub(crate) const ARCHIVE_FORMAT: u32 = 1;

/// Describes one backup. Holds no secret and no plaintext; authenticated (every field) with
/// an HMAC under a subkey of the data key, so an edited manifest is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Manifest {
    /// `{YYYYMMDDTHHMMSSZ}-{short id}`: sorts by time.
    pub name: String,
    /// The store backed up.
    pub store_id: uuid::Uuid,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
    /// Collections and their point counts at snapshot time.
    pub collections: Vec<CollectionStats>,
    /// Bytes of data copied from the store.
    pub data_bytes: u64,
    /// Bytes of the encrypted archive.
    pub archive_bytes: u64,
    /// SHA-256 of the encrypted archive, hex.
    pub sha256: String,
    /// Data key id whose backup subkey encrypted the archive.
    pub key_id: u32,
    /// Archive format version.
    pub format: u32,
    /// Version of the software that wrote it.
    pub app_version: String,
    /// How long writers were paused for the snapshot, ms.
    pub writer_pause_ms: f64,
    /// When a `verify` last proved it restorable, unix ms.
    pub verified_at_ms: Option<i64>,
    /// The store's key envelope at backup time (data keys wrapped, never clear; no
    /// passphrase wrap), so the backup opens on another machine with the recovery key.
    /// Absent in backups made before this existed. Never sent over the plugin's IPC (see
    /// [`Manifest::without_keys`]).
    #[serde(default)]
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub keys: Option<WrappedKeys>,
    /// Where the snapshot stopped in the store's shipped journal: a restore replays the
    /// shipped records from here on. Absent when the store did not ship its journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<crate::store::JournalMark>,
    /// The target's authenticated head (`HEAD`) is rewritten after this backup: a target
    /// holding such a backup and no head lost it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub head: bool,
    /// HMAC-SHA256 of every other field, hex. Empty in manifests made before this existed
    /// (those are refused: nothing proves they were not edited).
    #[serde(default)]
    pub mac: String,
}

impl Manifest {
    /// This manifest without the key envelope, for a page or any reader that does not open
    /// backups: wrapped keys, salts and key fingerprints stay out of reach of a script.
    pub fn without_keys(self) -> Manifest {
        Manifest { keys: None, ..self }
    }

    /// Total points in the backup.
    pub fn points(&self) -> u64 {
        self.collections
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.points))
    }

    /// Accept a manifest read from `file_stem` (a file or object named `{file_stem}.json`)
    /// for the store `store_id`, or say why not. A manifest is outside input (a planted or
    /// edited file, a foreign bucket): its name is joined into paths, so it must have exactly
    /// the form this code writes, and its time must be the one its name carries.
    ///
    /// # Errors
    /// The reason, for the warning that skips it.
    pub(crate) fn check(&self, file_stem: &str, store_id: &uuid::Uuid) -> Result<(), String> {
        if !is_backup_name(&self.name) {
            return Err(format!(
                "its name {:?} is not of the form YYYYMMDDTHHMMSSZ-xxxxxxxx",
                self.name
            ));
        }
        if self.name != file_stem {
            return Err(format!("it names {:?} but is stored as {file_stem:?}", self.name));
        }
        if self.store_id != *store_id {
            return Err(format!("it belongs to store {}, not {store_id}", self.store_id));
        }
        if !(0..=MAX_CREATED_AT_MS).contains(&self.created_at_ms)
            || !self.name.starts_with(&crate::clock::compact_utc(self.created_at_ms))
        {
            return Err(format!(
                "its creation time {} is not the time its name carries",
                self.created_at_ms
            ));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("its checksum is not a SHA-256 in hex".into());
        }
        let total = self
            .collections
            .iter()
            .try_fold(0u64, |sum, c| sum.checked_add(c.points));
        if total.is_none() || self.archive_bytes.checked_add(self.data_bytes).is_none() {
            return Err("its counts or sizes overflow".into());
        }
        if self.keys.as_ref().is_some_and(|k| k.store_id() != self.store_id) {
            return Err("the keys it carries belong to another store".into());
        }
        Ok(())
    }

    /// Set [`Manifest::mac`] over every other field, with the manifest subkey of `key_id`.
    ///
    /// # Errors
    /// [`BackupError::UnknownKey`] when `keys` lacks that data key.
    pub(crate) fn seal(&mut self, keys: &BackupKeys) -> Result<(), BackupError> {
        let key = keys
            .manifest_key(self.key_id)
            .ok_or(BackupError::UnknownKey { key_id: self.key_id })?;
        let mac = self.mac_over(key).map_err(|reason| BackupError::Corrupt {
            name: self.name.clone(),
            reason,
        })?;
        self.mac = hex(&hmac::Mac::finalize(mac).into_bytes());
        Ok(())
    }

    /// Check [`Manifest::mac`] with `keys`, or say why the manifest is refused.
    ///
    /// # Errors
    /// The reason: no MAC (an older version wrote it), a data key these keys lack, or a MAC
    /// that does not match (the manifest was edited, or belongs to other keys).
    pub(crate) fn authenticate(&self, keys: &BackupKeys) -> Result<(), String> {
        use hmac::Mac as _;
        if self.mac.is_empty() {
            return Err(
                "it carries no authentication code (written by an older version); restore it with that version".into(),
            );
        }
        let key = keys
            .manifest_key(self.key_id)
            .ok_or_else(|| format!("it names data key {}, which these keys do not hold", self.key_id))?;
        let tag = unhex(&self.mac).ok_or("its authentication code is not hex")?;
        self.mac_over(key)?.verify_slice(&tag).map_err(|_| {
            "its authentication code does not match: it was edited, or was made with other keys".to_string()
        })
    }

    fn mac_over(&self, key: &[u8; 32]) -> Result<hmac::Hmac<sha2::Sha256>, String> {
        use hmac::Mac as _;
        // serde_json writes struct fields in declaration order, so the bytes are stable; the
        // one float goes in as whole microseconds, because parsing JSON floats may differ
        // from the written value in the last bit.
        let unsealed = Manifest {
            mac: String::new(),
            writer_pause_ms: 0.0,
            ..self.clone()
        };
        let mut body = serde_json::to_vec(&unsealed).map_err(|e| format!("it cannot be encoded: {e}"))?;
        body.extend_from_slice(&((self.writer_pause_ms * 1e3).round() as i64).to_be_bytes());
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(b"cloudops-storage/backup-manifest/v1\0");
        mac.update(&body);
        Ok(mac)
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// `{YYYYMMDDTHHMMSSZ}-{8 lowercase hex}`, exactly as [`backup_name`] makes them.
pub(crate) fn is_backup_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..].iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// File of the archive named `name` in `dir`.
pub(super) fn archive_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.cosb"))
}

/// File of the manifest named `name` in `dir`.
pub(super) fn manifest_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Backup name for a time: `{YYYYMMDDTHHMMSSZ}-{8 hex}`.
pub(super) fn backup_name(created_at_ms: i64) -> String {
    let short = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{}-{short}", crate::clock::compact_utc(created_at_ms))
}

/// Write a manifest atomically (temp file, fsync, rename).
pub(super) fn write(dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let path = manifest_path(dir, &manifest.name);
    let io = |e| BackupError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let tmp = dir.join(format!(".{}.json.tmp", manifest.name));
    let json = serde_json::to_vec_pretty(manifest).map_err(|e| io(std::io::Error::other(e)))?;
    {
        use std::io::Write as _;
        let mut file = crate::platform::private_file(&tmp).map_err(io)?;
        file.write_all(&json).and_then(|()| file.sync_all()).map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(())
}

/// The manifests found at a backup target, and the objects that looked like manifests but
/// were refused (unreadable, another store's, or failing authentication), each `where: why`.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// Accepted manifests, oldest first.
    pub(super) manifests: Vec<Manifest>,
    /// Refused ones.
    pub(super) refused: Vec<String>,
}

impl Listing {
    /// Accept `manifest`, found at `place`, if [`Manifest::check`] does; else note why not.
    pub(super) fn take(&mut self, place: &str, manifest: Manifest, stem: &str, store_id: &uuid::Uuid) {
        match manifest.check(stem, store_id) {
            Ok(()) => self.manifests.push(manifest),
            Err(reason) => self.refuse(place, reason),
        }
    }

    /// Note that the object at `place` was refused, and why (also logged).
    pub(super) fn refuse(&mut self, place: &str, reason: String) {
        tracing::warn!(place, reason, "backup manifest refused");
        self.refused.push(format!("{place}: {reason}"));
    }

    /// The same listing with the manifests `keys` do not authenticate moved to `refused`.
    pub(super) fn authenticated(self, keys: &BackupKeys) -> Listing {
        let mut out = Listing {
            manifests: Vec::new(),
            refused: self.refused,
        };
        for m in self.manifests {
            match m.authenticate(keys) {
                Ok(()) => out.manifests.push(m),
                Err(reason) => out.refuse(&m.name, reason),
            }
        }
        out
    }

    /// Oldest first (by time, then name).
    pub(super) fn sorted(mut self) -> Listing {
        self.manifests
            .sort_by(|a, b| (a.created_at_ms, &a.name).cmp(&(b.created_at_ms, &b.name)));
        self
    }
}

/// Every manifest of store `store_id` in `dir`, oldest first. Unreadable manifests, and
/// manifests [`Manifest::check`] refuses, are skipped with a warning saying why.
pub(super) fn list(dir: &Path, store_id: &uuid::Uuid) -> Result<Vec<Manifest>, BackupError> {
    list_all(dir, store_id).map(|listing| listing.manifests)
}

/// [`list`], with what it refused.
pub(super) fn list_all(dir: &Path, store_id: &uuid::Uuid) -> Result<Listing, BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listing::default()),
        Err(e) => {
            return Err(BackupError::Io {
                path: dir.display().to_string(),
                source: e,
            })
        }
    };
    let mut out = Listing::default();
    for entry in entries.flatten() {
        let path = entry.path();
        let is_manifest = path.extension().is_some_and(|e| e == "json")
            && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !is_manifest {
            continue;
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let place = path.display().to_string();
        match read_bounded(&path).map(|b| serde_json::from_slice::<Manifest>(&b)) {
            Ok(Ok(m)) => out.take(&place, m, &stem, store_id),
            Ok(Err(e)) => out.refuse(&place, format!("it is not a manifest ({e})")),
            Err(e) => out.refuse(&place, format!("it cannot be read ({e})")),
        }
    }
    Ok(out.sorted())
}

/// The manifests of `all` that `keys` authenticate; the others are skipped with a warning.
pub(super) fn authentic(all: Vec<Manifest>, keys: &BackupKeys) -> Vec<Manifest> {
    all.into_iter()
        .filter(|m| match m.authenticate(keys) {
            Ok(()) => true,
            Err(reason) => {
                tracing::warn!(backup = %m.name, reason, "backup manifest refused");
                false
            }
        })
        .collect()
}

/// A manifest file's bytes, refusing one larger than [`MAX_MANIFEST_BYTES`].
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(std::io::Error::other("larger than any manifest"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time() {
        let a = backup_name(1_700_000_000_000);
        let b = backup_name(1_700_000_001_000);
        assert!(a.starts_with("20231114T221320Z-"), "{a}");
        assert!(a < b);
        assert!(is_backup_name(&a), "{a}");
        for bad in [
            "",
            "x/../../../home/user",
            "/etc",
            "20231114T221320Z-0123456",
            "20231114T221320Z-0123456G",
            "20231114T221320Z-01234567/..",
            "20231114T221320Z-ABCDEF01",
        ] {
            assert!(!is_backup_name(bad), "{bad}");
        }
    }
}
