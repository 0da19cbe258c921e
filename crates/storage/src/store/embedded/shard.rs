//! One collection: a qdrant-edge `EdgeShard` with its locks, created from a `CollectionSpec`,
//! and the application of one journaled write to it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use qdrant_edge as qe;

use super::convert::{self, ConvertError};
use super::engine_wal;
use super::journal::WriteOp;
use super::BACKEND;
use crate::store::{CollectionSpec, StoreError};

pub(super) struct Shard {
    pub(super) name: String,
    /// The collection's folder.
    path: PathBuf,
    /// The engine's shard. Empty only while [`Shard::reload`] swaps it, which holds the write
    /// side; every use goes through [`Shard::with_edge`].
    edge: RwLock<Option<qe::EdgeShard>>,
    /// Serialises updates and flushes of this shard (journal order is apply order).
    pub(super) writer: Mutex<()>,
    /// Held while the optimiser runs; flushes (checkpoints, snapshots) take it before the
    /// writer lock, because `EdgeShard::flush` panics when the optimiser holds the segment
    /// lock. Writers do not take it: qdrant's optimiser works on proxied segments while
    /// updates go on, as in the server.
    pub(super) maintenance: Mutex<()>,
    /// Points written since the last optimisation (see [`super::maintenance::COMPACT_AFTER_POINTS`]).
    pub(super) written_since_optimize: std::sync::atomic::AtomicU64,
    /// A background optimisation is running.
    pub(super) compacting: std::sync::atomic::AtomicBool,
    /// Writes applied since the shard was loaded (an idle reload checks none came meanwhile).
    pub(super) writes: std::sync::atomic::AtomicU64,
    /// A checkpoint asked for a reload once the collection is idle, and nobody did it yet.
    pub(super) reload_when_idle: std::sync::atomic::AtomicBool,
    /// A task waiting for the collection to go idle to reload it exists.
    pub(super) idle_reloader: std::sync::atomic::AtomicBool,
}

/// What [`Shard::reload_if_idle`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum IdleReload {
    /// Reloaded; the bytes pruned.
    Done(u64),
    /// A write or a compaction came first: try again after the next quiet period.
    Busy,
    /// A checkpoint reloaded the collection meanwhile: nothing to do.
    NotNeeded,
}

impl Shard {
    /// A shard around a loaded or created engine shard.
    fn new(name: String, path: PathBuf, edge: qe::EdgeShard) -> Arc<Self> {
        Arc::new(Shard {
            name,
            path,
            edge: RwLock::new(Some(edge)),
            writer: Mutex::new(()),
            written_since_optimize: Default::default(),
            maintenance: Mutex::new(()),
            compacting: Default::default(),
            writes: Default::default(),
            reload_when_idle: Default::default(),
            idle_reloader: Default::default(),
        })
    }

    /// Run `f` on the engine's shard (shared with other readers, writers and the optimiser).
    ///
    /// # Errors
    /// What `f` returns; [`StoreError::Backend`] when a failed [`Shard::reload`] left the
    /// collection without its engine shard (reopen the store).
    pub(super) fn with_edge<T>(
        &self,
        f: impl FnOnce(&qe::EdgeShard) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let edge = self.edge.read().unwrap_or_else(|p| p.into_inner());
        match edge.as_ref() {
            Some(edge) => f(edge),
            None => Err((self.engine_err("use"))(
                "the collection could not be reloaded after pruning the engine's WAL; reopen the store".into(),
            )),
        }
    }

    /// Punch out the disk blocks of the engine's old WAL segments (see
    /// [`engine_wal::punch_old_segments`]); the caller has flushed the shard. Returns what the
    /// old segments still hold.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the WAL folder cannot be listed or a segment punched.
    pub(super) fn punch_old_wal(&self) -> Result<engine_wal::OldSegments, StoreError> {
        engine_wal::punch_old_segments(&self.path)
    }

    /// Reload the shard (see [`Shard::reload`]) if no write was applied since the count
    /// `writes_seen` and no compaction runs; never waits for either.
    ///
    /// # Errors
    /// As [`Shard::reload`].
    pub(super) fn reload_if_idle(&self, writes_seen: u64) -> Result<IdleReload, StoreError> {
        use std::sync::atomic::Ordering;
        // Lock order everywhere: maintenance, then writer.
        let _maintenance = match self.maintenance.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(IdleReload::Busy),
        };
        let _writer = match self.writer.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(IdleReload::Busy),
        };
        if self.writes.load(Ordering::SeqCst) != writes_seen {
            return Ok(IdleReload::Busy);
        }
        if !self.reload_when_idle.load(Ordering::SeqCst) {
            return Ok(IdleReload::NotNeeded);
        }
        self.flush()?;
        let freed = self.reload()?;
        self.reload_when_idle.store(false, Ordering::SeqCst);
        Ok(IdleReload::Done(freed))
    }

    /// Drop the engine's shard, prune its WAL and load it again: the engine keeps every WAL
    /// segment it wrote mapped until it is dropped, so pruning frees nothing while it is
    /// loaded. The caller holds this shard's maintenance and writer locks and has flushed it
    /// (a checkpoint, or [`Shard::reload_if_idle`]), so nothing is lost if the process dies
    /// half-way: an open finds a flushed shard and a contiguous WAL suffix, as after a clean
    /// close. Reads wait while it runs (it holds the engine shard's write side). Returns the
    /// bytes freed.
    ///
    /// # Errors
    /// [`StoreError::Io`] when pruning fails, [`StoreError::Backend`] when loading fails (the
    /// collection then refuses every call until the store is reopened).
    pub(super) fn reload(&self) -> Result<u64, StoreError> {
        let mut slot = self.edge.write().unwrap_or_else(|p| p.into_inner());
        // Dropping flushes and unmaps the WAL segments.
        drop(slot.take());
        let pruned = engine_wal::prune(&self.path);
        *slot = Some(load_engine_shard(&self.path, &self.name)?);
        pruned
    }

    /// Write the engine's shard to disk (the caller holds the maintenance and writer locks).
    pub(super) fn flush(&self) -> Result<(), StoreError> {
        self.with_edge(|edge| {
            edge.flush();
            Ok(())
        })
    }

    /// Run the engine's optimisers until they find nothing to do (the caller holds the
    /// maintenance lock).
    pub(super) fn optimize(&self) -> Result<bool, StoreError> {
        self.with_edge(|edge| edge.optimize().map_err(|e| (self.engine_err("optimize"))(Box::new(e))))
    }

    pub(super) fn engine_err(&self, operation: &'static str) -> impl Fn(ConvertError) -> StoreError + '_ {
        move |source| StoreError::Backend {
            backend: BACKEND,
            collection: self.name.clone(),
            operation,
            source,
        }
    }

    pub(super) fn update(&self, operation: &'static str, op: qe::UpdateOperation) -> Result<(), StoreError> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.with_edge(|edge| edge.update(op).map_err(|e| (self.engine_err(operation))(Box::new(e))))
    }
}

/// Load the existing collection in `path`, pruning its engine WAL first.
pub(super) fn load_shard(path: &Path, name: &str) -> Result<Arc<Shard>, StoreError> {
    engine_wal::prune(path)?;
    let edge = load_engine_shard(path, name)?;
    Ok(Shard::new(name.to_string(), path.to_path_buf(), edge))
}

fn load_engine_shard(path: &Path, name: &str) -> Result<qe::EdgeShard, StoreError> {
    qe::EdgeShard::load(path, None).map_err(|e| StoreError::Backend {
        backend: BACKEND,
        collection: name.to_string(),
        operation: "load",
        source: Box::new(e),
    })
}

/// Create a fresh shard for `spec` under `root`.
pub(super) fn create_shard(root: &Path, spec: &CollectionSpec) -> Result<Arc<Shard>, StoreError> {
    let path = root.join(&spec.name);
    let io = |source| StoreError::Io {
        action: "creating collection folder",
        path: path.display().to_string(),
        source,
    };
    // A folder without a config is debris of an interrupted creation: start it over.
    if path.exists() {
        std::fs::remove_dir_all(&path).map_err(io)?;
    }
    std::fs::create_dir_all(&path).map_err(io)?;
    let edge = qe::EdgeShard::new(&path, convert::edge_config(&spec.dense, &spec.sparse)).map_err(|e| {
        StoreError::Backend {
            backend: BACKEND,
            collection: spec.name.clone(),
            operation: "create collection",
            source: Box::new(e),
        }
    })?;
    Ok(Shard::new(spec.name.clone(), path, edge))
}

/// Apply one write to a shard; the caller holds its writer lock.
pub(super) fn apply(shard: &Shard, op: WriteOp) -> Result<(), StoreError> {
    let (operation, update) = match op {
        WriteOp::Upsert(points) => {
            let points = points
                .into_iter()
                .map(convert::point)
                .collect::<Result<Vec<_>, _>>()
                .map_err(shard.engine_err("upsert"))?;
            (
                "upsert",
                qe::UpdateOperation::PointOperation(qe::PointOperations::UpsertPoints(
                    qe::PointInsertOperations::PointsList(points),
                )),
            )
        }
        WriteOp::UpdateVectors(points) => (
            "update vectors",
            convert::update_vectors(points).map_err(shard.engine_err("update vectors"))?,
        ),
        WriteOp::SetPayload { ids, payload } => (
            "set payload",
            qe::UpdateOperation::PayloadOperation(qe::PayloadOps::SetPayload(qe::SetPayloadOp {
                payload: qe::Payload(payload),
                points: Some(ids.into_iter().map(convert::point_id).collect()),
                filter: None,
                key: None,
            })),
        ),
        WriteOp::SetPayloadByFilter { filter, payload } => (
            "set payload",
            qe::UpdateOperation::PayloadOperation(qe::PayloadOps::SetPayload(qe::SetPayloadOp {
                payload: qe::Payload(payload),
                points: None,
                filter: Some(convert::filter(&filter).map_err(shard.engine_err("set payload"))?),
                key: None,
            })),
        ),
        WriteOp::Delete(ids) => (
            "delete",
            qe::UpdateOperation::PointOperation(qe::PointOperations::DeletePoints {
                ids: ids.into_iter().map(convert::point_id).collect(),
            }),
        ),
        WriteOp::DeleteByFilter(filter) => {
            let filter = convert::filter(&filter).map_err(shard.engine_err("delete by filter"))?;
            (
                "delete by filter",
                qe::UpdateOperation::PointOperation(qe::PointOperations::DeletePointsByFilter(filter)),
            )
        }
    };
    shard.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    shard.with_edge(|edge| {
        edge.update(update)
            .map_err(|e| (shard.engine_err(operation))(Box::new(e)))
    })
}

pub(super) fn ensure_schema(shard: &Shard, spec: &CollectionSpec) -> Result<(), StoreError> {
    let (dense_known, sparse_known) = shard.with_edge(|edge| {
        let config = edge.config();
        Ok((
            config.vectors.keys().cloned().collect::<Vec<_>>(),
            config.sparse_vectors.keys().cloned().collect::<Vec<_>>(),
        ))
    })?;
    for d in spec.dense.iter().filter(|d| !dense_known.contains(&d.name)) {
        let op = convert::create_dense_vector(d).map_err(shard.engine_err("add vector"))?;
        shard.update("add vector", op)?;
    }
    ensure_graphs(shard, spec)?;
    ensure_optimizers(shard, spec)?;
    for s in spec.sparse.iter().filter(|s| !sparse_known.contains(&s.name)) {
        let op = convert::create_sparse_vector(s).map_err(shard.engine_err("add vector"))?;
        shard.update("add vector", op)?;
    }
    let indexed: Vec<String> =
        shard.with_edge(|edge| Ok(edge.info().payload_schema.keys().map(|k| k.to_string()).collect()))?;
    for (field, kind) in &spec.indexes {
        if indexed.iter().any(|k| k == field) {
            continue;
        }
        let schema = convert::index_schema(*kind).map_err(shard.engine_err("create index"))?;
        let field_name = convert::json_path(field).map_err(shard.engine_err("create index"))?;
        let op = qe::UpdateOperation::FieldIndexOperation(qe::FieldIndexOperations::CreateIndex(qe::CreateIndex {
            field_name,
            field_schema: Some(schema),
        }));
        shard.update("create index", op)?;
    }
    Ok(())
}

/// Bring the optimiser settings of a collection created by an earlier version (or before a
/// dense slot was added) to what its spec asks for now.
fn ensure_optimizers(shard: &Shard, spec: &CollectionSpec) -> Result<(), StoreError> {
    let wanted = convert::optimizers(&spec.dense);
    shard.with_edge(|edge| {
        if edge.config().optimizers == wanted {
            return Ok(());
        }
        tracing::info!(collection = %shard.name, indexing_threshold_kb = ?wanted.indexing_threshold, "updating the optimiser settings");
        edge.set_optimizers_config(wanted)
            .map_err(|e| (shard.engine_err("set optimiser settings"))(Box::new(e)))
    })
}

/// Give every [`crate::store::DenseSpec::graph`] slot its vector index (a slot added after the
/// collection was created, or a collection from before graphs, has none). Compaction then
/// rebuilds the existing immutable segments with the graph (the engine's config-mismatch
/// optimiser), in the background like any compaction.
fn ensure_graphs(shard: &Shard, spec: &CollectionSpec) -> Result<(), StoreError> {
    let missing: Vec<String> = shard.with_edge(|edge| {
        let config = edge.config();
        Ok(spec
            .dense
            .iter()
            .filter(|d| d.graph)
            .filter(|d| {
                config
                    .vectors
                    .get(&d.name)
                    .is_some_and(|p| p.hnsw_config.is_none_or(|h| h.m == 0))
            })
            .map(|d| d.name.clone())
            .collect())
    })?;
    for name in missing {
        tracing::info!(collection = %shard.name, vector = %name, "adding a vector index (HNSW) to the slot");
        shard.with_edge(|edge| {
            edge.set_vector_hnsw_config(&name, convert::graph_index())
                .map_err(|e| (shard.engine_err("add vector index"))(Box::new(e)))
        })?;
    }
    Ok(())
}
