//! One collection: a qdrant-edge `EdgeShard` with its locks, created from a `CollectionSpec`,
//! and the application of one journaled write to it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use qdrant_edge as qe;

use super::convert::{self, ConvertError};
use super::journal::WriteOp;
use super::BACKEND;
use crate::store::{CollectionSpec, StoreError};

pub(super) struct Shard {
    pub(super) name: String,
    pub(super) edge: qe::EdgeShard,
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
}

impl Shard {
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
        self.edge
            .update(op)
            .map_err(|e| (self.engine_err(operation))(Box::new(e)))
    }
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
    Ok(Arc::new(Shard {
        name: spec.name.clone(),
        edge,
        writer: Mutex::new(()),
        written_since_optimize: Default::default(),
        maintenance: Mutex::new(()),
        compacting: Default::default(),
    }))
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
    shard
        .edge
        .update(update)
        .map_err(|e| (shard.engine_err(operation))(Box::new(e)))
}

pub(super) fn ensure_schema(shard: &Shard, spec: &CollectionSpec) -> Result<(), StoreError> {
    let (dense_known, sparse_known) = {
        let config = shard.edge.config();
        (
            config.vectors.keys().cloned().collect::<Vec<_>>(),
            config.sparse_vectors.keys().cloned().collect::<Vec<_>>(),
        )
    };
    for d in spec.dense.iter().filter(|d| !dense_known.contains(&d.name)) {
        let op = convert::create_dense_vector(d).map_err(shard.engine_err("add vector"))?;
        shard.update("add vector", op)?;
    }
    ensure_graphs(shard, spec)?;
    for s in spec.sparse.iter().filter(|s| !sparse_known.contains(&s.name)) {
        let op = convert::create_sparse_vector(s).map_err(shard.engine_err("add vector"))?;
        shard.update("add vector", op)?;
    }
    let indexed: Vec<String> = shard.edge.info().payload_schema.keys().map(|k| k.to_string()).collect();
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

/// Give every [`crate::store::DenseSpec::graph`] slot its vector index (a slot added after the
/// collection was created, or a collection from before graphs, has none). Compaction then
/// rebuilds the existing immutable segments with the graph (the engine's config-mismatch
/// optimiser), in the background like any compaction.
fn ensure_graphs(shard: &Shard, spec: &CollectionSpec) -> Result<(), StoreError> {
    let missing: Vec<String> = {
        let config = shard.edge.config();
        spec.dense
            .iter()
            .filter(|d| d.graph)
            .filter(|d| {
                config
                    .vectors
                    .get(&d.name)
                    .is_some_and(|p| p.hnsw_config.is_none_or(|h| h.m == 0))
            })
            .map(|d| d.name.clone())
            .collect()
    };
    for name in missing {
        tracing::info!(collection = %shard.name, vector = %name, "adding a vector index (HNSW) to the slot");
        shard
            .edge
            .set_vector_hnsw_config(&name, convert::graph_index())
            .map_err(|e| (shard.engine_err("add vector index"))(Box::new(e)))?;
    }
    Ok(())
}
