//! The disk-space guard: writes are refused with `StoreError::DiskFull` while the data dir's
//! file system is below the reserve (a full disk under qdrant-edge's memory maps is a SIGBUS).

use std::path::{Path, PathBuf};

use crate::store::StoreError;

/// The free-space reserve, checked with `statvfs` only when the bytes written since the last
/// check could have used up a quarter of the headroom above it.
#[derive(Debug)]
pub(super) struct SpaceGuard {
    pub(super) path: PathBuf,
    pub(super) reserve: u64,
    /// Bytes that may still be journaled before the next `statvfs`.
    pub(super) budget: std::sync::atomic::AtomicI64,
    /// Journal size at the last `spend`, to turn sizes into deltas.
    pub(super) last_journal: std::sync::atomic::AtomicU64,
}

impl SpaceGuard {
    pub(super) fn new(path: PathBuf, reserve: u64) -> Self {
        SpaceGuard {
            path,
            reserve,
            budget: std::sync::atomic::AtomicI64::new(0),
            last_journal: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(super) fn check(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.budget.load(Relaxed) > 0 {
            return Ok(());
        }
        check_space(&self.path, self.reserve)?;
        let free = crate::disk::disk_free_bytes(&self.path).unwrap_or(0);
        // The engine writes a few times what the journal does: re-check well before the reserve.
        let headroom = free.saturating_sub(self.reserve) / 8;
        self.budget.store(i64::try_from(headroom).unwrap_or(i64::MAX), Relaxed);
        Ok(())
    }

    /// Account for the journal having grown to `journal_bytes`.
    pub(super) fn spend(&self, journal_bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let last = self.last_journal.swap(journal_bytes, Relaxed);
        let delta = journal_bytes.saturating_sub(last).max(4096);
        self.budget.fetch_sub(i64::try_from(delta).unwrap_or(i64::MAX), Relaxed);
    }
}

/// Refuse to go on when the file system holding `path` is below the reserve.
pub(super) fn check_space(path: &Path, reserve: u64) -> Result<(), StoreError> {
    match crate::disk::disk_free_bytes(path) {
        Some(free) if free < reserve => Err(StoreError::DiskFull {
            path: path.display().to_string(),
            free_bytes: free,
            reserve_bytes: reserve,
        }),
        _ => Ok(()),
    }
}
