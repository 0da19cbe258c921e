//! Incremental, deduplicated backups in an object store.
//!
//! The tar stream of a local backup (its archive, decrypted as it is read) is cut into
//! content-defined chunks ([`super::chunk`]); only the chunks the target does not hold yet
//! are sealed and uploaded. The backup is then its sealed index (`<name>.cosi`: the chunk
//! names in order) and its manifest (`<name>.json`, format [`CHUNKED_FORMAT`], whose checksum
//! is the index's), written last as the commit point. Restoring streams the chunks back, in
//! order, into the same tar unpacker that reads an archive.
//!
//! Retention is mark and sweep: after the manifests that retention drops are deleted, every
//! chunk named by no remaining index is deleted, unless a backup is uploading (it holds
//! `locks/<name>` while it runs) or a remaining index cannot be read (nothing is deleted then).
//! An upload lists the chunks again before it commits and fails if one it reused is gone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::chunk::{self, hex, ChunkKeys};
use super::objects::ObjectStore;
use super::{archive, manifest, BackupError, Manifest};
use crate::crypto::BackupKeys;

/// [`Manifest::format`] of a backup stored as chunks and an index.
pub(crate) const CHUNKED_FORMAT: u32 = 2;
/// Chunks uploaded (or fetched) at once.
const IN_FLIGHT: usize = 8;
/// A lock younger than this stops a sweep (an upload is running); an older one is stale.
const LOCK_FRESH_MS: i64 = 6 * 3600 * 1000;
/// Largest sealed chunk accepted: a chunk that did not compress, plus its header and tag.
const MAX_SEALED_CHUNK: u64 = chunk::MAX_CHUNK as u64 + 1024;
/// Largest sealed index accepted.
const MAX_SEALED_INDEX: u64 = 64 * 1024 * 1024;

/// A backup's chunks, in stream order.
#[derive(Debug, Serialize, Deserialize)]
struct Index {
    /// `(name, plaintext length)` of each chunk.
    chunks: Vec<(String, u32)>,
    /// Length of the tar stream.
    tar_bytes: u64,
}

/// What an incremental upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UploadReport {
    /// Chunks the backup is made of.
    pub chunks: u64,
    /// Of those, chunks the target did not hold and were uploaded.
    pub new_chunks: u64,
    /// Bytes sent: new chunks, the index and the manifest.
    pub uploaded_bytes: u64,
    /// Stored bytes of every chunk the backup needs, plus its index (what a restore downloads).
    pub stored_bytes: u64,
    /// Length of the backup's tar stream (before compression).
    pub tar_bytes: u64,
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Chunks deleted (named by no remaining backup).
    pub deleted_chunks: u64,
    /// Their stored bytes.
    pub deleted_bytes: u64,
    /// Chunks kept.
    pub kept_chunks: u64,
    /// Skipped because an upload holds a lock.
    pub skipped_for_lock: bool,
}

pub(super) fn chunk_key(id: &str) -> String {
    format!("chunks/{id}")
}
pub(super) fn index_key(name: &str) -> String {
    format!("{name}.cosi")
}
pub(super) fn manifest_key(name: &str) -> String {
    format!("{name}.json")
}
fn lock_key(name: &str) -> String {
    format!("locks/{name}")
}

/// Upload the local backup `manifest` (its archive at `archive`) as chunks: only those the
/// target lacks; its manifest there has format [`CHUNKED_FORMAT`]. Returns what was sent.
///
/// # Errors
/// Target, I/O and crypto errors; [`BackupError::Corrupt`] when a chunk it reused vanished
/// before the commit (nothing is committed then).
pub(super) async fn upload(
    objects: Arc<dyn ObjectStore>,
    archive: &Path,
    local: &Manifest,
    keys: Arc<BackupKeys>,
    headed: bool,
) -> Result<UploadReport, BackupError> {
    let lock = lock_key(&local.name);
    objects.put(&lock, local.name.clone().into_bytes()).await?;
    let result = upload_locked(objects.clone(), archive, local, keys, headed).await;
    if let Err(e) = objects.delete(&lock).await {
        tracing::warn!(error = %e, lock, "could not remove the upload lock; a sweep waits until it is stale");
    }
    result
}

async fn upload_locked(
    objects: Arc<dyn ObjectStore>,
    archive: &Path,
    local: &Manifest,
    keys: Arc<BackupKeys>,
    headed: bool,
) -> Result<UploadReport, BackupError> {
    let stored: HashMap<String, u64> = stored_chunks(&*objects).await?;
    let known: HashSet<String> = stored.keys().cloned().collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(IN_FLIGHT);
    let (archive, store_id, name, producer_keys) =
        (archive.to_path_buf(), local.store_id, local.name.clone(), keys.clone());
    // Reads the archive, cuts and names chunks, seals the new ones (CPU work, off the runtime).
    let producer = tokio::task::spawn_blocking(move || -> Result<Index, BackupError> {
        let chunk_keys = ChunkKeys::active(&producer_keys)?;
        let stream = archive::tar_stream(&archive, |id| producer_keys.key(id), &store_id, &name)?;
        let mut counted = Counted {
            inner: stream,
            bytes: 0,
        };
        let mut index = Index {
            chunks: Vec::new(),
            tar_bytes: 0,
        };
        let mut sent = HashSet::new();
        chunk::for_each_chunk(&mut counted, |plain| {
            let id = chunk_keys.chunk_id(plain);
            if !known.contains(&id) && sent.insert(id.clone()) {
                let sealed = chunk_keys.seal_chunk(&store_id, &id, plain)?;
                tx.blocking_send((id.clone(), sealed))
                    .map_err(|_| BackupError::NotFound("the upload stopped".into()))?;
            }
            index.chunks.push((id, plain.len() as u32));
            Ok(())
        })?;
        index.tar_bytes = counted.bytes;
        Ok(index)
    });
    let mut report = UploadReport::default();
    let mut sizes: HashMap<String, u64> = stored;
    let mut running = tokio::task::JoinSet::new();
    let mut failed = None;
    while let Some((id, sealed)) = rx.recv().await {
        while running.len() >= IN_FLIGHT {
            if let Some(Err(e)) = joined(running.join_next().await) {
                failed.get_or_insert(e);
            }
        }
        if failed.is_some() {
            break;
        }
        report.new_chunks += 1;
        report.uploaded_bytes += sealed.len() as u64;
        sizes.insert(id.clone(), sealed.len() as u64);
        let objects = objects.clone();
        running.spawn(async move { objects.put(&chunk_key(&id), sealed).await });
    }
    drop(rx);
    while let Some(done) = joined(running.join_next().await) {
        if let Err(e) = done {
            failed.get_or_insert(e);
        }
    }
    let index = producer.await.map_err(|e| BackupError::Task(e.into()))?;
    if let Some(e) = failed {
        return Err(e);
    }
    let index = index?;
    report.chunks = index.chunks.len() as u64;
    report.tar_bytes = index.tar_bytes;
    // A sweep that ran anyway (a stale lock) must not leave this backup without a chunk.
    let now_stored = stored_chunks(&*objects).await?;
    if let Some((missing, _)) = index.chunks.iter().find(|(id, _)| !now_stored.contains_key(id)) {
        return Err(BackupError::Corrupt {
            name: local.name.clone(),
            reason: format!("chunk {missing} vanished from the target during the upload; the backup was not committed"),
        });
    }
    let unique: HashSet<&String> = index.chunks.iter().map(|(id, _)| id).collect();
    report.stored_bytes = unique.iter().map(|id| sizes.get(*id).copied().unwrap_or(0)).sum();
    let chunk_keys = ChunkKeys::active(&keys)?;
    let json = serde_json::to_vec(&index).map_err(|e| BackupError::Corrupt {
        name: local.name.clone(),
        reason: format!("index does not encode: {e}"),
    })?;
    let sealed_index = chunk_keys.seal_index(&local.store_id, &local.name, &json)?;
    let mut remote = local.clone();
    remote.format = CHUNKED_FORMAT;
    remote.sha256 = hex(&Sha256::digest(&sealed_index));
    remote.archive_bytes = report.stored_bytes + sealed_index.len() as u64;
    remote.key_id = chunk_keys.key_id();
    remote.verified_at_ms = None;
    remote.head = headed;
    remote.seal(&keys)?;
    report.stored_bytes = remote.archive_bytes;
    report.uploaded_bytes += sealed_index.len() as u64;
    objects.put(&index_key(&local.name), sealed_index).await?;
    let manifest_json = serde_json::to_vec_pretty(&remote).map_err(|e| BackupError::Corrupt {
        name: local.name.clone(),
        reason: format!("manifest does not encode: {e}"),
    })?;
    report.uploaded_bytes += manifest_json.len() as u64;
    // The manifest goes last: a listed backup always has its index and chunks.
    objects.put(&manifest_key(&local.name), manifest_json).await?;
    tracing::info!(
        backup = %local.name,
        target = %objects,
        chunks = report.chunks,
        new_chunks = report.new_chunks,
        uploaded_bytes = report.uploaded_bytes,
        "incremental backup uploaded"
    );
    Ok(report)
}

fn joined(done: Option<Result<Result<(), BackupError>, tokio::task::JoinError>>) -> Option<Result<(), BackupError>> {
    done.map(|r| r.unwrap_or_else(|e| Err(BackupError::Task(e.into()))))
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Chunk name → stored bytes, of every chunk the target holds.
async fn stored_chunks(objects: &dyn ObjectStore) -> Result<HashMap<String, u64>, BackupError> {
    Ok(objects
        .list("chunks/")
        .await?
        .into_iter()
        .filter_map(|o| o.key.strip_prefix("chunks/").map(|id| (id.to_string(), o.bytes)))
        .collect())
}

/// The index of the chunked backup `manifest`, checked against the manifest's checksum.
async fn read_index(objects: &dyn ObjectStore, manifest: &Manifest, keys: &BackupKeys) -> Result<Index, BackupError> {
    let corrupt = |reason: String| BackupError::Corrupt {
        name: manifest.name.clone(),
        reason,
    };
    let sealed = objects.get(&index_key(&manifest.name), MAX_SEALED_INDEX).await?;
    let actual = hex(&Sha256::digest(&sealed));
    if actual != manifest.sha256 {
        return Err(BackupError::ChecksumMismatch {
            name: manifest.name.clone(),
            expected: manifest.sha256.clone(),
            actual,
        });
    }
    let json = ChunkKeys::open_index(keys, &manifest.store_id, &manifest.name, &sealed)
        .map_err(|e| corrupt(format!("index: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| corrupt(format!("index does not parse: {e}")))
}

/// Unpack the chunked backup `manifest` into `dest`, fetching its chunks in order (several
/// ahead). Runs on a blocking thread of the runtime `runtime`. Every chunk is authenticated
/// and its name checked against its content; a missing or altered chunk fails the unpack.
pub(super) fn unpack(
    runtime: &tokio::runtime::Handle,
    objects: Arc<dyn ObjectStore>,
    manifest: &Manifest,
    keys: &BackupKeys,
    dest: &Path,
) -> Result<u64, BackupError> {
    let index = runtime.block_on(read_index(&*objects, manifest, keys))?;
    let origin = std::path::PathBuf::from(objects.to_string());
    let reader = ChunkReader {
        runtime: runtime.clone(),
        objects,
        keys,
        store_id: manifest.store_id,
        pending: index.chunks.into_iter().map(|(id, _)| id).collect(),
        fetching: VecDeque::new(),
        current: Vec::new(),
        pos: 0,
    };
    archive::unpack_tar(reader, dest, &manifest.name, &origin)
}

type Fetch = tokio::task::JoinHandle<Result<Vec<u8>, BackupError>>;

/// The tar stream of a chunked backup, read chunk by chunk from the target.
struct ChunkReader<'a> {
    runtime: tokio::runtime::Handle,
    objects: Arc<dyn ObjectStore>,
    keys: &'a BackupKeys,
    store_id: uuid::Uuid,
    pending: VecDeque<String>,
    fetching: VecDeque<(String, Fetch)>,
    current: Vec<u8>,
    pos: usize,
}

impl ChunkReader<'_> {
    fn next_chunk(&mut self) -> std::io::Result<bool> {
        while self.fetching.len() < IN_FLIGHT {
            let Some(id) = self.pending.pop_front() else { break };
            let objects = self.objects.clone();
            let key = chunk_key(&id);
            let fetch = self
                .runtime
                .spawn(async move { objects.get(&key, MAX_SEALED_CHUNK).await });
            self.fetching.push_back((id, fetch));
        }
        let Some((id, fetch)) = self.fetching.pop_front() else {
            return Ok(false);
        };
        let sealed = match self.runtime.block_on(fetch).map_err(std::io::Error::other)? {
            Ok(sealed) => sealed,
            Err(BackupError::NotFound(_)) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("chunk {id} is missing from the target"),
                ))
            }
            Err(e) => return Err(std::io::Error::other(format!("chunk {id}: {e}"))),
        };
        self.current = ChunkKeys::open_chunk(self.keys, &self.store_id, &id, &sealed)
            .map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("chunk {id}: {reason}")))?;
        self.pos = 0;
        Ok(true)
    }
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for ChunkReader<'_> {
    fn drop(&mut self) {
        for (_, fetch) in &self.fetching {
            fetch.abort();
        }
    }
}

/// Delete every chunk no backup in `kept` (the remote manifests retention keeps) names.
/// Nothing is deleted while an upload holds a fresh lock, or when an index of `kept` cannot be
/// read (its chunks would look unreferenced).
///
/// # Errors
/// Target errors; the first index that does not read.
pub(super) async fn sweep(
    objects: &dyn ObjectStore,
    kept: &[Manifest],
    keys: &BackupKeys,
    now_ms: i64,
) -> Result<SweepReport, BackupError> {
    let mut report = SweepReport::default();
    let locks = objects.list("locks/").await?;
    if locks.iter().any(|l| now_ms - l.modified_ms < LOCK_FRESH_MS) {
        tracing::info!(
            locks = locks.len(),
            "an upload is running: unreferenced chunks are swept next time"
        );
        report.skipped_for_lock = true;
        return Ok(report);
    }
    let mut marked = HashSet::new();
    for m in kept.iter().filter(|m| m.format == CHUNKED_FORMAT) {
        marked.extend(read_index(objects, m, keys).await?.chunks.into_iter().map(|(id, _)| id));
    }
    for (id, bytes) in stored_chunks(objects).await? {
        if marked.contains(&id) {
            report.kept_chunks += 1;
        } else {
            objects.delete(&chunk_key(&id)).await?;
            report.deleted_chunks += 1;
            report.deleted_bytes += bytes;
        }
    }
    // Indexes whose manifest is gone (retention, or an upload that failed before its commit).
    let names: HashSet<&str> = kept.iter().map(|m| m.name.as_str()).collect();
    for object in objects.list("").await? {
        if let Some(name) = object.key.strip_suffix(".cosi") {
            if manifest::is_backup_name(name) && !names.contains(name) {
                objects.delete(&object.key).await?;
            }
        }
    }
    Ok(report)
}
