//! The files of a snapshot: hard-linked when the engine never writes them again, copied
//! otherwise.
//!
//! An optimised (immutable) segment is built once, in a folder of its own, and then only
//! shrinks: deleting or replacing one of its points flips bits in its small flag files
//! (`deleted.*`, `flags_*.dat`, the id tracker's versions, a gridstore's tracker and bitmask)
//! and writes the new version into the appendable segment. Its large files (vectors, HNSW
//! graph, inverted index, payload pages, field index data, id mappings) are never written
//! again, and an optimiser that replaces the segment removes them (the link keeps the inode
//! alive) instead of rewriting them. So a snapshot hard-links those and copies the rest: the
//! writer pause depends on the appendable segment and the flag files, not on the store's size.
//!
//! That rule is read from qdrant-edge 0.7.2's source (its own `immutable_files` lists, and the
//! copy-on-write of points in non-appendable segments), not promised by its API. Two guards
//! keep a wrong rule from producing a wrong backup: each linked file's length and mtime are
//! recorded, and the backup is discarded if any differ once its archive is written
//! ([`FileStamp::changed`]); and a test snapshots a store, deletes, updates and re-optimises it,
//! and checks every snapshot file's bytes are as they were.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::platform::copy_sparse;

/// A hard-linked snapshot file as it was when linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(FileStamp {
            path: path.to_path_buf(),
            len: meta.len(),
            modified: meta.modified()?,
        })
    }

    /// Whether the file was written (or removed) since it was linked.
    pub(crate) fn changed(&self) -> bool {
        FileStamp::of(&self.path).map_or(true, |now| now != *self)
    }

    /// The snapshot's name for the file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// What [`snapshot_collection`] did.
#[derive(Debug, Default)]
pub(super) struct SnapshotFiles {
    /// Bytes copied (data only: holes of sparse files are skipped).
    pub(super) copied_bytes: u64,
    /// Bytes of the files hard-linked instead.
    pub(super) linked_bytes: u64,
    /// Every linked file.
    pub(super) linked: Vec<FileStamp>,
}

/// Put the collection folder `src` into `dst` (created): write-once files of immutable
/// segments hard-linked (copied when the file system refuses the link), every other file
/// copied, the files `skip` picks left out.
pub(super) fn snapshot_collection(
    src: &Path,
    dst: &Path,
    skip: &dyn Fn(&Path) -> bool,
) -> std::io::Result<SnapshotFiles> {
    let mut files = SnapshotFiles::default();
    walk(src, dst, skip, false, &mut files)?;
    Ok(files)
}

fn walk(
    src: &Path,
    dst: &Path,
    skip: &dyn Fn(&Path) -> bool,
    immutable: bool,
    files: &mut SnapshotFiles,
) -> std::io::Result<()> {
    crate::platform::private_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (path, kind) = (entry.path(), entry.file_type()?);
        let target = dst.join(entry.file_name());
        if kind.is_dir() {
            let immutable = immutable || is_immutable_segment(&path);
            walk(&path, &target, skip, immutable, files)?;
        } else if kind.is_file() && !skip(&path) {
            if immutable && is_write_once(&path) {
                link_or_copy(&path, &target, files)?;
            } else {
                files.copied_bytes += copy_sparse(&path, &target)?;
            }
        }
    }
    Ok(())
}

fn link_or_copy(src: &Path, dst: &Path, files: &mut SnapshotFiles) -> std::io::Result<()> {
    match std::fs::hard_link(src, dst) {
        Ok(()) => {
            let stamp = FileStamp::of(dst)?;
            files.linked_bytes += allocated_bytes(dst)?;
            files.linked.push(stamp);
        }
        // Another file system, or one without hard links: the copy is still correct.
        Err(e) if crate::platform::link_unsupported(&e) => {
            tracing::debug!(path = %src.display(), error = %e, "hard link refused, copying");
            files.copied_bytes += copy_sparse(src, dst)?;
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Bytes a (possibly sparse) file holds on disk.
fn allocated_bytes(path: &Path) -> std::io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    Ok(crate::platform::allocated_bytes(&meta).min(meta.len()))
}

/// Where a snapshot file goes in a backup's archive, most stable first: files the engine
/// writes once ([`ArchiveRank::WriteOnce`]), then the other files of immutable segments (flags
/// that change only when points are deleted), then the rest (appendable segments, WAL, configs).
/// Incremental uploads cut the archive into content-defined chunks: with files that do not
/// change kept together, a backup after a few writes shares nearly all chunks with the one
/// before, instead of each changed flag file dirtying the chunk around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ArchiveRank {
    /// A write-once file of an immutable segment.
    WriteOnce,
    /// Another file of an immutable segment.
    ImmutableSegment,
    /// Anything else.
    Other,
}

/// The [`ArchiveRank`] of the file at `path` inside a snapshot (or live) collection tree.
pub(crate) fn archive_rank(path: &Path) -> ArchiveRank {
    match path.ancestors().skip(1).any(is_immutable_segment) {
        true if is_write_once(path) => ArchiveRank::WriteOnce,
        true => ArchiveRank::ImmutableSegment,
        false => ArchiveRank::Other,
    }
}

/// A segment folder whose id tracker is the immutable one: an optimised segment, which the
/// engine never appends to (the appendable segment has `mutable_id_tracker.*` instead).
fn is_immutable_segment(dir: &Path) -> bool {
    dir.parent().and_then(Path::file_name) == Some("segments".as_ref())
        && dir.join("id_tracker.mappings").is_file()
        && !dir.join("mutable_id_tracker.mappings").exists()
}

/// Files of an immutable segment that are written when the segment is built and never again.
fn is_write_once(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    const WRITE_ONCE: &[&str] = &[
        "id_tracker.mappings",
        // vectors (mmap storage), HNSW graph, sparse inverted index
        "matrix.dat",
        "graph.bin",
        "links.bin",
        "links_compressed.bin",
        "links_comp_vec.bin",
        "inverted_index.dat",
        // mmap payload field indexes (map, numeric, full text)
        "point_to_values.bin",
        "values_to_points.bin",
        "data.bin",
        "postings.dat",
        "vocab.dat",
        "point_to_tokens_count.dat",
    ];
    WRITE_ONCE.contains(&name) || is_gridstore_page(name)
}

/// `page_<n>.dat` of a gridstore (payloads, sparse vectors): in an immutable segment a value
/// is only ever deleted (its tracker entry and bitmask bits), never put.
fn is_gridstore_page(name: &str) -> bool {
    name.strip_prefix("page_")
        .and_then(|rest| rest.strip_suffix(".dat"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn segment(root: &Path, immutable: bool) -> PathBuf {
        let seg = root.join("segments").join(if immutable { "built" } else { "open" });
        std::fs::create_dir_all(seg.join("payload_storage")).unwrap();
        let tracker = if immutable {
            "id_tracker.mappings"
        } else {
            "mutable_id_tracker.mappings"
        };
        std::fs::write(seg.join(tracker), b"ids").unwrap();
        std::fs::write(seg.join("payload_storage").join("page_0.dat"), b"payloads").unwrap();
        std::fs::write(seg.join("payload_storage").join("tracker.dat"), b"pointers").unwrap();
        seg
    }

    #[test]
    fn only_write_once_files_of_immutable_segments_are_linked() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        segment(&src, true);
        segment(&src, false);
        std::fs::write(src.join("edge_config.json"), b"{}").unwrap();
        let files = snapshot_collection(&src, &dir.path().join("dst"), &|_| false).unwrap();
        let mut linked: Vec<String> = files
            .linked
            .iter()
            .map(|s| {
                let relative = s.path().strip_prefix(dir.path().join("dst")).unwrap();
                // The names joined with `/`, whatever the OS's separator.
                let names: Vec<_> = relative.iter().map(|n| n.to_string_lossy()).collect();
                names.join("/")
            })
            .collect();
        linked.sort();
        assert_eq!(
            linked,
            [
                "segments/built/id_tracker.mappings",
                "segments/built/payload_storage/page_0.dat"
            ]
        );
        assert!(files.linked_bytes >= 3 + 8, "{} bytes linked", files.linked_bytes);
        // Everything else was copied, byte for byte.
        for rel in [
            "edge_config.json",
            "segments/built/payload_storage/tracker.dat",
            "segments/open/mutable_id_tracker.mappings",
            "segments/open/payload_storage/page_0.dat",
        ] {
            assert_eq!(
                std::fs::read(src.join(rel)).unwrap(),
                std::fs::read(dir.path().join("dst").join(rel)).unwrap()
            );
        }
        assert!(files.linked.iter().all(|s| !s.changed()));
    }

    #[test]
    fn a_write_to_a_linked_file_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let seg = segment(&src, true);
        let files = snapshot_collection(&src, &dir.path().join("dst"), &|_| false).unwrap();
        assert_eq!(files.linked.len(), 2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut page = std::fs::OpenOptions::new()
            .append(true)
            .open(seg.join("payload_storage").join("page_0.dat"))
            .unwrap();
        page.write_all(b"!").unwrap();
        let changed: Vec<_> = files.linked.iter().filter(|s| s.changed()).collect();
        assert_eq!(changed.len(), 1);
        assert!(changed[0].path().ends_with("payload_storage/page_0.dat"));
    }

    #[test]
    fn another_file_system_gets_a_copy() {
        // /dev/shm is tmpfs: a link from the temp dir's file system into it fails with EXDEV.
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        segment(&src, true);
        let dst = tempfile::tempdir_in(shm).unwrap();
        let files = snapshot_collection(&src, dst.path(), &|_| false).unwrap();
        let device = |p: &Path| crate::platform::device_id(&std::fs::metadata(p).unwrap());
        if device(dir.path()) == device(dst.path()) {
            return;
        }
        assert!(files.linked.is_empty());
        assert_eq!(
            std::fs::read(dst.path().join("segments/built/payload_storage/page_0.dat")).unwrap(),
            b"payloads"
        );
    }

    #[test]
    fn gridstore_pages_are_recognised_by_name() {
        assert!(is_gridstore_page("page_0.dat"));
        assert!(is_gridstore_page("page_12.dat"));
        assert!(!is_gridstore_page("page_.dat"));
        assert!(!is_gridstore_page("page_1.dat.tmp"));
        assert!(!is_gridstore_page("flags_a.dat"));
    }

    fn hashes_of_file(path: &Path) -> String {
        use sha2::{Digest as _, Sha256};
        format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
    }

    /// Every file of a snapshot, path → SHA-256.
    fn hashes(root: &Path) -> std::collections::BTreeMap<PathBuf, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let digest = hashes_of_file(&path);
                    out.insert(path, digest);
                }
            }
        }
        out
    }

    /// The rule behind the links, tested on the real engine: a snapshot of optimised segments,
    /// then deletes, payload updates, re-upserts of their points and more optimisation on the
    /// live store leave every byte of the snapshot as it was, and it opens with its own counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn later_writes_leave_linked_files_alone() {
        use super::super::maintenance::COMPACT_AFTER_POINTS;
        use crate::store::{CollectionSpec, DenseSpec, IndexKind, Point, SparseSpec, VectorData, VectorStore as _};
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::EmbeddedStore::open(dir.path()).unwrap();
        let spec = CollectionSpec {
            name: "linked".into(),
            dense: vec![DenseSpec {
                name: "dense".into(),
                dim: 8,
                graph: true,
            }],
            sparse: vec![SparseSpec {
                name: "kw".into(),
                idf: true,
            }],
            indexes: vec![("user".into(), IndexKind::Keyword), ("n".into(), IndexKind::Integer)],
        };
        store.ensure_collection(&spec).await.unwrap();
        let point = |id: uuid::Uuid, i: u32, round: u32| Point {
            id,
            vectors: [
                (
                    "kw".to_string(),
                    VectorData::Sparse {
                        indices: (0..30).map(|k| 100 + k * 7 + i % 7).collect(),
                        values: vec![0.5; 30],
                    },
                ),
                (
                    "dense".to_string(),
                    VectorData::Dense((0..8).map(|k| ((i + k + round) % 13) as f32 + 1.0).collect()),
                ),
            ]
            .into_iter()
            .collect(),
            payload:
                serde_json::json!({"user": format!("u{}", i % 17), "n": i, "round": round, "text": "x".repeat(200)})
                    .as_object()
                    .unwrap()
                    .clone(),
        };
        let fill = |ids: &[uuid::Uuid], first: u32, round: u32| -> Vec<Vec<Point>> {
            ids.chunks(500)
                .enumerate()
                .map(|(c, chunk)| {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(k, id)| point(*id, first + (c * 500 + k) as u32, round))
                        .collect()
                })
                .collect()
        };
        let wait_for_compaction = || async {
            let shard = store.shard("linked").unwrap();
            while shard.compacting.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        let ids: Vec<uuid::Uuid> = (0..2 * COMPACT_AFTER_POINTS + 500)
            .map(|_| uuid::Uuid::new_v4())
            .collect();
        for batch in fill(&ids, 0, 0) {
            store.upsert("linked", batch).await.unwrap();
        }
        wait_for_compaction().await;

        let snapshot = tempfile::tempdir().unwrap();
        let info = store.snapshot(snapshot.path()).await.unwrap();
        assert!(
            info.linked.len() >= 4 && info.linked_bytes > 0,
            "no optimised segment was linked: {} files, {} bytes",
            info.linked.len(),
            info.linked_bytes
        );
        let before = hashes(snapshot.path());

        // Deletes, payload updates and re-upserts of points in the optimised segments, new
        // points enough for another optimisation, then a forced one.
        // Fewer changes than start an optimisation (the engine vacuums a segment with 20%
        // of its points deleted), so they land in the optimised segments.
        let deleted: Vec<uuid::Uuid> = ids.iter().step_by(20).copied().collect();
        store.delete("linked", deleted.clone()).await.unwrap();
        let kept = |every: usize, at: usize| -> Vec<uuid::Uuid> {
            (0..ids.len())
                .filter(|i| i % 20 != 0 && i % every == at)
                .map(|i| ids[i])
                .collect()
        };
        let touched = kept(40, 1);
        let mut changes = crate::store::Payload::new();
        changes.insert("user".into(), serde_json::json!("moved"));
        store.set_payload("linked", touched, changes).await.unwrap();
        let again = kept(50, 2);
        for batch in fill(&again, 0, 1) {
            store.upsert("linked", batch).await.unwrap();
        }
        // Flushed while the optimised segments still exist: their flag files change on disk.
        store.checkpoint().await.unwrap();
        let live_root = dir.path().join(super::super::QDRANT_DIR);
        let snapshot_root = snapshot.path().join(super::super::QDRANT_DIR);
        // (`id_tracker.deleted` exists only in optimised segments.)
        let differing = before
            .iter()
            .filter(|(path, _)| path.ends_with("id_tracker.deleted"))
            .filter(|(path, hash)| {
                let live = live_root.join(path.strip_prefix(&snapshot_root).unwrap());
                live.exists() && hashes_of_file(&live) != **hash
            })
            .count();
        assert!(
            differing > 0,
            "the deletes changed no flag file of the optimised segments"
        );
        let more: Vec<uuid::Uuid> = (0..COMPACT_AFTER_POINTS + 100).map(|_| uuid::Uuid::new_v4()).collect();
        for batch in fill(&more, 50_000, 0) {
            store.upsert("linked", batch).await.unwrap();
        }
        wait_for_compaction().await;
        store.optimize("linked").await.unwrap();
        store.close().await.unwrap();

        assert_eq!(info.changed_linked_file(), None);
        let after = hashes(snapshot.path());
        for (path, hash) in &before {
            assert_eq!(
                after.get(path),
                Some(hash),
                "{} changed after the snapshot",
                path.display()
            );
        }
        assert_eq!(before.len(), after.len());

        let copy = super::super::EmbeddedStore::open(snapshot.path()).unwrap();
        assert_eq!(copy.count("linked", None).await.unwrap(), ids.len() as u64);
        let sample: Vec<uuid::Uuid> = deleted.iter().take(50).copied().collect();
        let found = copy
            .retrieve("linked", sample.clone(), crate::store::VectorSelection::None)
            .await
            .unwrap();
        assert_eq!(found.len(), sample.len(), "points deleted after the snapshot are in it");
        copy.close().await.unwrap();
        let live = super::super::EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(
            live.count("linked", None).await.unwrap(),
            (ids.len() - deleted.len() + more.len()) as u64
        );
    }
}
