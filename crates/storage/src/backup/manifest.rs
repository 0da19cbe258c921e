//! The manifest written beside each archive: what it holds and how to check it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::BackupError;
use crate::store::CollectionStats;

/// Largest manifest read, in bytes (a real one is under 2 KiB).
pub(crate) const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Latest creation time a manifest may claim: the last millisecond of year 9999.
const MAX_CREATED_AT_MS: i64 = 253_402_300_799_999;

/// Version of the archive format described by a manifest.
pub(crate) const ARCHIVE_FORMAT: u32 = 1;

/// Describes one backup. Holds no secret and no plaintext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

impl Manifest {
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
        Ok(())
    }
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
    std::fs::write(&tmp, json).map_err(io)?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(())
}

/// Every manifest of store `store_id` in `dir`, oldest first. Unreadable manifests, and
/// manifests [`Manifest::check`] refuses, are skipped with a warning saying why.
pub(super) fn list(dir: &Path, store_id: &uuid::Uuid) -> Result<Vec<Manifest>, BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(BackupError::Io {
                path: dir.display().to_string(),
                source: e,
            })
        }
    };
    let mut out = Vec::new();
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
        match read_bounded(&path).map(|b| serde_json::from_slice::<Manifest>(&b)) {
            Ok(Ok(m)) => match m.check(&stem, store_id) {
                Ok(()) => out.push(m),
                Err(reason) => tracing::warn!(path = %path.display(), reason, "backup manifest refused"),
            },
            _ => tracing::warn!(path = %path.display(), "unreadable backup manifest skipped"),
        }
    }
    out.sort_by(|a, b| (a.created_at_ms, &a.name).cmp(&(b.created_at_ms, &b.name)));
    Ok(out)
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
