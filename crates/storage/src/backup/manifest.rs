//! The manifest written beside each archive: what it holds and how to check it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::BackupError;
use crate::store::CollectionStats;

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
        self.collections.iter().map(|c| c.points).sum()
    }
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

/// Every manifest in `dir`, oldest first. Unreadable manifests are skipped with a warning.
pub(super) fn list(dir: &Path) -> Result<Vec<Manifest>, BackupError> {
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
        match std::fs::read(&path).map(|b| serde_json::from_slice::<Manifest>(&b)) {
            Ok(Ok(m)) => out.push(m),
            _ => tracing::warn!(path = %path.display(), "unreadable backup manifest skipped"),
        }
    }
    out.sort_by(|a, b| (a.created_at_ms, &a.name).cmp(&(b.created_at_ms, &b.name)));
    Ok(out)
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
    }
}
