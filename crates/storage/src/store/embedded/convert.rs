//! Translation between our neutral store types and qdrant-edge 0.7.2 types.
//!
//! The only file besides `mod.rs` that names `qdrant_edge`. Filters, order-by clauses and
//! index schemas are built through Qdrant's documented JSON forms (the same the REST API and
//! a remote backend use), which keeps this file stable across the engine's struct churn.

use std::collections::{BTreeMap, HashMap};

use qdrant_edge as qe;
use serde_json::{json, Value};

use crate::store::{
    CollectionSpec, Condition, DenseSpec, Direction, FieldValue, Filter, IndexKind, OrderBy, Point, PointId,
    PointVectors, Record, SparseSpec, VectorData, VectorSelection,
};

/// Error text of a conversion (wrapped into `StoreError::Backend` by the caller).
pub(super) type ConvertError = Box<dyn std::error::Error + Send + Sync>;

pub(super) fn point_id(id: PointId) -> qe::PointId {
    qe::PointId::Uuid(id)
}

/// The engine's form of a read's vector selection.
pub(super) fn with_vector(vectors: VectorSelection) -> qe::WithVector {
    match vectors {
        VectorSelection::None => qe::WithVector::Bool(false),
        VectorSelection::All => qe::WithVector::Bool(true),
        VectorSelection::Only(names) => qe::WithVector::Selector(names),
    }
}

pub(super) fn from_point_id(id: qe::PointId) -> PointId {
    match id {
        qe::PointId::Uuid(u) => u,
        // We only ever write UUIDs; a numeric id maps into the UUID space without collision.
        qe::PointId::NumId(n) => uuid::Uuid::from_u128(u128::from(n)),
    }
}

fn field_value(v: &FieldValue) -> Value {
    match v {
        FieldValue::Str(s) => Value::String(s.clone()),
        FieldValue::Int(i) => json!(i),
        FieldValue::Bool(b) => Value::Bool(*b),
    }
}

fn condition_json(c: &Condition) -> Value {
    match c {
        Condition::Eq(key, v) => json!({ "key": key, "match": { "value": field_value(v) } }),
        Condition::Any(key, vs) => {
            json!({ "key": key, "match": { "any": vs.iter().map(field_value).collect::<Vec<_>>() } })
        }
        Condition::Range(key, r) => {
            let mut range = serde_json::Map::new();
            for (name, bound) in [("gt", r.gt), ("gte", r.gte), ("lt", r.lt), ("lte", r.lte)] {
                if let Some(b) = bound {
                    range.insert(name.into(), json!(b));
                }
            }
            json!({ "key": key, "range": range })
        }
        Condition::IsEmpty(key) => json!({ "is_empty": { "key": key } }),
        Condition::HasId(ids) => {
            json!({ "has_id": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>() })
        }
        Condition::HasVector(name) => json!({ "has_vector": name }),
        Condition::Filter(f) => filter_json(f),
    }
}

fn filter_json(f: &Filter) -> Value {
    let mut out = serde_json::Map::new();
    for (name, list) in [("must", &f.must), ("should", &f.should), ("must_not", &f.must_not)] {
        if !list.is_empty() {
            out.insert(name.into(), Value::Array(list.iter().map(condition_json).collect()));
        }
    }
    Value::Object(out)
}

pub(super) fn filter(f: &Filter) -> Result<qe::Filter, ConvertError> {
    Ok(serde_json::from_value(filter_json(f))?)
}

pub(super) fn opt_filter(f: Option<&Filter>) -> Result<Option<qe::Filter>, ConvertError> {
    f.map(filter).transpose()
}

pub(super) fn order_by(o: &OrderBy) -> Result<qe::OrderByInterface, ConvertError> {
    let mut v = json!({
        "key": o.field,
        "direction": match o.direction { Direction::Asc => "asc", Direction::Desc => "desc" },
    });
    if let Some(start) = o.start_from {
        v["start_from"] = json!(start);
    }
    Ok(serde_json::from_value(v)?)
}

pub(super) fn json_path(key: &str) -> Result<qe::JsonPath, ConvertError> {
    qe::JsonPath::try_from(key).map_err(|_| format!("invalid payload key `{key}`").into())
}

/// A payload index's schema. Indexes of immutable segments are memory-mapped (`on_disk`), as
/// payloads and vectors are: the heap does not grow with the store.
pub(super) fn index_schema(kind: IndexKind) -> Result<qe::PayloadFieldSchema, ConvertError> {
    let v = match kind {
        IndexKind::Keyword => json!({ "type": "keyword", "on_disk": true }),
        IndexKind::Tenant => json!({ "type": "keyword", "is_tenant": true, "on_disk": true }),
        IndexKind::Integer => json!({ "type": "integer", "lookup": false, "range": true, "on_disk": true }),
        IndexKind::Float => json!({ "type": "float", "on_disk": true }),
        IndexKind::Bool => json!("bool"),
    };
    Ok(serde_json::from_value(v)?)
}

/// Shard config: payload, dense vectors and sparse indexes on disk (memory-mapped: the page
/// cache holds what is read, instead of the heap holding everything; at 1M messages the
/// in-RAM sparse index alone made 888 MiB of anonymous memory), cosine dense vectors, sparse
/// vectors (IDF when asked), and
/// no HNSW graph (`m = 0`). Every query of ours is filtered to one user, which qdrant answers
/// by scanning that user's points; a graph would cost minutes of CPU per optimisation of a
/// 100k-message collection on a laptop and would not be used.
pub(super) fn edge_config(dense: &[DenseSpec], sparse: &[SparseSpec]) -> qe::EdgeConfig {
    let mut builder = qe::EdgeConfigBuilder::new()
        .on_disk_payload(true)
        .hnsw_config(qe::HnswIndexConfig {
            m: 0,
            ef_construct: 100,
            full_scan_threshold: 10_000,
            max_indexing_threads: 0,
            on_disk: None,
            payload_m: None,
            inline_storage: None,
        })
        .optimizers(optimizers(dense))
        .wal_options(qe::WalOptions {
            segment_capacity: super::engine_wal::SEGMENT_CAPACITY,
            ..qe::WalOptions::default()
        });
    for d in dense {
        let mut params = qe::EdgeVectorParamsBuilder::new(d.dim, qe::Distance::Cosine).on_disk(true);
        if d.graph {
            params = params.hnsw_config(graph_index());
        }
        builder = builder.vector(d.name.clone(), params.build());
    }
    for s in sparse {
        let mut params = qe::EdgeSparseVectorParamsBuilder::new().on_disk(true);
        if s.idf {
            params = params.modifier(qe::Modifier::Idf);
        }
        builder = builder.sparse_vector(s.name.clone(), params.build());
    }
    builder.build()
}

/// Optimiser settings of a collection with these dense slots. Optimisation moves an
/// appendable segment of a few thousand points into an immutable one, keeping appends cheap
/// (see `compact_if_due` and [`crate::store::indexing_threshold_kb`]); up to 8 segments before
/// small ones are merged, so a compaction converts the new appendable segment instead of
/// rewriting the whole collection.
pub(super) fn optimizers(dense: &[DenseSpec]) -> qe::EdgeOptimizersConfig {
    qe::EdgeOptimizersConfig {
        indexing_threshold: Some(crate::store::indexing_threshold_kb(dense) as usize),
        default_segment_number: Some(super::super::SEGMENTS_BEFORE_MERGE as usize),
        ..qe::EdgeOptimizersConfig::default()
    }
}

/// The vector index of a [`DenseSpec::graph`] slot: qdrant's default graph (16 links per
/// node, 100 candidates while building), memory-mapped like the vectors. Segments under
/// `full_scan_threshold` KB of vectors (~6,500 of 384 dimensions), and filters admitting
/// fewer points than that, are still scanned: exact, and faster than a graph at that size.
/// Built by compaction (an immutable segment's graph; a merge reuses the largest input's).
pub(super) fn graph_index() -> qe::HnswIndexConfig {
    qe::HnswIndexConfig {
        m: 16,
        ef_construct: 100,
        full_scan_threshold: 10_000,
        max_indexing_threads: 0,
        on_disk: Some(true),
        payload_m: None,
        inline_storage: None,
    }
}

/// True when a dense slot's config (the engine's JSON) names a graph of its own.
pub(super) fn has_graph(params: &Value) -> bool {
    params["hnsw_config"]["m"].as_u64().is_some_and(|m| m > 0)
}

/// A collection's spec from the engine's config and payload schema, both as JSON.
pub(super) fn describe(name: &str, config: &Value, schema: &Value) -> CollectionSpec {
    let entries = |v: &Value| v.as_object().cloned().unwrap_or_default().into_iter();
    let dense: Vec<DenseSpec> = entries(&config["vectors"])
        .filter_map(|(name, params)| {
            Some(DenseSpec {
                name,
                dim: usize::try_from(params["size"].as_u64()?).ok()?,
                graph: has_graph(&params),
            })
        })
        .collect();
    let sparse: Vec<SparseSpec> = entries(&config["sparse_vectors"])
        .map(|(name, params)| SparseSpec {
            name,
            idf: params["modifier"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case("idf")),
        })
        .collect();
    let indexes: Vec<(String, IndexKind)> = entries(schema)
        .filter_map(|(field, info)| {
            let kind = match info["data_type"].as_str()? {
                "keyword" if info["params"]["is_tenant"].as_bool() == Some(true) => IndexKind::Tenant,
                "keyword" => IndexKind::Keyword,
                "integer" => IndexKind::Integer,
                "float" => IndexKind::Float,
                "bool" => IndexKind::Bool,
                other => {
                    tracing::warn!(field, kind = other, "payload index of a kind we never create skipped");
                    return None;
                }
            };
            Some((field, kind))
        })
        .collect();
    CollectionSpec::sorted(name, dense, sparse, indexes)
}

pub(super) fn create_dense_vector(d: &DenseSpec) -> Result<qe::UpdateOperation, ConvertError> {
    let op: qe::VectorNameOperations = serde_json::from_value(json!({
        "create_vector_name": { "vector_name": d.name, "config": { "dense": { "size": d.dim, "distance": "Cosine" } } }
    }))?;
    Ok(qe::UpdateOperation::VectorNameOperation(op))
}

pub(super) fn create_sparse_vector(s: &SparseSpec) -> Result<qe::UpdateOperation, ConvertError> {
    let sparse = if s.idf { json!({ "modifier": "idf" }) } else { json!({}) };
    let op: qe::VectorNameOperations = serde_json::from_value(json!({
        "create_vector_name": { "vector_name": s.name, "config": { "sparse": sparse } }
    }))?;
    Ok(qe::UpdateOperation::VectorNameOperation(op))
}

fn vector(v: VectorData) -> Result<qe::Vector, ConvertError> {
    Ok(match v {
        VectorData::Dense(d) => qe::Vector::new_dense(d),
        VectorData::Sparse { indices, values } => qe::Vector::new_sparse(indices, values)?,
    })
}

pub(super) fn vector_internal(v: VectorData) -> Result<qe::VectorInternal, ConvertError> {
    Ok(vector(v)?.0)
}

pub(super) fn point(p: Point) -> Result<qe::PointStructPersisted, ConvertError> {
    let named = p
        .vectors
        .into_iter()
        .map(|(name, v)| Ok((name, vector(v)?)))
        .collect::<Result<Vec<_>, ConvertError>>()?;
    let vectors = qe::Vectors::new_named(named);
    Ok(qe::PointStruct::new(point_id(p.id), vectors, Value::Object(p.payload)).into())
}

/// An update of named vectors, built through the operation's serde form (its point type is not
/// exported by the engine); each vector is first converted exactly as an upsert converts it.
pub(super) fn update_vectors(points: Vec<PointVectors>) -> Result<qe::UpdateOperation, ConvertError> {
    let mut list = Vec::with_capacity(points.len());
    for p in points {
        let id = p.id;
        let persisted = point(Point {
            id,
            vectors: p.vectors,
            payload: serde_json::Map::new(),
        })?;
        list.push(json!({ "id": id.to_string(), "vector": serde_json::to_value(&persisted.vector)? }));
    }
    let op: qe::UpdateVectorsOp = serde_json::from_value(json!({ "points": list }))?;
    Ok(qe::UpdateOperation::VectorOperation(
        qe::VectorOperations::UpdateVectors(op),
    ))
}

fn vectors_back(v: Option<qe::VectorStructInternal>) -> BTreeMap<String, VectorData> {
    let mut out = BTreeMap::new();
    if let Some(qe::VectorStructInternal::Named(map)) = v {
        let map: HashMap<_, _> = map;
        for (name, vec) in map {
            match vec {
                qe::VectorInternal::Dense(d) => {
                    out.insert(name, VectorData::Dense(d));
                }
                qe::VectorInternal::Sparse(s) => {
                    out.insert(
                        name,
                        VectorData::Sparse {
                            indices: s.indices,
                            values: s.values,
                        },
                    );
                }
                qe::VectorInternal::MultiDense(_) => {}
            }
        }
    }
    out
}

pub(super) fn record(r: qe::Record) -> Record {
    Record {
        id: from_point_id(r.id),
        payload: r.payload.map(|p| p.0).unwrap_or_default(),
        vectors: vectors_back(r.vector),
    }
}

pub(super) fn facet_value(v: qe::FacetValue) -> FieldValue {
    match v {
        qe::FacetValue::Keyword(s) => FieldValue::Str(s),
        qe::FacetValue::Int(i) => FieldValue::Int(i),
        qe::FacetValue::Uuid(u) => FieldValue::Str(uuid::Uuid::from_u128(u).to_string()),
        qe::FacetValue::Bool(b) => FieldValue::Bool(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Range;

    #[test]
    fn every_condition_kind_converts() {
        let f = Filter::must(Condition::Eq("user_id".into(), "u".into()))
            .and(Condition::Any("role".into(), vec!["user".into(), "assistant".into()]))
            .and(Condition::Range(
                "created_at".into(),
                Range {
                    gte: Some(1.0),
                    ..Range::default()
                },
            ))
            .and(Condition::HasId(vec![uuid::Uuid::from_u128(5)]))
            .and(Condition::Filter(Box::new(Filter::must(Condition::Eq(
                "n".into(),
                FieldValue::Int(3),
            )))))
            .and_not(Condition::IsEmpty("x".into()));
        filter(&f).unwrap();
        order_by(&OrderBy {
            field: "i".into(),
            direction: Direction::Desc,
            start_from: Some(4.0),
        })
        .unwrap();
        for kind in [
            IndexKind::Keyword,
            IndexKind::Tenant,
            IndexKind::Integer,
            IndexKind::Float,
            IndexKind::Bool,
        ] {
            index_schema(kind).unwrap();
        }
        create_dense_vector(&DenseSpec {
            name: "dense".into(),
            dim: 4,
            graph: false,
        })
        .unwrap();
        create_sparse_vector(&SparseSpec {
            name: "kw".into(),
            idf: true,
        })
        .unwrap();
    }
}
