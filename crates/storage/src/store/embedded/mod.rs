//! The embedded backend: one qdrant-edge `EdgeShard` per collection under
//! `<data_dir>/qdrant/<collection>/`, owned by this process through the data-dir lock.
//!
//! qdrant-edge is synchronous. Every call runs on tokio's blocking pool through
//! [`EmbeddedStore::blocking`], never on the async executor. Writes to one shard (and its
//! flush, which the engine does not allow to overlap an update) are serialised by a per-shard
//! mutex; reads run concurrently. Every write is first appended to our redo journal (see
//! `journal.rs`: the engine does not replay its own WAL on load) and replayed on open.

mod convert;
mod engine_wal;
mod group_sync;
mod journal;
mod lock;
mod maintenance;
mod shard;
mod ship_log;
mod snapshot_files;
pub(crate) use snapshot_files::archive_rank;
mod space;

pub(crate) use snapshot_files::FileStamp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use qdrant_edge as qe;

pub(crate) use lock::DirLock;
pub use lock::LOCK_FILE;

/// Default free space kept on the data dir's file system: 64 MiB.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

/// Options of the embedded store.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedOptions {
    /// Writes are refused with [`StoreError::DiskFull`] while less than this is free.
    ///
    /// qdrant-edge writes through memory maps of sparse files: on a full disk the kernel
    /// answers a page fault with SIGBUS and the process dies. Keeping a reserve turns that
    /// into a clear error before the engine is touched. Default: [`DEFAULT_MIN_FREE_BYTES`].
    pub min_free_bytes: u64,
    /// When an acknowledged write is on stable storage. Default: at the next checkpoint.
    pub sync: super::StoreSync,
    /// Log every write in `qdrant/ship.log` for the backup manager to ship to the backup
    /// target (point-in-time restore). Default: off.
    pub ship_journal: bool,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            sync: super::StoreSync::Checkpoint,
            ship_journal: false,
        }
    }
}

use self::group_sync::GroupSync;
use self::journal::{Journal, WriteOp, CHECKPOINT_BYTES, JOURNAL_LIMIT_BYTES};
use self::maintenance::paused_checkpoint;
use self::shard::{apply, create_shard, ensure_schema, load_shard, Shard};
use self::ship_log::ShipLog;
pub(crate) use self::ship_log::{decode_records, encode_records, SHIP_LOG_FILE};
use self::space::{check_space, SpaceGuard};
use super::{
    CollectionSpec, CollectionStats, FieldValue, Filter, Hit, Payload, Point, PointId, PointVectors, QueryRequest,
    Record, ScrollPage, ScrollRequest, SnapshotInfo, StoreError, Unshipped, VectorSelection, VectorStore,
};

const BACKEND: &str = "qdrant-edge";
/// How long `close` waits for calls in flight before it keeps the data-dir lock.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Folder under the data dir holding one sub-folder per collection.
pub const QDRANT_DIR: &str = "qdrant";
const EDGE_CONFIG_FILE: &str = "edge_config.json";

/// The embedded qdrant-edge store.
pub struct EmbeddedStore {
    root: PathBuf,
    shards: RwLock<HashMap<String, Arc<Shard>>>,
    creating: tokio::sync::Mutex<()>,
    journal: Arc<Mutex<Journal>>,
    /// With shipping on: the log of writes not yet shipped (the journal appends to it).
    ship: Option<Arc<Mutex<ShipLog>>>,
    /// `Some` with `sync = "always"`: every write waits for its journal entry's `fsync`.
    group_sync: Option<Arc<GroupSync>>,
    space: Arc<SpaceGuard>,
    writes: std::sync::atomic::AtomicU64,
    /// Set by [`VectorStore::close`]: every later call is refused.
    closed: std::sync::atomic::AtomicBool,
    /// The data-dir lock, released by `close` once no shard is in use.
    lock: Mutex<Option<DirLock>>,
    /// Journal size past which writes wait for a compaction to checkpoint
    /// ([`JOURNAL_LIMIT_BYTES`]; smaller in tests).
    journal_limit: u64,
    /// When a checkpoint reloads a collection to release its engine WAL (smaller in tests).
    engine_wal_bounds: engine_wal::WalBounds,
}

impl std::fmt::Display for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{BACKEND} at {}", self.root.display())
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Lock `data_dir` and load every existing collection. Blocking: call it off the executor.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process owns the data dir; [`StoreError::Backend`]
    /// when a collection cannot be loaded.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, EmbeddedOptions::default())
    }

    /// [`EmbeddedStore::open`] with options.
    ///
    /// # Errors
    /// As [`EmbeddedStore::open`], plus [`StoreError::DiskFull`] when the file system is below
    /// the free-space reserve (loading writes too).
    pub fn open_with(data_dir: &Path, options: EmbeddedOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            action: "creating data dir",
            path: data_dir.display().to_string(),
            source,
        })?;
        let lock = DirLock::acquire(data_dir)?;
        Self::open_locked(data_dir, options, lock)
    }

    /// [`EmbeddedStore::open_with`] under a data-dir lock the caller already holds.
    pub(crate) fn open_locked(data_dir: &Path, options: EmbeddedOptions, lock: DirLock) -> Result<Self, StoreError> {
        let root = data_dir.join(QDRANT_DIR);
        // A restore that died between the two renames of its swap (where the OS has no
        // atomic exchange) is finished or undone before anything reads the folder.
        crate::platform::recover_swap(&root).map_err(|source| StoreError::Io {
            action: "completing an interrupted restore",
            path: root.display().to_string(),
            source,
        })?;
        check_space(data_dir, options.min_free_bytes)?;
        std::fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            action: "creating",
            path: root.display().to_string(),
            source,
        })?;
        let mut shards = HashMap::new();
        let entries = std::fs::read_dir(&root).map_err(|source| StoreError::Io {
            action: "listing",
            path: root.display().to_string(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.join(EDGE_CONFIG_FILE).is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let shard = load_shard(&path, &name)?;
            tracing::debug!(collection = %name, "loaded collection");
            shards.insert(name, shard);
        }
        let journal = Journal::open(&root)?;
        let entries = journal.replay()?;
        let mut journal = journal;
        if !entries.is_empty() {
            let count = entries.len();
            for entry in entries {
                let Some(shard) = shards.get(&entry.collection) else {
                    tracing::warn!(collection = %entry.collection, "journal entry for a missing collection skipped");
                    continue;
                };
                let _w = shard.writer.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = apply(shard, entry.op) {
                    tracing::warn!(collection = %entry.collection, error = %e, "journal entry could not be re-applied");
                }
            }
            for shard in shards.values() {
                shard.flush()?;
            }
            journal.truncate()?;
            tracing::info!(entries = count, "replayed the write journal after an unclean shutdown");
        }
        // Replayed entries were logged for shipping when first written: logging starts now.
        let ship = if options.ship_journal {
            let ship = Arc::new(Mutex::new(ShipLog::open(&root)?));
            journal.ship_to(ship.clone());
            Some(ship)
        } else {
            None
        };
        Ok(EmbeddedStore {
            ship,
            root,
            shards: RwLock::new(shards),
            creating: tokio::sync::Mutex::new(()),
            group_sync: (options.sync == super::StoreSync::Always).then(|| journal.group()),
            journal: Arc::new(Mutex::new(journal)),
            writes: std::sync::atomic::AtomicU64::new(0),
            space: Arc::new(SpaceGuard::new(data_dir.to_path_buf(), options.min_free_bytes)),
            closed: std::sync::atomic::AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
            journal_limit: JOURNAL_LIMIT_BYTES,
            engine_wal_bounds: engine_wal::WalBounds::default(),
        })
    }

    /// Point counts of every collection, for callers already on a blocking thread.
    ///
    /// # Errors
    /// Engine errors.
    pub fn stats_blocking(&self) -> Result<Vec<CollectionStats>, StoreError> {
        stats_of(&self.all_shards()?)
    }

    /// `fsync`s of the journal on the write path so far (`sync = "always"`; 0 otherwise).
    pub fn journal_syncs(&self) -> u64 {
        self.group_sync.as_ref().map_or(0, |g| g.syncs())
    }

    /// The lock file this store holds.
    pub fn lock_path(&self) -> PathBuf {
        self.root
            .parent()
            .map_or_else(|| self.root.join(LOCK_FILE), |dir| dir.join(LOCK_FILE))
    }

    fn ensure_open(&self) -> Result<(), StoreError> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    fn shard(&self, name: &str) -> Result<Arc<Shard>, StoreError> {
        self.ensure_open()?;
        let shards = self.shards.read().unwrap_or_else(|p| p.into_inner());
        shards
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::NoSuchCollection(name.to_string()))
    }

    fn all_shards(&self) -> Result<Vec<Arc<Shard>>, StoreError> {
        self.ensure_open()?;
        let shards = self.shards.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = shards.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// Run a blocking engine call on tokio's blocking pool.
    async fn blocking<T, F>(f: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        crate::blocking::run_blocking(f).await
    }

    /// Journal then apply one write, under the shard's writer lock so that journal order is
    /// apply order; checkpoint when the journal has grown large.
    async fn write(&self, collection: &str, op: WriteOp) -> Result<(), StoreError> {
        self.write_if(collection, op, |_| Ok(true)).await.map(|_| ())
    }

    /// [`EmbeddedStore::write`] when `precondition`, checked under the shard's writer lock,
    /// holds; `false` (nothing written) when it does not.
    async fn write_if(
        &self,
        collection: &str,
        op: WriteOp,
        precondition: impl FnOnce(&Shard) -> Result<bool, StoreError> + Send + 'static,
    ) -> Result<bool, StoreError> {
        let shard = self.shard(collection)?;
        let written_points = match &op {
            WriteOp::Upsert(points) => points.len() as u64,
            _ => 0,
        };
        let journal = self.journal.clone();
        let space = self.space.clone();
        let group_sync = self.group_sync.clone();
        let size = Self::blocking(move || {
            space.check()?;
            let writer = shard.writer.lock().unwrap_or_else(|p| p.into_inner());
            if !precondition(&shard)? {
                return Ok(None);
            }
            let appended = journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&shard.name, &op)?;
            apply(&shard, op)?;
            space.spend(appended.size);
            // The fsync runs after the shard is free again, so writers behind this one
            // append meanwhile and the next fsync covers them all (group commit).
            drop(writer);
            if let Some(group) = group_sync {
                group.sync_to(appended.position).map_err(|source| StoreError::Io {
                    action: "syncing the journal (the write is applied but not known to be durable)",
                    path: shard.name.clone(),
                    source,
                })?;
            }
            Ok(Some(appended.size))
        })
        .await?;
        let Some(size) = size else {
            return Ok(false);
        };
        self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if size > self.journal_limit {
            tracing::info!(
                journal_bytes = size,
                "journal past its limit: waiting for the running compaction to checkpoint"
            );
            self.checkpoint().await?;
        } else if size > CHECKPOINT_BYTES && !self.checkpoint_unless_compacting().await? {
            let delay = journal::write_delay(size, self.journal_limit);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        if written_points > 0 {
            self.compact_if_due(collection, written_points);
        }
        Ok(true)
    }

    async fn on_shard<T, F>(&self, collection: &str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Shard) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let shard = self.shard(collection)?;
        Self::blocking(move || f(&shard)).await
    }
}

/// Take the data-dir lock without opening the store (offline maintenance such as restore).
pub(crate) fn lock_data_dir(data_dir: &Path) -> Result<DirLock, StoreError> {
    DirLock::acquire(data_dir)
}

#[async_trait::async_trait]
impl VectorStore for EmbeddedStore {
    async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<(), StoreError> {
        self.ensure_open()?;
        if spec.name.is_empty() || spec.name.contains(['/', '\\', '\0']) || spec.name.starts_with('.') {
            return Err(StoreError::NoSuchCollection(spec.name.clone()));
        }
        let shard = match self.shard(&spec.name) {
            Ok(shard) => shard,
            Err(_) => {
                // One creator at a time: a second one must not wipe the first one's folder.
                let _creating = self.creating.lock().await;
                match self.shard(&spec.name) {
                    Ok(shard) => shard,
                    Err(_) => {
                        let (root, owned) = (self.root.clone(), spec.clone());
                        let created = Self::blocking(move || create_shard(&root, &owned)).await?;
                        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
                        shards.insert(spec.name.clone(), created.clone());
                        created
                    }
                }
            }
        };
        let spec = spec.clone();
        Self::blocking(move || ensure_schema(&shard, &spec)).await
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        self.write(collection, WriteOp::Upsert(points)).await
    }

    async fn update_vectors(&self, collection: &str, points: Vec<PointVectors>) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        self.write(collection, WriteOp::UpdateVectors(points)).await
    }

    async fn set_payload(&self, collection: &str, ids: Vec<PointId>, payload: Payload) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(collection, WriteOp::SetPayload { ids, payload }).await
    }

    async fn insert_if_absent(&self, collection: &str, point: Point) -> Result<bool, StoreError> {
        let id = convert::point_id(point.id);
        self.write_if(collection, WriteOp::Upsert(vec![point]), move |shard| {
            let found = shard.with_edge(|edge| {
                edge.retrieve(
                    &[id],
                    Some(qe::WithPayloadInterface::Bool(false)),
                    Some(qe::WithVector::Bool(false)),
                )
                .map_err(|e| (shard.engine_err("insert if absent"))(Box::new(e)))
            })?;
            Ok(found.is_empty())
        })
        .await
    }

    async fn set_payload_by_filter(
        &self,
        collection: &str,
        filter: Filter,
        payload: Payload,
    ) -> Result<(), StoreError> {
        self.write(collection, WriteOp::SetPayloadByFilter { filter, payload })
            .await
    }

    async fn delete(&self, collection: &str, ids: Vec<PointId>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(collection, WriteOp::Delete(ids)).await
    }

    async fn delete_by_filter(&self, collection: &str, filter: Filter) -> Result<(), StoreError> {
        self.write(collection, WriteOp::DeleteByFilter(filter)).await
    }

    async fn retrieve(
        &self,
        collection: &str,
        ids: Vec<PointId>,
        vectors: VectorSelection,
    ) -> Result<Vec<Record>, StoreError> {
        self.on_shard(collection, move |shard| {
            let ids: Vec<_> = ids.into_iter().map(convert::point_id).collect();
            let with_vector = convert::with_vector(vectors);
            let records = shard.with_edge(|edge| {
                edge.retrieve(&ids, Some(qe::WithPayloadInterface::Bool(true)), Some(with_vector))
                    .map_err(|e| (shard.engine_err("retrieve"))(Box::new(e)))
            })?;
            Ok(records.into_iter().map(convert::record).collect())
        })
        .await
    }

    async fn scroll(&self, collection: &str, request: ScrollRequest) -> Result<ScrollPage, StoreError> {
        self.on_shard(collection, move |shard| {
            let err = shard.engine_err("scroll");
            let req = qe::ScrollRequest {
                offset: request.offset.map(convert::point_id),
                limit: Some(request.limit.max(1)),
                filter: convert::opt_filter(request.filter.as_ref()).map_err(&err)?,
                with_payload: Some(qe::WithPayloadInterface::Bool(true)),
                with_vector: qe::WithVector::Bool(request.with_vectors),
                order_by: request
                    .order_by
                    .as_ref()
                    .map(convert::order_by)
                    .transpose()
                    .map_err(&err)?,
            };
            let (records, next) = shard.with_edge(|edge| edge.scroll(req).map_err(|e| err(Box::new(e))))?;
            Ok(ScrollPage {
                records: records.into_iter().map(convert::record).collect(),
                next_offset: next.map(convert::from_point_id),
            })
        })
        .await
    }

    async fn query(&self, collection: &str, request: QueryRequest) -> Result<Vec<Hit>, StoreError> {
        self.on_shard(collection, move |shard| {
            let err = shard.engine_err("query");
            let query = convert::vector_internal(request.vector).map_err(&err)?;
            let req = qe::QueryRequest {
                prefetches: Vec::new(),
                query: Some(qe::ScoringQuery::Vector(qe::QueryEnum::Nearest(qe::NamedQuery {
                    query,
                    using: Some(request.using),
                }))),
                filter: convert::opt_filter(request.filter.as_ref()).map_err(&err)?,
                score_threshold: None,
                limit: request.limit,
                offset: 0,
                params: request.exact.then(|| qe::SearchParams {
                    exact: true,
                    ..qe::SearchParams::default()
                }),
                with_vector: qe::WithVector::Bool(false),
                with_payload: qe::WithPayloadInterface::Bool(request.with_payload),
            };
            let hits = shard.with_edge(|edge| edge.query(req).map_err(|e| err(Box::new(e))))?;
            Ok(hits
                .into_iter()
                .map(|h| Hit {
                    id: convert::from_point_id(h.id),
                    score: h.score,
                    payload: h.payload.map(|p| p.0).unwrap_or_default(),
                })
                .collect())
        })
        .await
    }

    async fn count(&self, collection: &str, filter: Option<Filter>) -> Result<u64, StoreError> {
        self.on_shard(collection, move |shard| {
            let err = shard.engine_err("count");
            let filter = convert::opt_filter(filter.as_ref()).map_err(&err)?;
            let n = shard.with_edge(|edge| {
                edge.count(qe::CountRequest { filter, exact: true })
                    .map_err(|e| err(Box::new(e)))
            })?;
            Ok(n as u64)
        })
        .await
    }

    async fn facet(
        &self,
        collection: &str,
        field: &str,
        filter: Option<Filter>,
        limit: usize,
    ) -> Result<Vec<(FieldValue, u64)>, StoreError> {
        let field = field.to_string();
        self.on_shard(collection, move |shard| {
            let err = shard.engine_err("facet");
            let req = qe::FacetRequest {
                key: convert::json_path(&field).map_err(&err)?,
                limit: limit.max(1),
                filter: convert::opt_filter(filter.as_ref()).map_err(&err)?,
                exact: true,
            };
            let resp = shard.with_edge(|edge| edge.facet(req).map_err(|e| err(Box::new(e))))?;
            Ok(resp
                .hits
                .into_iter()
                .map(|h| (convert::facet_value(h.value), h.count as u64))
                .collect())
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.checkpoint().await
    }

    async fn optimize(&self, collection: &str) -> Result<(), StoreError> {
        self.on_shard(collection, move |shard| {
            let _m = shard.maintenance.lock().unwrap_or_else(|p| p.into_inner());
            shard.optimize()?;
            Ok(())
        })
        .await
    }

    fn write_count(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn close(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let shards: Vec<Arc<Shard>> = {
            let mut map = self.shards.write().unwrap_or_else(|p| p.into_inner());
            map.drain().map(|(_, shard)| shard).collect()
        };
        let journal = self.journal.clone();
        // Waits for a running compaction and for writes in flight, then flushes.
        // No reload of a shard with a long engine WAL: it is dropped now, and pruned when the
        // store is opened again.
        let shards =
            Self::blocking(move || paused_checkpoint(&shards, &journal, None, |_| Ok(())).map(|()| shards)).await?;
        // Reads that took a shard before the flag was set still hold it: the data-dir lock
        // may only go once nothing can touch the files any more.
        let deadline = std::time::Instant::now() + CLOSE_WAIT;
        while shards.iter().any(|s| Arc::strong_count(s) > 1) {
            if std::time::Instant::now() > deadline {
                tracing::warn!("calls still running at close: the data-dir lock is kept until the store is dropped");
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(shards);
        drop(self.lock.lock().unwrap_or_else(|p| p.into_inner()).take());
        tracing::debug!(root = %self.root.display(), "store closed, data-dir lock released");
        Ok(())
    }

    async fn snapshot(&self, dest: &Path) -> Result<SnapshotInfo, StoreError> {
        let shards = self.all_shards()?;
        let journal = self.journal.clone();
        let ship = self.ship.clone();
        let (root, dest) = (self.root.clone(), dest.to_path_buf());
        Self::blocking(move || {
            let started = std::time::Instant::now();
            // Writers wait until the copy is done: the copy is one consistent state. Files the
            // engine never writes again are hard-linked, not copied (see `snapshot_files`).
            // No reload here (it would lengthen the pause): the copy leaves the WAL's entries out.
            paused_checkpoint(&shards, &journal, None, |shards| {
                let collections = stats_of(shards)?;
                let (mut bytes, mut linked_bytes, mut linked) = (0, 0, Vec::new());
                for shard in shards {
                    let target = dest.join(QDRANT_DIR).join(&shard.name);
                    let source = root.join(&shard.name);
                    // The engine never replays its WAL (see `engine_wal`): the snapshot holds an
                    // empty one that goes on numbering updates where this one stops.
                    let next_update = engine_wal::next_index(&source)?;
                    let copy_err = |source| StoreError::Io {
                        action: "copying collection into snapshot",
                        path: target.display().to_string(),
                        source,
                    };
                    let files =
                        snapshot_files::snapshot_collection(&source, &target, &engine_wal::left_out_of_snapshots)
                            .map_err(copy_err)?;
                    engine_wal::write_empty_wal(&target.join(engine_wal::WAL_DIR), next_update).map_err(copy_err)?;
                    bytes += files.copied_bytes;
                    linked_bytes += files.linked_bytes;
                    linked.extend(files.linked);
                }
                // Writers are paused: the copy holds every logged write before this mark.
                let journal = ship.map(|ship| {
                    let ship = ship.lock().unwrap_or_else(|p| p.into_inner());
                    super::JournalMark {
                        generation: ship.generation().to_string(),
                        next_seq: ship.next_seq(),
                    }
                });
                Ok(SnapshotInfo {
                    journal,
                    collections,
                    writer_pause_ms: started.elapsed().as_secs_f64() * 1e3,
                    bytes,
                    linked_bytes,
                    linked,
                })
            })
        })
        .await
    }

    async fn unshipped(&self, from: u64, max_bytes: u64) -> Result<Option<Unshipped>, StoreError> {
        if self.ship.is_none() {
            return Ok(None);
        }
        let root = self.root.clone();
        Self::blocking(move || ship_log::read_unshipped(&root, from, max_bytes).map(Some)).await
    }

    async fn shipped_through(&self, seq: u64) -> Result<(), StoreError> {
        let Some(ship) = self.ship.clone() else {
            return Ok(());
        };
        Self::blocking(move || {
            ship.lock()
                .unwrap_or_else(|p| p.into_inner())
                .drop_through(seq, crate::clock::now_ms())
        })
        .await
    }

    async fn describe(&self, collection: &str) -> Result<CollectionSpec, StoreError> {
        self.on_shard(collection, |shard| {
            let (config, schema) = shard.with_edge(|edge| {
                let describe = |e: serde_json::Error| (shard.engine_err("describe"))(Box::new(e));
                Ok((
                    serde_json::to_value(&*edge.config()).map_err(describe)?,
                    serde_json::to_value(edge.info().payload_schema).map_err(describe)?,
                ))
            })?;
            Ok(convert::describe(&shard.name, &config, &schema))
        })
        .await
    }

    async fn stats(&self) -> Result<Vec<CollectionStats>, StoreError> {
        let shards = self.all_shards()?;
        Self::blocking(move || stats_of(&shards)).await
    }
}

/// Apply `bodies` (entries of a shipped journal, in order) to the store in `data_dir`, which
/// must not be open: they are appended to its journal, and opening the store replays them.
/// Blocking.
///
/// # Errors
/// As [`EmbeddedStore::open_with`]; [`StoreError::Io`] when the journal cannot be written.
pub(crate) fn apply_shipped(data_dir: &Path, bodies: Vec<Vec<u8>>, min_free_bytes: u64) -> Result<(), StoreError> {
    journal::append_encoded(&data_dir.join(QDRANT_DIR), bodies)?;
    let store = EmbeddedStore::open_with(
        data_dir,
        EmbeddedOptions {
            min_free_bytes,
            ..EmbeddedOptions::default()
        },
    )?;
    drop(store);
    Ok(())
}

/// Exact point counts of these shards.
fn stats_of(shards: &[Arc<Shard>]) -> Result<Vec<CollectionStats>, StoreError> {
    shards
        .iter()
        .map(|shard| {
            let (points, segments) = shard.with_edge(|edge| {
                let points = edge
                    .count(qe::CountRequest {
                        filter: None,
                        exact: true,
                    })
                    .map_err(|e| (shard.engine_err("count"))(Box::new(e)))?;
                Ok((points, edge.info().segments_count))
            })?;
            Ok(CollectionStats {
                name: shard.name.clone(),
                points: points as u64,
                segments,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::maintenance::COMPACT_AFTER_POINTS;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        crate::store::conformance::run_all(&store, "conf").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_flushes_and_releases_the_data_dir_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        crate::store::conformance::upsert_retrieve_roundtrip(&store, "closing").await;
        assert!(matches!(
            EmbeddedStore::open(dir.path()),
            Err(StoreError::Locked { .. })
        ));
        store.close().await.unwrap();
        // The first store object still exists, yet the data dir can be opened again, and the
        // journal is empty: everything was flushed by close.
        let again = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(again.count("closing", None).await.unwrap(), 2);
        assert_eq!(
            std::fs::metadata(dir.path().join(QDRANT_DIR).join("journal.log"))
                .unwrap()
                .len(),
            0
        );
        drop(store);
    }

    /// Eight tasks writing 25 points each under both sync settings: every point is stored;
    /// `always` fsyncs the journal on the write path, at most once per write (fewer when
    /// writes share an fsync), and `checkpoint` never does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_always_fsyncs_the_journal_before_acknowledging_and_checkpoint_does_not() {
        use crate::store::{CollectionSpec, Point, StoreSync};
        for sync in [StoreSync::Always, StoreSync::Checkpoint] {
            let dir = tempfile::tempdir().unwrap();
            let options = EmbeddedOptions {
                sync,
                ..EmbeddedOptions::default()
            };
            let store = Arc::new(EmbeddedStore::open_with(dir.path(), options).unwrap());
            let spec = CollectionSpec {
                name: "synced".into(),
                dense: Vec::new(),
                sparse: Vec::new(),
                indexes: Vec::new(),
            };
            store.ensure_collection(&spec).await.unwrap();
            let tasks: Vec<_> = (0..8u128)
                .map(|task| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        for i in 0..25u128 {
                            let point = Point {
                                id: uuid::Uuid::from_u128(task * 1000 + i + 1),
                                vectors: Default::default(),
                                payload: Default::default(),
                            };
                            store.upsert("synced", vec![point]).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            assert_eq!(store.count("synced", None).await.unwrap(), 200);
            let syncs = store.journal_syncs();
            match sync {
                StoreSync::Always => assert!((1..=200).contains(&syncs), "{syncs} fsyncs for 200 writes"),
                StoreSync::Checkpoint => assert_eq!(syncs, 0),
            }
            store.close().await.unwrap();
        }
    }

    /// 40 MiB of writes close several 8 MiB engine WAL segments; reopening keeps only the
    /// newest closed one, and the engine goes on numbering updates after the last one: writes
    /// after the pruning are stored and survive the next reopen (numbering restarted from 0
    /// would make segments ignore them).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopening_prunes_the_engine_wal_and_later_writes_still_count() {
        use crate::store::{CollectionSpec, Point};
        let dir = tempfile::tempdir().unwrap();
        let spec = CollectionSpec {
            name: "walled".into(),
            dense: Vec::new(),
            sparse: Vec::new(),
            indexes: Vec::new(),
        };
        let point = |i: u128| Point {
            id: uuid::Uuid::from_u128(i + 1),
            vectors: Default::default(),
            payload: [("blob".to_string(), serde_json::json!("w".repeat(1 << 20)))]
                .into_iter()
                .collect(),
        };
        let wal = dir.path().join(QDRANT_DIR).join("walled").join("wal");
        let closed = || {
            std::fs::read_dir(&wal)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("closed-"))
                .count()
        };
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.ensure_collection(&spec).await.unwrap();
        for i in 0..40 {
            store.upsert("walled", vec![point(i)]).await.unwrap();
        }
        // A snapshot holds none of the WAL's entries: one empty closed segment numbered after
        // the 40 updates. A store opened from it numbers its updates on from there, so writes
        // to points that already have a version (overwrite, delete) count.
        let snapshot = tempfile::tempdir().unwrap();
        store.snapshot(snapshot.path()).await.unwrap();
        let snapshot_wal = snapshot.path().join(QDRANT_DIR).join("walled").join("wal");
        let snapshot_files: Vec<(String, u64)> = std::fs::read_dir(&snapshot_wal)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        assert_eq!(snapshot_files, [("closed-40".to_string(), 8)]);
        {
            let copy = EmbeddedStore::open(snapshot.path()).unwrap();
            let mut changed = point(38);
            changed.payload.insert("blob".into(), serde_json::json!("changed"));
            copy.upsert("walled", vec![changed, point(99)]).await.unwrap();
            copy.delete("walled", vec![uuid::Uuid::from_u128(40)]).await.unwrap();
            copy.close().await.unwrap();
            let copy = EmbeddedStore::open(snapshot.path()).unwrap();
            assert_eq!(copy.count("walled", None).await.unwrap(), 40);
            let got = copy
                .retrieve("walled", vec![uuid::Uuid::from_u128(39)], VectorSelection::None)
                .await
                .unwrap();
            assert_eq!(
                got[0].payload["blob"], "changed",
                "an overwrite after the restore counts"
            );
            copy.close().await.unwrap();
        }
        store.close().await.unwrap();
        drop(store);
        assert!(closed() >= 3, "40 MiB of writes closed {} segments", closed());

        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(closed(), engine_wal::KEEP_CLOSED);
        assert_eq!(store.count("walled", None).await.unwrap(), 40);
        for i in 40..50 {
            store.upsert("walled", vec![point(i)]).await.unwrap();
        }
        store.delete("walled", vec![uuid::Uuid::from_u128(1)]).await.unwrap();
        store.close().await.unwrap();
        drop(store);

        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.count("walled", None).await.unwrap(), 49);
        let got = store
            .retrieve("walled", vec![uuid::Uuid::from_u128(50)], VectorSelection::None)
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "the last write after pruning is there");
        store.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            crate::store::conformance::upsert_retrieve_roundtrip(&store, "persist").await;
            store.flush().await.unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.count("persist", None).await.unwrap(), 2);
        let stats = store.stats().await.unwrap();
        assert_eq!(stats[0].name, "persist");
    }

    /// A collection of payloads only (no vectors, no indexes).
    fn payload_only(name: &str) -> crate::store::CollectionSpec {
        crate::store::CollectionSpec {
            name: name.into(),
            dense: Vec::new(),
            sparse: Vec::new(),
            indexes: Vec::new(),
        }
    }

    /// Point `i` with a 1 MiB payload (journal growth in megabytes).
    fn megabyte_point(i: usize) -> crate::store::Point {
        crate::store::Point {
            id: uuid::Uuid::from_u128(i as u128 + 1),
            vectors: Default::default(),
            payload: [("blob".to_string(), serde_json::json!("x".repeat(1 << 20)))]
                .into_iter()
                .collect(),
        }
    }

    /// A thread holding `collection`'s maintenance lock, as a running compaction does, until
    /// the returned sender sends.
    fn hold_maintenance(
        store: &EmbeddedStore,
        collection: &str,
    ) -> (std::thread::JoinHandle<()>, std::sync::mpsc::Sender<()>) {
        let shard = store.shard(collection).unwrap();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let compaction = std::thread::spawn(move || {
            let _m = shard.maintenance.lock().unwrap();
            locked_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        locked_rx.recv().unwrap();
        (compaction, release_tx)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_go_on_during_a_compaction_and_the_journal_checkpoints_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.ensure_collection(&payload_only("busy")).await.unwrap();
        let journal_file = store.root.join(journal::JOURNAL_FILE);
        let point = megabyte_point;
        let (compaction, release_tx) = hold_maintenance(&store, "busy");
        let writes = async {
            for i in 0..12 {
                store.upsert("busy", vec![point(i)]).await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), writes)
            .await
            .expect("writes waited for the compaction");
        let grown = std::fs::metadata(&journal_file).unwrap().len();
        assert!(
            grown > CHECKPOINT_BYTES,
            "no checkpoint while compacting: {grown} bytes"
        );
        release_tx.send(()).unwrap();
        compaction.join().unwrap();
        store.upsert("busy", vec![point(12)]).await.unwrap();
        let after = std::fs::metadata(&journal_file).unwrap().len();
        assert!(after < grown / 4, "checkpointed after the compaction: {after} bytes");
        assert_eq!(store.count("busy", None).await.unwrap(), 13);
    }

    /// Past the journal's limit, a write waits for the running compaction and checkpoints:
    /// the journal stays bounded however long compactions run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_its_limit_the_journal_waits_for_the_compaction_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = EmbeddedStore::open(dir.path()).unwrap();
        store.journal_limit = 3 * CHECKPOINT_BYTES / 2;
        let store = Arc::new(store);
        store.ensure_collection(&payload_only("bounded")).await.unwrap();
        let journal_file = store.root.join(journal::JOURNAL_FILE);
        let point = megabyte_point;
        let (compaction, release_tx) = hold_maintenance(&store, "bounded");
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..16 {
                    store.upsert("bounded", vec![point(i)]).await.unwrap();
                }
            })
        };
        // The writer stops at the limit and stays stopped while the compaction runs.
        let mut stalled_at = 0;
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let now = std::fs::metadata(&journal_file).unwrap().len();
            if now == stalled_at && now > store.journal_limit {
                break;
            }
            stalled_at = now;
        }
        assert!(!writer.is_finished(), "the writer went past the limit");
        assert!(
            stalled_at > store.journal_limit && stalled_at < store.journal_limit + (2 << 20),
            "the journal stopped just past its limit: {stalled_at} bytes"
        );
        release_tx.send(()).unwrap();
        compaction.join().unwrap();
        writer.await.unwrap();
        let after = std::fs::metadata(&journal_file).unwrap().len();
        assert!(
            after < store.journal_limit,
            "checkpointed once the compaction ended: {after} bytes"
        );
        assert_eq!(store.count("bounded", None).await.unwrap(), 16);
    }

    /// Bytes the files under `dir` occupy on disk.
    fn allocated(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| crate::platform::allocated_bytes(&e.unwrap().metadata().unwrap()))
            .sum()
    }

    /// A store whose checkpoints release the engine's WAL as `bounds` say, with 60 MiB
    /// written to its collection "logged" (the engine logs every write, so its WAL grew by at
    /// least that much; journal checkpoints come every 8 MiB) and flushed.
    async fn store_with_60_mib_logged(dir: &Path, bounds: engine_wal::WalBounds) -> EmbeddedStore {
        let mut store = EmbeddedStore::open(dir).unwrap();
        store.engine_wal_bounds = bounds;
        store.ensure_collection(&payload_only("logged")).await.unwrap();
        for i in 0..60 {
            store.upsert("logged", vec![megabyte_point(i)]).await.unwrap();
        }
        store.flush().await.unwrap();
        store
    }

    /// Every point of [`store_with_60_mib_logged`] is there, whole; the collection takes
    /// writes; the store reopens with all of them.
    async fn every_logged_point_is_whole_and_the_store_reopens(store: EmbeddedStore, dir: &Path) {
        assert_eq!(store.count("logged", None).await.unwrap(), 60);
        let ids: Vec<_> = (0..60).map(|i| megabyte_point(i).id).collect();
        let records = store.retrieve("logged", ids, VectorSelection::None).await.unwrap();
        assert_eq!(records.len(), 60);
        assert!(records.iter().all(|r| r.payload == megabyte_point(0).payload));
        store.upsert("logged", vec![megabyte_point(60)]).await.unwrap();
        store.close().await.unwrap();
        let store = EmbeddedStore::open(dir).unwrap();
        assert_eq!(store.count("logged", None).await.unwrap(), 61);
    }

    fn never_reload() -> engine_wal::WalBounds {
        engine_wal::WalBounds {
            idle_reload_past: u64::MAX,
            reload_past: u64::MAX,
            idle_after: std::time::Duration::from_secs(3600),
        }
    }

    fn old_wal(store: &EmbeddedStore) -> engine_wal::OldSegments {
        engine_wal::old_segments(&store.root.join("logged")).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checkpoints_free_the_disk_of_the_engines_old_wal_while_the_collection_stays_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_60_mib_logged(dir.path(), never_reload()).await;
        if !crate::platform::PUNCHES_HOLES {
            // Windows: the old segments stay whole while the collection is loaded; the
            // reload past a bound (the next test) is what removes them there.
            let old = old_wal(&store);
            assert!(old.on_disk >= 40 << 20, "{} bytes of old WAL on disk", old.on_disk);
            every_logged_point_is_whole_and_the_store_reopens(store, dir.path()).await;
            return;
        }
        let kept = allocated(&store.root.join("logged").join("wal"));
        assert!(
            kept < 40 << 20,
            "the engine's WAL holds {kept} bytes on disk after 60 MiB of writes"
        );
        let old = old_wal(&store);
        assert_eq!(old.on_disk, 0, "every old segment punched out at the last checkpoint");
        assert!(
            old.mapped >= 40 << 20,
            "no reload: the punched segments are still there, {} bytes long",
            old.mapped
        );
        every_logged_point_is_whole_and_the_store_reopens(store, dir.path()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_mapped_bound_a_checkpoint_reloads_the_collection_and_keeps_every_point() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = engine_wal::WalBounds {
            reload_past: 16 << 20,
            ..never_reload()
        };
        let store = store_with_60_mib_logged(dir.path(), bounds).await;
        let old = old_wal(&store);
        assert!(
            old.mapped <= bounds.reload_past,
            "reloaded at the last checkpoint past the bound: {} bytes of old WAL left",
            old.mapped
        );
        every_logged_point_is_whole_and_the_store_reopens(store, dir.path()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_collection_past_the_idle_bound_is_reloaded_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = engine_wal::WalBounds {
            idle_reload_past: 4 << 20,
            idle_after: std::time::Duration::from_millis(300),
            ..never_reload()
        };
        let store = store_with_60_mib_logged(dir.path(), bounds).await;
        let shard = store.shard("logged").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while old_wal(&store).mapped > 0 || shard.idle_reloader.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "no idle reload: {} bytes of old WAL",
                old_wal(&store).mapped
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(!shard.reload_when_idle.load(std::sync::atomic::Ordering::SeqCst));
        drop(shard);
        every_logged_point_is_whole_and_the_store_reopens(store, dir.path()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_collection_from_an_earlier_version_gets_the_indexing_threshold_of_its_dense_slots() {
        use crate::store::{CollectionSpec, DenseSpec};
        let dir = tempfile::tempdir().unwrap();
        let spec = CollectionSpec {
            name: "older".into(),
            dense: vec![DenseSpec {
                name: "d".into(),
                dim: 384,
                graph: false,
            }],
            sparse: Vec::new(),
            indexes: Vec::new(),
        };
        let threshold = |store: &EmbeddedStore| {
            store
                .shard("older")
                .unwrap()
                .with_edge(|edge| Ok(edge.config().optimizers.indexing_threshold))
                .unwrap()
        };
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.ensure_collection(&spec).await.unwrap();
        // The vectors of 5,000 points of 384 floats, not the 1,000 KB of keyword-only data.
        assert_eq!(threshold(&store), Some(7_500));
        // As an earlier version created it.
        store
            .shard("older")
            .unwrap()
            .with_edge(|edge| {
                edge.set_optimizers_config(convert::optimizers(&[])).unwrap();
                Ok(())
            })
            .unwrap();
        store.close().await.unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(threshold(&store), Some(1_000), "kept on disk");
        store.ensure_collection(&spec).await.unwrap();
        assert_eq!(threshold(&store), Some(7_500));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_compaction_keeps_every_point_and_answers_queries() {
        use crate::store::{CollectionSpec, Point, QueryRequest, SparseSpec, VectorData};
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let spec = CollectionSpec {
            name: "compact".into(),
            dense: Vec::new(),
            sparse: vec![SparseSpec {
                name: "kw".into(),
                idf: true,
            }],
            indexes: Vec::new(),
        };
        store.ensure_collection(&spec).await.unwrap();
        let total = 2 * COMPACT_AFTER_POINTS as usize + 500;
        let ids: Vec<uuid::Uuid> = (0..total).map(|_| uuid::Uuid::new_v4()).collect();
        for chunk in ids.chunks(500) {
            let points = chunk
                .iter()
                .enumerate()
                .map(|(i, id)| Point {
                    id: *id,
                    vectors: [("kw".to_string(), {
                        // 40 tokens a point, like a chat message: enough vector data
                        // for the optimiser to convert the appendable segment.
                        let mut indices = vec![1, 2 + (i as u32 % 50)];
                        indices.extend((0..38).map(|k| 1000 + k * 20 + (i as u32 % 20)));
                        let values = vec![0.5; indices.len()];
                        VectorData::Sparse { indices, values }
                    })]
                    .into_iter()
                    .collect(),
                    payload: serde_json::Map::new(),
                })
                .collect();
            store.upsert("compact", points).await.unwrap();
        }
        let shard = store.shard("compact").unwrap();
        let segments_before_wait = stats_of(std::slice::from_ref(&shard)).unwrap()[0].segments;
        while shard.compacting.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let after = stats_of(std::slice::from_ref(&shard)).unwrap()[0].clone();
        assert_eq!(after.points, total as u64, "compaction lost or duplicated points");
        assert!(
            after.segments > 1 || segments_before_wait > 1,
            "no compaction happened (segments: {})",
            after.segments
        );
        let hits = store
            .query(
                "compact",
                QueryRequest {
                    using: "kw".into(),
                    vector: VectorData::Sparse {
                        indices: vec![7],
                        values: vec![1.0],
                    },
                    filter: None,
                    limit: 1000,
                    with_payload: false,
                    exact: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(hits.len(), total.div_ceil(50), "every point with token 7 is found");
        let sample: Vec<uuid::Uuid> = ids.iter().step_by(997).copied().collect();
        assert_eq!(
            store
                .retrieve("compact", sample.clone(), VectorSelection::None)
                .await
                .unwrap()
                .len(),
            sample.len()
        );
    }

    /// The `m` of every built HNSW index of vector `slot` under `dir` (one per indexed segment).
    fn graph_links(dir: &std::path::Path, slot: &str) -> Vec<u64> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(graph_links(&path, slot));
            } else if path.file_name().is_some_and(|n| n == "hnsw_config.json")
                && path
                    .parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n == format!("vector_index-{slot}").as_str())
            {
                let config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                out.push(config["m"].as_u64().unwrap());
            }
        }
        out
    }

    /// A collection from before vector indexes (slot without a graph, segments compacted
    /// without one) asked for a graph: the slot is described with it, compaction rebuilds the
    /// segments with a 16-link HNSW index, it survives a reopen, and indexed queries find what
    /// an exact scan finds. (At this size the engine still scans; the graph's recall where it
    /// is used is measured by `bench --resources N --dense`.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_graph_slot_gets_its_vector_index_at_compaction_and_finds_what_a_scan_finds() {
        use crate::store::{CollectionSpec, DenseSpec, Point, QueryRequest, VectorData};
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let mut spec = CollectionSpec {
            name: "graph".into(),
            dense: vec![DenseSpec {
                name: "d".into(),
                dim: 128,
                graph: false,
            }],
            sparse: Vec::new(),
            indexes: Vec::new(),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut random_vector = move || VectorData::Dense((0..128).map(|_| rng.gen_range(-1.0f32..1.0)).collect());
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.ensure_collection(&spec).await.unwrap();
        // 6,000 vectors of 128 floats (3 MB): past the size at which compaction indexes a segment
        // (the vectors of 5,000 points, see `indexing_threshold_kb`).
        for _ in 0..12 {
            let points = (0..500)
                .map(|_| Point {
                    id: uuid::Uuid::new_v4(),
                    vectors: [("d".to_string(), random_vector())].into_iter().collect(),
                    payload: serde_json::Map::new(),
                })
                .collect();
            store.upsert("graph", points).await.unwrap();
        }
        store.optimize("graph").await.unwrap();
        let engine_dir = dir.path().join(QDRANT_DIR);
        assert!(
            graph_links(&engine_dir, "d").iter().all(|m| *m == 0),
            "no graph before one is asked for"
        );

        spec.dense[0].graph = true;
        store.ensure_collection(&spec).await.unwrap();
        assert!(store.describe("graph").await.unwrap().dense[0].graph);
        store.optimize("graph").await.unwrap();
        let built = graph_links(&engine_dir, "d");
        assert!(
            !built.is_empty() && built.contains(&16),
            "a 16-link graph was built: {built:?}"
        );
        store.close().await.unwrap();

        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert!(
            store.describe("graph").await.unwrap().dense[0].graph,
            "kept across a reopen"
        );
        assert_eq!(store.count("graph", None).await.unwrap(), 6000);
        for _ in 0..10 {
            let vector = random_vector();
            let ask = |exact| QueryRequest {
                using: "d".into(),
                vector: vector.clone(),
                filter: None,
                limit: 10,
                with_payload: false,
                exact,
            };
            let exact: Vec<_> = store
                .query("graph", ask(true))
                .await
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect();
            let indexed: Vec<_> = store
                .query("graph", ask(false))
                .await
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect();
            assert_eq!(exact.len(), 10);
            assert_eq!(indexed, exact);
        }
        store.close().await.unwrap();
    }
}
