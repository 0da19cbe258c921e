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
//! guarantees no other process has the shard open).
//!
//! While a collection is loaded the engine keeps every segment mapped, so removing a file
//! would free nothing. A checkpoint instead punches the old segments' blocks out
//! ([`punch_old_segments`]): the disk space is freed at once, the files keep their length, and
//! the engine, which never reads a closed segment again, keeps its mappings (reading them would
//! give zeros). What stays is the engine's in-memory index of those entries (16 bytes each) and
//! the mappings themselves; a reload frees them ([`WalAction`]): when the collection has been
//! idle a while, or at once past a large bound.
//!
//! A snapshot copies none of the WAL's entries: it holds one empty closed segment numbered
//! where the live WAL stops ([`next_index`], [`write_empty_wal`]), as qdrant's own snapshots
//! do. The entries are never read, and copying them made every incremental backup upload
//! each recent write twice.

use std::path::Path;

use crate::store::StoreError;

/// Closed WAL segments kept (the newest ones).
pub(super) const KEEP_CLOSED: usize = 1;
/// Capacity of one WAL segment of a new collection: 8 MiB instead of the engine's 32 MiB, so
/// a collection preallocates less and pruning frees space in smaller steps.
pub(super) const SEGMENT_CAPACITY: usize = 8 * 1024 * 1024;

/// What a checkpoint does about a collection's old WAL segments once it has punched them
/// (see [`WalBounds::action`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WalAction {
    /// Nothing: the old segments hold little.
    Keep,
    /// Reload the collection once no write has reached it for a while (off the write path).
    ReloadWhenIdle,
    /// Reload it now, under the checkpoint's pause of the writers.
    ReloadNow,
}

/// When old WAL segments make a collection worth reloading.
#[derive(Debug, Clone, Copy)]
pub(super) struct WalBounds {
    /// Bytes still on disk (where blocks cannot be punched out, as on file systems without
    /// hole punching) or mapped past which the collection is reloaded once idle; past the
    /// same bytes on disk it is reloaded at once.
    pub(super) idle_reload_past: u64,
    /// Mapped bytes past which the collection is reloaded at once, idle or not. A 1M-message
    /// fill with dense vectors writes ~4 GiB of WAL to its messages collection; each reload
    /// pauses that collection's writers for one load of the shard (0.3–0.75 s there).
    pub(super) reload_past: u64,
    /// How long a collection must go without writes before an idle reload.
    pub(super) idle_after: std::time::Duration,
}

impl Default for WalBounds {
    fn default() -> Self {
        WalBounds {
            idle_reload_past: 256 * 1024 * 1024,
            reload_past: 8 * 1024 * 1024 * 1024,
            idle_after: std::time::Duration::from_secs(2),
        }
    }
}

impl WalBounds {
    /// What to do about `old` (after punching).
    pub(super) fn action(&self, old: &OldSegments) -> WalAction {
        if old.on_disk > self.idle_reload_past || old.mapped > self.reload_past {
            WalAction::ReloadNow
        } else if old.mapped > self.idle_reload_past {
            WalAction::ReloadWhenIdle
        } else {
            WalAction::Keep
        }
    }
}

/// The closed WAL segments of a collection that [`prune`] removes.
#[derive(Debug, Default)]
pub(super) struct OldSegments {
    /// Their paths, oldest first.
    pub(super) paths: Vec<std::path::PathBuf>,
    /// Bytes they occupy on disk.
    pub(super) on_disk: u64,
    /// Their lengths: what the engine keeps mapped while the collection is loaded.
    pub(super) mapped: u64,
}

/// The engine's WAL folder inside a collection folder.
pub(super) const WAL_DIR: &str = "wal";
const CLOSED_PREFIX: &str = "closed-";
const OPEN_PREFIX: &str = "open-";
const TMP_PREFIX: &str = "tmp-";
/// A segment starts with `"wal"`, format version 0 and a CRC seed (u32 LE); each entry with
/// its length (u64 LE), then the entry, zeros up to 4 bytes short of an 8-byte boundary and
/// its CRC-32C (u32 LE).
const SEGMENT_HEADER_MAGIC: &[u8; 4] = b"wal\0";
const SEGMENT_HEADER_LEN: usize = 8;
const CRC_LEN: usize = 4;

/// Remove all but the newest [`KEEP_CLOSED`] closed WAL segments of the collection in
/// `collection_dir` (not loaded by anyone). Returns the bytes freed.
///
/// # Errors
/// [`StoreError::Io`] when the WAL folder cannot be listed or a segment removed.
pub(super) fn prune(collection_dir: &Path) -> Result<u64, StoreError> {
    let old = old_segments(collection_dir)?;
    // Oldest first: a crash part-way leaves a contiguous suffix, which the engine opens.
    for path in &old.paths {
        std::fs::remove_file(path).map_err(|source| StoreError::Io {
            action: "removing an old engine WAL segment",
            path: path.display().to_string(),
            source,
        })?;
    }
    if !old.paths.is_empty() {
        tracing::debug!(collection = %collection_dir.display(), segments = old.paths.len(), bytes = old.on_disk, "pruned the engine's WAL");
    }
    Ok(old.on_disk)
}

/// Free the disk blocks of the old segments of a loaded collection (those [`prune`] would
/// remove), keeping the files and their lengths for the engine's mappings. Returns the
/// segments as they are afterwards; where the file system cannot punch holes they keep their
/// blocks (then [`WalBounds::action`] reloads the collection). The caller has flushed the
/// collection: the engine finished writing these segments when it closed them and never
/// reads them while loaded.
///
/// # Errors
/// [`StoreError::Io`] when the WAL folder cannot be listed or a segment cannot be opened or
/// punched for another reason than lack of support.
pub(super) fn punch_old_segments(collection_dir: &Path) -> Result<OldSegments, StoreError> {
    let mut old = old_segments(collection_dir)?;
    if old.on_disk == 0 {
        return Ok(old);
    }
    let mut freed = 0;
    for path in &old.paths {
        match crate::platform::punch_out(path) {
            Ok(bytes) => freed += bytes,
            Err(e) if crate::platform::is_unsupported(&e) => {
                tracing::debug!(path = %path.display(), error = %e, "this file system cannot punch holes: the collection will be reloaded instead");
                break;
            }
            Err(source) => {
                return Err(StoreError::Io {
                    action: "freeing an old engine WAL segment",
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    }
    old.on_disk = old.on_disk.saturating_sub(freed);
    if freed > 0 {
        tracing::debug!(collection = %collection_dir.display(), bytes = freed, "punched out old engine WAL segments");
    }
    Ok(old)
}

/// The closed WAL segments of the collection in `collection_dir` that [`prune`] removes
/// (every one but the newest [`KEEP_CLOSED`]).
///
/// # Errors
/// [`StoreError::Io`] when the WAL folder cannot be listed.
pub(super) fn old_segments(collection_dir: &Path) -> Result<OldSegments, StoreError> {
    let wal_dir = collection_dir.join(WAL_DIR);
    let io = |source| StoreError::Io {
        action: "listing the engine's WAL",
        path: wal_dir.display().to_string(),
        source,
    };
    let entries = match std::fs::read_dir(&wal_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OldSegments::default()),
        Err(e) => return Err(io(e)),
    };
    let mut closed: Vec<(u64, std::path::PathBuf, (u64, u64))> = Vec::new();
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
        closed.push((start, entry.path(), sizes(&entry)));
    }
    closed.sort_unstable_by_key(|(start, _, _)| *start);
    let remove = closed.len().saturating_sub(KEEP_CLOSED);
    let mut old = OldSegments::default();
    for (_, path, (on_disk, mapped)) in closed.into_iter().take(remove) {
        old.paths.push(path);
        old.on_disk += on_disk;
        old.mapped += mapped;
    }
    Ok(old)
}

/// The file the engine creates and locks in its WAL folder on Windows (elsewhere it locks the
/// folder itself).
const WINDOWS_LOCK_FILE: &str = ".wal";

/// Whether a snapshot leaves `path` out: a WAL segment ([`is_segment_file`]) or the engine's
/// lock file (a live process's lock, made again by the engine that opens the copy).
pub(super) fn left_out_of_snapshots(path: &Path) -> bool {
    let in_wal = path.parent().and_then(Path::file_name) == Some(WAL_DIR.as_ref());
    is_segment_file(path) || (in_wal && path.file_name() == Some(WINDOWS_LOCK_FILE.as_ref()))
}

/// Whether `path` is one of the engine's WAL segment files (`open-N`, `closed-START`, or a
/// `tmp-` file it is preparing). A snapshot leaves them all out and writes
/// [`write_empty_wal`] instead.
pub(super) fn is_segment_file(path: &Path) -> bool {
    let in_wal = path.parent().and_then(Path::file_name) == Some(WAL_DIR.as_ref());
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    in_wal
        && [CLOSED_PREFIX, OPEN_PREFIX, TMP_PREFIX]
            .iter()
            .any(|p| name.starts_with(p))
}

/// The index the engine gives the next update of the collection in `collection_dir`: the
/// start of its newest closed segment plus the entries in that segment and in the open ones.
/// The collection may be loaded, but no update may be running (the caller pauses writers).
///
/// Entries are counted as the engine counts them when it opens a segment: a chain of
/// length-prefixed records, each ending in a CRC-32C seeded by the previous one; the first
/// record whose CRC does not match ends the segment.
///
/// # Errors
/// [`StoreError::Io`] when the WAL cannot be listed or read, or a segment has no WAL header.
pub(super) fn next_index(collection_dir: &Path) -> Result<u64, StoreError> {
    let wal_dir = collection_dir.join(WAL_DIR);
    let io = |path: &Path, source| StoreError::Io {
        action: "reading the engine's WAL",
        path: path.display().to_string(),
        source,
    };
    let entries = match std::fs::read_dir(&wal_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(&wal_dir, e)),
    };
    let mut newest_closed: Option<(u64, std::path::PathBuf)> = None;
    let mut open: Vec<(u64, std::path::PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io(&wal_dir, e))?;
        let name = entry.file_name();
        let name = name.to_str().unwrap_or("");
        let number = |prefix: &str| name.strip_prefix(prefix).and_then(|n| n.parse::<u64>().ok());
        if let Some(start) = number(CLOSED_PREFIX) {
            if newest_closed.as_ref().is_none_or(|(newest, _)| start > *newest) {
                newest_closed = Some((start, entry.path()));
            }
        } else if let Some(id) = number(OPEN_PREFIX) {
            open.push((id, entry.path()));
        }
    }
    let mut next = match &newest_closed {
        Some((start, path)) => start + count_entries(path).map_err(|e| io(path, e))?,
        None => 0,
    };
    // A segment closed by a rename that did not reach the disk is still `open-N`: the engine
    // closes it again on opening, in id order, after the closed ones.
    open.sort_unstable_by_key(|(id, _)| *id);
    for (_, path) in &open {
        next += count_entries(path).map_err(|e| io(path, e))?;
    }
    Ok(next)
}

/// Entries in the WAL segment file at `path`.
fn count_entries(path: &Path) -> std::io::Result<u64> {
    let segment = std::fs::read(path)?;
    let capacity = segment.len() & !7;
    if capacity < SEGMENT_HEADER_LEN || &segment[..4] != SEGMENT_HEADER_MAGIC {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a WAL segment of a known version",
        ));
    }
    let word = |at: usize, len: usize| segment.get(at..at + len);
    let mut crc = u32::from_le_bytes([segment[4], segment[5], segment[6], segment[7]]);
    let (mut offset, mut entries) = (SEGMENT_HEADER_LEN, 0u64);
    while offset + SEGMENT_HEADER_LEN + CRC_LEN < capacity {
        let Some(len) = word(offset, 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes) else {
            break;
        };
        // Padded so that the entry with its length and CRC fills whole 8-byte words.
        let Some(padded) = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(4usize.wrapping_sub(l) & 7))
        else {
            break;
        };
        let Some(end) = offset
            .checked_add(SEGMENT_HEADER_LEN + padded)
            .filter(|end| end + CRC_LEN <= capacity)
        else {
            break;
        };
        let computed = crc32c::crc32c_append(!crc.reverse_bits(), &segment[offset..end]);
        let Some(stored) = word(end, CRC_LEN)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
        else {
            break;
        };
        if computed != stored {
            break;
        }
        crc = computed;
        entries += 1;
        offset = end + CRC_LEN;
    }
    Ok(entries)
}

/// Write into `wal_dir` (created) an engine WAL with no entries whose next update gets
/// index `next`: one empty closed segment starting there, as qdrant's own snapshots do
/// (`Wal::generate_empty_wal_starting_at_index`). Segments ignore updates numbered below a
/// point's version, so a store restored from a snapshot must go on numbering where the
/// source stopped; the entries themselves are never replayed (see the module docs).
///
/// # Errors
/// The I/O error of creating the folder or writing the segment.
pub(super) fn write_empty_wal(wal_dir: &Path, next: u64) -> std::io::Result<()> {
    crate::platform::private_dir_all(wal_dir)?;
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[..4].copy_from_slice(SEGMENT_HEADER_MAGIC);
    header[4..].copy_from_slice(&rand::random::<u32>().to_le_bytes());
    std::fs::write(wal_dir.join(format!("{CLOSED_PREFIX}{next}")), header)
}

/// Bytes a file occupies on disk (WAL segments are preallocated sparse files) and its length.
fn sizes(entry: &std::fs::DirEntry) -> (u64, u64) {
    entry
        .metadata()
        .map_or((0, 0), |m| (crate::platform::allocated_bytes(&m), m.len()))
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

    // Linux file systems a store lives on (ext4, XFS, Btrfs, tmpfs) and APFS all punch holes;
    // elsewhere nothing is freed and the caller reloads the collection instead.
    #[test]
    fn punching_frees_the_old_segments_blocks_and_keeps_their_length_and_the_newest_intact() {
        let collection = tempfile::tempdir().unwrap();
        let wal = collection.path().join(WAL_DIR);
        std::fs::create_dir(&wal).unwrap();
        let segment = vec![0xA5u8; 1 << 20];
        for name in ["closed-0", "closed-100", "closed-200", "open-3"] {
            std::fs::write(wal.join(name), &segment).unwrap();
        }
        let before = old_segments(collection.path()).unwrap();
        assert_eq!(before.paths, [wal.join("closed-0"), wal.join("closed-100")]);
        assert!(before.on_disk >= 2 << 20);
        assert_eq!(before.mapped, 2 << 20);

        let after = punch_old_segments(collection.path()).unwrap();
        if !crate::platform::PUNCHES_HOLES {
            assert_eq!(after.on_disk, before.on_disk, "nothing to free without hole punching");
            return;
        }
        assert_eq!(after.on_disk, 0);
        assert_eq!(after.mapped, 2 << 20);
        for name in ["closed-0", "closed-100"] {
            let punched = std::fs::read(wal.join(name)).unwrap();
            assert_eq!(punched.len(), 1 << 20);
            assert!(punched.iter().all(|&b| b == 0));
        }
        for name in ["closed-200", "open-3"] {
            assert_eq!(std::fs::read(wal.join(name)).unwrap(), segment);
        }
        // Punched segments are still removed by the next prune.
        prune(collection.path()).unwrap();
        assert_eq!(names(&wal), ["closed-200", "open-3"]);
    }

    #[test]
    fn bounds_reload_at_once_past_the_disk_or_mapped_bound_and_when_idle_past_the_idle_one() {
        let bounds = WalBounds {
            idle_reload_past: 100,
            reload_past: 1000,
            idle_after: std::time::Duration::from_secs(1),
        };
        let old = |on_disk, mapped| OldSegments {
            paths: Vec::new(),
            on_disk,
            mapped,
        };
        assert_eq!(bounds.action(&old(0, 100)), WalAction::Keep);
        assert_eq!(bounds.action(&old(0, 101)), WalAction::ReloadWhenIdle);
        assert_eq!(bounds.action(&old(0, 1001)), WalAction::ReloadNow);
        // Blocks that could not be punched out are reloaded away at once.
        assert_eq!(bounds.action(&old(101, 101)), WalAction::ReloadNow);
    }

    /// A segment as the engine writes it: header, then per entry its length, the entry,
    /// zeros up to 4 bytes short of a word boundary, and the chained CRC-32C.
    fn segment_with(entries: &[&[u8]], capacity: usize) -> Vec<u8> {
        let mut segment = b"wal\0".to_vec();
        let seed = 0x5eed_u32;
        segment.extend_from_slice(&seed.to_le_bytes());
        let mut crc = seed;
        for entry in entries {
            let start = segment.len();
            segment.extend_from_slice(&(entry.len() as u64).to_le_bytes());
            segment.extend_from_slice(entry);
            segment.resize(segment.len() + (4usize.wrapping_sub(entry.len()) & 7), 0);
            crc = crc32c::crc32c_append(!crc.reverse_bits(), &segment[start..]);
            segment.extend_from_slice(&crc.to_le_bytes());
            assert_eq!(segment.len() % 8, 0);
        }
        segment.resize(capacity, 0);
        segment
    }

    #[test]
    fn the_next_index_follows_the_newest_closed_segment_and_the_open_ones_up_to_a_bad_crc() {
        let collection = tempfile::tempdir().unwrap();
        assert_eq!(next_index(collection.path()).unwrap(), 0, "no WAL yet");
        let wal = collection.path().join(WAL_DIR);
        std::fs::create_dir(&wal).unwrap();
        std::fs::write(wal.join("closed-0"), vec![0u8; 4096]).unwrap(); // punched out, not read
        std::fs::write(wal.join("closed-10"), segment_with(&[b"a", b"bcdefghij", b"k"], 4096)).unwrap();
        let mut open = segment_with(&[b"0123", b"x"], 4096);
        std::fs::write(wal.join("open-3"), &open).unwrap();
        std::fs::write(wal.join("open-4"), segment_with(&[], 4096)).unwrap();
        assert_eq!(next_index(collection.path()).unwrap(), 15);

        // A record whose CRC does not match ends the segment, as when the engine opens it.
        open[8 + 8] ^= 1;
        std::fs::write(wal.join("open-3"), &open).unwrap();
        assert_eq!(next_index(collection.path()).unwrap(), 13);

        std::fs::write(wal.join("closed-10"), b"not a segment").unwrap();
        assert!(matches!(next_index(collection.path()), Err(StoreError::Io { .. })));
    }

    #[test]
    fn an_empty_wal_is_one_header_named_after_the_next_index() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("copy").join(WAL_DIR);
        write_empty_wal(&wal, 42).unwrap();
        assert_eq!(names(&wal), ["closed-42"]);
        assert_eq!(next_index(&dir.path().join("copy")).unwrap(), 42);
        assert!(is_segment_file(&wal.join("closed-42")));
        assert!(is_segment_file(&wal.join("open-7")));
        assert!(!is_segment_file(&wal.join("first-index")));
        assert!(!is_segment_file(&dir.path().join("closed-42")), "outside a WAL folder");
        assert!(left_out_of_snapshots(&wal.join("open-7")));
        assert!(
            left_out_of_snapshots(&wal.join(".wal")),
            "the engine's lock file on Windows"
        );
        assert!(!left_out_of_snapshots(&dir.path().join(".wal")), "outside a WAL folder");
        assert!(!left_out_of_snapshots(&wal.join("first-index")));
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
