//! Bounding qdrant-edge's own write-ahead log.
//!
//! qdrant-edge 0.7.2 appends every update to a WAL under `<collection>/wal/` (about 0.6 KB per
//! write) and never truncates it: nothing in its API acknowledges entries, and it does not
//! replay the WAL when a shard is loaded either (our journal does that, see `journal.rs`). So
//! the WAL only grows: 58 MiB after 100k messages, every estate re-sync adding more.
//!
//! The WAL keeps entries in segment files: `open-N` (being written or preallocated) and
//! `closed-START` (full, holding entries from index START on). Before a shard is loaded, every
//! closed segment but the newest [`KEEP_CLOSED`] is removed: what remains is a contiguous
//! suffix, so the engine opens the WAL where it left off and numbers the next update after
//! the last one (segments ignore operations numbered below their version, so the numbering
//! must never restart). This is the prefix truncation the server does once an operation is
//! applied everywhere; here every entry is already applied and flushed (the data dir lock
//! guarantees no other process has the shard open). While the store is open, a checkpoint
//! reloads a collection whose prunable WAL passed [`RELOAD_PAST_BYTES`], pruning it between
//! the drop and the load (`Shard::reload`).

use std::path::Path;

use crate::store::StoreError;

/// Closed WAL segments kept (the newest ones).
pub(super) const KEEP_CLOSED: usize = 1;
/// Capacity of one WAL segment of a new collection: 8 MiB instead of the engine's 32 MiB, so
/// a collection preallocates less and pruning frees space in smaller steps.
pub(super) const SEGMENT_CAPACITY: usize = 8 * 1024 * 1024;

/// Prunable WAL bytes of one collection past which a checkpoint reloads it, the only way to
/// free them while the store is open (the engine keeps every segment mapped). A 1M-message
/// fill with dense vectors wrote 2.9 GiB of engine WAL in 10 minutes; each reload pauses the
/// collection's writers for one load of the shard.
pub(super) const RELOAD_PAST_BYTES: u64 = 256 * 1024 * 1024;

const WAL_DIR: &str = "wal";
const CLOSED_PREFIX: &str = "closed-";

/// Remove all but the newest [`KEEP_CLOSED`] closed WAL segments of the collection in
/// `collection_dir` (not loaded by anyone). Returns the bytes freed.
///
/// # Errors
/// [`StoreError::Io`] when the WAL folder cannot be listed or a segment removed.
pub(super) fn prune(collection_dir: &Path) -> Result<u64, StoreError> {
    let old = old_segments(collection_dir)?;
    let mut freed = 0;
    // Oldest first: a crash part-way leaves a contiguous suffix, which the engine opens.
    for (path, bytes) in &old {
        std::fs::remove_file(path).map_err(|source| StoreError::Io {
            action: "removing an old engine WAL segment",
            path: path.display().to_string(),
            source,
        })?;
        freed += bytes;
    }
    if !old.is_empty() {
        tracing::debug!(collection = %collection_dir.display(), segments = old.len(), bytes = freed, "pruned the engine's WAL");
    }
    Ok(freed)
}

/// The closed WAL segments of the collection in `collection_dir` that [`prune`] removes
/// (every one but the newest [`KEEP_CLOSED`]), oldest first, with their sizes on disk. A
/// snapshot leaves them out: a store restored from it opens as a pruned one does.
///
/// # Errors
/// [`StoreError::Io`] when the WAL folder cannot be listed.
pub(super) fn old_segments(collection_dir: &Path) -> Result<Vec<(std::path::PathBuf, u64)>, StoreError> {
    let wal_dir = collection_dir.join(WAL_DIR);
    let io = |source| StoreError::Io {
        action: "listing the engine's WAL",
        path: wal_dir.display().to_string(),
        source,
    };
    let entries = match std::fs::read_dir(&wal_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut closed: Vec<(u64, std::path::PathBuf, u64)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(start) = name
            .to_str()
            .and_then(|n| n.strip_prefix(CLOSED_PREFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        closed.push((start, entry.path(), allocated_bytes(&entry)));
    }
    closed.sort_unstable_by_key(|(start, _, _)| *start);
    let remove = closed.len().saturating_sub(KEEP_CLOSED);
    Ok(closed
        .into_iter()
        .take(remove)
        .map(|(_, path, bytes)| (path, bytes))
        .collect())
}

/// Bytes a file occupies on disk (WAL segments are preallocated sparse files).
fn allocated_bytes(entry: &std::fs::DirEntry) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    entry.metadata().map_or(0, |m| m.blocks() * 512)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), b"segment").unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn keeps_the_newest_closed_segment_and_every_open_one() {
        let collection = tempfile::tempdir().unwrap();
        let wal = collection.path().join(WAL_DIR);
        std::fs::create_dir(&wal).unwrap();
        for name in [
            "closed-0",
            "closed-9000",
            "closed-18000",
            "open-4",
            "open-5",
            "first-index",
        ] {
            touch(&wal, name);
        }
        assert!(prune(collection.path()).unwrap() > 0);
        assert_eq!(names(&wal), ["closed-18000", "first-index", "open-4", "open-5"]);
        // Numeric order, not text order: closed-18000 is newer than closed-9000.
        assert_eq!(prune(collection.path()).unwrap(), 0);
    }

    #[test]
    fn a_collection_without_a_wal_or_closed_segments_is_left_alone() {
        let collection = tempfile::tempdir().unwrap();
        assert_eq!(prune(collection.path()).unwrap(), 0);
        let wal = collection.path().join(WAL_DIR);
        std::fs::create_dir(&wal).unwrap();
        touch(&wal, "closed-7");
        touch(&wal, "open-1");
        assert_eq!(prune(collection.path()).unwrap(), 0);
        assert_eq!(names(&wal), ["closed-7", "open-1"]);
    }
}
