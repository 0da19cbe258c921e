//! Translation between our neutral store types and the gRPC types of `qdrant-client`.
//!
//! The only file besides `mod.rs` that names `qdrant_client`.

use std::collections::{BTreeMap, HashMap};

use qdrant_client::qdrant as q;
use serde_json::Value;

use crate::store::{
    CollectionSpec, Condition, DenseSpec, Direction, FieldValue, Filter, Hit, IndexKind, OrderBy, Payload, Point,
    PointId, Range, Record, SparseSpec, VectorData, VectorSelection,
};

/// Error text of a conversion (wrapped into `StoreError::Backend` by the caller).
pub(super) type ConvertError = Box<dyn std::error::Error + Send + Sync>;

pub(super) fn point_id(id: PointId) -> q::PointId {
    q::PointId::from(id.to_string())
}

/// The server's form of a read's vector selection.
pub(super) fn vectors_selector(vectors: VectorSelection) -> q::with_vectors_selector::SelectorOptions {
    match vectors {
        VectorSelection::None => false.into(),
        VectorSelection::All => true.into(),
        VectorSelection::Only(names) => q::VectorsSelector { names }.into(),
    }
}

pub(super) fn from_point_id(id: Option<q::PointId>) -> Result<PointId, ConvertError> {
    match id.and_then(|id| id.point_id_options) {
        Some(q::point_id::PointIdOptions::Uuid(u)) => Ok(uuid::Uuid::parse_str(&u)?),
        // We only ever write UUIDs; a numeric id maps into the UUID space without collision.
        Some(q::point_id::PointIdOptions::Num(n)) => Ok(uuid::Uuid::from_u128(u128::from(n))),
        None => Err("the server returned a point without an id".into()),
    }
}

fn match_value(v: &FieldValue) -> q::r#match::MatchValue {
    match v {
        FieldValue::Str(s) => q::r#match::MatchValue::Keyword(s.clone()),
        FieldValue::Int(i) => q::r#match::MatchValue::Integer(*i),
        FieldValue::Bool(b) => q::r#match::MatchValue::Boolean(*b),
    }
}

fn match_any(values: &[FieldValue]) -> Result<q::r#match::MatchValue, ConvertError> {
    let strings: Option<Vec<String>> = values
        .iter()
        .map(|v| match v {
            FieldValue::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    if let Some(strings) = strings {
        return Ok(q::r#match::MatchValue::Keywords(q::RepeatedStrings { strings }));
    }
    let integers: Option<Vec<i64>> = values
        .iter()
        .map(|v| match v {
            FieldValue::Int(i) => Some(*i),
            _ => None,
        })
        .collect();
    match integers {
        Some(integers) => Ok(q::r#match::MatchValue::Integers(q::RepeatedIntegers { integers })),
        None => Err("`any` needs values of one type, strings or integers".into()),
    }
}

fn range(r: &Range) -> q::Range {
    q::Range {
        gt: r.gt,
        gte: r.gte,
        lt: r.lt,
        lte: r.lte,
    }
}

fn condition(c: &Condition) -> Result<q::Condition, ConvertError> {
    Ok(match c {
        Condition::Eq(key, v) => q::Condition::matches(key.clone(), match_value(v)),
        Condition::Any(key, vs) => q::Condition::matches(key.clone(), match_any(vs)?),
        Condition::Range(key, r) => q::Condition::range(key.clone(), range(r)),
        Condition::IsEmpty(key) => q::Condition::is_empty(key.clone()),
        Condition::HasId(ids) => q::Condition::has_id(ids.iter().map(|id| point_id(*id))),
        Condition::HasVector(name) => q::Condition::has_vector(name.clone()),
        Condition::Filter(f) => q::Condition::from(filter(f)?),
    })
}

pub(super) fn filter(f: &Filter) -> Result<q::Filter, ConvertError> {
    let list = |cs: &[Condition]| cs.iter().map(condition).collect::<Result<Vec<_>, _>>();
    Ok(q::Filter {
        must: list(&f.must)?,
        should: list(&f.should)?,
        must_not: list(&f.must_not)?,
        ..q::Filter::default()
    })
}

pub(super) fn opt_filter(f: Option<&Filter>) -> Result<Option<q::Filter>, ConvertError> {
    f.map(filter).transpose()
}

/// Medium write ordering: every write to a shard goes through its dynamically elected leader
/// replica, so two writers on a cluster see one order of the updates to a point (an
/// `insert_only` race has one winner), and when the leader's node dies another replica takes
/// over. (`Strong` routes through a fixed leader: measured here, every write whose leader was on
/// the killed node failed until it came back.)
pub(super) fn ordered() -> q::WriteOrdering {
    q::WriteOrdering {
        r#type: q::WriteOrderingType::Medium as i32,
    }
}

pub(super) fn order_by(o: &OrderBy) -> q::OrderBy {
    let mut builder = q::OrderByBuilder::new(o.field.clone()).direction(match o.direction {
        Direction::Asc => q::Direction::Asc as i32,
        Direction::Desc => q::Direction::Desc as i32,
    });
    if let Some(start) = o.start_from {
        builder = builder.start_from(q::start_from::Value::Float(start));
    }
    builder.build()
}

/// The field type and its parameters for a payload index.
pub(super) fn index(kind: IndexKind) -> (q::FieldType, Option<q::payload_index_params::IndexParams>) {
    let params = Some;
    match kind {
        IndexKind::Keyword => (q::FieldType::Keyword, None),
        IndexKind::Tenant => (
            q::FieldType::Keyword,
            params(q::payload_index_params::IndexParams::KeywordIndexParams(
                q::KeywordIndexParamsBuilder::default().is_tenant(true).build(),
            )),
        ),
        // Lookup is needed by `match` on integers, range by `order_by`.
        IndexKind::Integer => (
            q::FieldType::Integer,
            params(q::payload_index_params::IndexParams::IntegerIndexParams(
                q::IntegerIndexParamsBuilder::new(true, true).build(),
            )),
        ),
        IndexKind::Float => (q::FieldType::Float, None),
        IndexKind::Bool => (q::FieldType::Bool, None),
    }
}

fn vector(v: VectorData) -> q::Vector {
    match v {
        VectorData::Dense(values) => q::Vector::new_dense(values),
        VectorData::Sparse { indices, values } => q::Vector::new_sparse(indices, values),
    }
}

pub(super) fn vectors(vs: BTreeMap<String, VectorData>) -> q::Vectors {
    let named: HashMap<String, q::Vector> = vs.into_iter().map(|(name, v)| (name, vector(v))).collect();
    q::Vectors::from(named)
}

pub(super) fn vector_input(v: VectorData) -> q::VectorInput {
    match v {
        VectorData::Dense(values) => q::VectorInput::new_dense(values),
        VectorData::Sparse { indices, values } => q::VectorInput::new_sparse(indices, values),
    }
}

pub(super) fn payload(p: Payload) -> qdrant_client::Payload {
    qdrant_client::Payload::from(p)
}

pub(super) fn point(p: Point) -> q::PointStruct {
    q::PointStruct::new(point_id(p.id), vectors(p.vectors), payload(p.payload))
}

fn payload_back(p: HashMap<String, q::Value>) -> Payload {
    p.into_iter().map(|(k, v)| (k, Value::from(v))).collect()
}

/// A vector of a reply, read field by field: qdrant-client's `VectorOutput::into_vector`
/// divides by the reply's `vectors_count` (a hostile `0` panics), so it is never called.
/// Multi-vectors (which our collections never hold) are ignored; a sparse vector whose
/// indices and values differ in length is refused.
#[allow(deprecated)] // the fields servers before 1.16 fill, read here instead of `into_vector`
fn vector_back(v: q::VectorOutput) -> Result<Option<VectorData>, ConvertError> {
    let sparse = |indices: Vec<u32>, values: Vec<f32>| {
        if indices.len() == values.len() {
            Ok(Some(VectorData::Sparse { indices, values }))
        } else {
            Err(ConvertError::from(format!(
                "the server returned a sparse vector with {} indices and {} values",
                indices.len(),
                values.len()
            )))
        }
    };
    match v.vector {
        Some(q::vector_output::Vector::Dense(d)) => Ok(Some(VectorData::Dense(d.data))),
        Some(q::vector_output::Vector::Sparse(s)) => sparse(s.indices, s.values),
        Some(q::vector_output::Vector::MultiDense(_)) => Ok(None),
        None => match (v.indices, v.vectors_count) {
            (Some(indices), _) => sparse(indices.data, v.data),
            (None, Some(_)) => Ok(None),
            (None, None) => Ok(Some(VectorData::Dense(v.data))),
        },
    }
}

fn vectors_back(v: Option<q::VectorsOutput>) -> Result<BTreeMap<String, VectorData>, ConvertError> {
    let mut out = BTreeMap::new();
    match v.and_then(|v| v.vectors_options) {
        Some(q::vectors_output::VectorsOptions::Vectors(named)) => {
            for (name, v) in named.vectors {
                if let Some(v) = vector_back(v)? {
                    out.insert(name, v);
                }
            }
        }
        // Our collections only have named vectors.
        Some(q::vectors_output::VectorsOptions::Vector(_)) | None => {}
    }
    Ok(out)
}

pub(super) fn record(r: q::RetrievedPoint) -> Result<Record, ConvertError> {
    Ok(Record {
        id: from_point_id(r.id)?,
        payload: payload_back(r.payload),
        vectors: vectors_back(r.vectors)?,
    })
}

pub(super) fn hit(p: q::ScoredPoint) -> Result<Hit, ConvertError> {
    Ok(Hit {
        id: from_point_id(p.id)?,
        score: p.score,
        payload: payload_back(p.payload),
    })
}

pub(super) fn facet_value(v: Option<q::FacetValue>) -> Result<FieldValue, ConvertError> {
    match v.and_then(|v| v.variant) {
        Some(q::facet_value::Variant::StringValue(s)) => Ok(FieldValue::Str(s)),
        Some(q::facet_value::Variant::IntegerValue(i)) => Ok(FieldValue::Int(i)),
        Some(q::facet_value::Variant::BoolValue(b)) => Ok(FieldValue::Bool(b)),
        None => Err("the server returned a facet hit without a value".into()),
    }
}

/// A collection's spec from the server's description of it.
pub(super) fn describe(name: &str, info: &q::CollectionInfo) -> CollectionSpec {
    let params = info.config.as_ref().and_then(|c| c.params.as_ref());
    let dense: Vec<DenseSpec> = match params.and_then(|p| p.vectors_config.as_ref()?.config.as_ref()) {
        Some(q::vectors_config::Config::ParamsMap(map)) => map
            .map
            .iter()
            .filter_map(|(name, p)| {
                Some(DenseSpec {
                    name: name.clone(),
                    dim: usize::try_from(p.size).ok()?,
                    graph: p.hnsw_config.as_ref().and_then(|h| h.m).is_some_and(|m| m > 0),
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let sparse: Vec<SparseSpec> = params
        .and_then(|p| p.sparse_vectors_config.as_ref())
        .map(|s| {
            s.map
                .iter()
                .map(|(name, p)| SparseSpec {
                    name: name.clone(),
                    idf: p.modifier == Some(q::Modifier::Idf as i32),
                })
                .collect()
        })
        .unwrap_or_default();
    let indexes: Vec<(String, IndexKind)> = info
        .payload_schema
        .iter()
        .filter_map(|(field, schema)| {
            let tenant = matches!(
                schema.params.as_ref().and_then(|p| p.index_params.as_ref()),
                Some(q::payload_index_params::IndexParams::KeywordIndexParams(k)) if k.is_tenant == Some(true)
            );
            let kind = match q::PayloadSchemaType::try_from(schema.data_type).ok()? {
                q::PayloadSchemaType::Keyword if tenant => IndexKind::Tenant,
                q::PayloadSchemaType::Keyword => IndexKind::Keyword,
                q::PayloadSchemaType::Integer => IndexKind::Integer,
                q::PayloadSchemaType::Float => IndexKind::Float,
                q::PayloadSchemaType::Bool => IndexKind::Bool,
                _ => return None,
            };
            Some((field.clone(), kind))
        })
        .collect();
    CollectionSpec::sorted(name, dense, sparse, indexes)
}

/// The embedded engine's index layout: no HNSW graph (`m = 0`) but for slots that ask for one
/// ([`graph_index`]). Every chat query is filtered to one user and scans that user's points,
/// so results are the embedded store's exact ones, and the server spends no CPU building
/// graphs that would not be used.
pub(super) fn hnsw_layout() -> q::HnswConfigDiffBuilder {
    q::HnswConfigDiffBuilder::default().m(0)
}

/// A [`DenseSpec::graph`] slot's own vector index: the embedded engine's (see its
/// `graph_index`), over the collection's `m = 0`.
pub(super) fn graph_index() -> q::HnswConfigDiffBuilder {
    q::HnswConfigDiffBuilder::default()
        .m(16)
        .ef_construct(100)
        .full_scan_threshold(10_000)
        .on_disk(true)
}

/// The embedded engine's appendable segment size (see `APPENDABLE_SEGMENT_KB`; the server's
/// default of 10 MB let each append walk the posting lists of ~30k messages: 6 appends/s at 6k
/// messages, measured with `bench --store remote`).
///
/// The number of segments is left to the server (one per two CPUs, 2 to 8): the server creates
/// that many appendable segments per collection up front, each with its own memory maps (about
/// 60 per segment here), and 8 per collection ran a test server out of `vm.max_map_count` at
/// ~140 collections.
pub(super) fn optimizer_layout() -> q::OptimizersConfigDiffBuilder {
    q::OptimizersConfigDiffBuilder::default().indexing_threshold(super::super::APPENDABLE_SEGMENT_KB)
}

/// True when the collection already has [`hnsw_layout`] and [`optimizer_layout`].
pub(super) fn has_layout(info: &q::CollectionInfo) -> bool {
    let config = info.config.as_ref();
    let m = config.and_then(|c| c.hnsw_config.as_ref()).and_then(|h| h.m);
    let optimizers = config.and_then(|c| c.optimizer_config.as_ref());
    m == Some(0) && optimizers.and_then(|o| o.indexing_threshold) == Some(super::super::APPENDABLE_SEGMENT_KB)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Filter;

    #[test]
    fn every_condition_kind_converts() {
        let f = Filter {
            must: vec![
                Condition::Eq("a".into(), "x".into()),
                Condition::Any("b".into(), vec![FieldValue::Int(1), FieldValue::Int(2)]),
                Condition::Range(
                    "c".into(),
                    Range {
                        gte: Some(1.0),
                        ..Range::default()
                    },
                ),
                Condition::IsEmpty("d".into()),
                Condition::HasId(vec![uuid::Uuid::from_u128(7)]),
                Condition::HasVector("dense".into()),
            ],
            should: vec![Condition::Filter(Box::new(Filter::must(Condition::Eq(
                "e".into(),
                true.into(),
            ))))],
            must_not: vec![Condition::Any("f".into(), vec!["p".into(), "q".into()])],
        };
        let converted = filter(&f).unwrap();
        assert_eq!(converted.must.len(), 6);
        assert_eq!(converted.should.len(), 1);
        assert_eq!(converted.must_not.len(), 1);
    }

    #[test]
    fn mixed_any_is_refused() {
        let f = Filter::must(Condition::Any("b".into(), vec![FieldValue::Int(1), "x".into()]));
        assert!(filter(&f).is_err());
    }

    mod hostile_replies {
        //! Arbitrary server replies convert to a value or an error, never a panic
        //! (qdrant-client's own conversion divides by a reply's `vectors_count`).
        use super::super::*;
        use proptest::prelude::*;

        #[allow(deprecated)] // servers before 1.16 fill the deprecated fields
        fn vector_output() -> impl Strategy<Value = q::VectorOutput> {
            let floats = proptest::collection::vec(any::<f32>(), 0..6);
            let ints = proptest::collection::vec(any::<u32>(), 0..6);
            let oneof = prop_oneof![
                Just(None),
                floats
                    .clone()
                    .prop_map(|data| Some(q::vector_output::Vector::Dense(q::DenseVector { data }))),
                (ints.clone(), floats.clone()).prop_map(|(indices, values)| Some(q::vector_output::Vector::Sparse(
                    q::SparseVector { values, indices }
                ))),
                proptest::collection::vec(floats.clone(), 0..3).prop_map(|vs| Some(
                    q::vector_output::Vector::MultiDense(q::MultiDenseVector {
                        vectors: vs.into_iter().map(|data| q::DenseVector { data }).collect()
                    })
                )),
            ];
            (floats, proptest::option::of(ints), proptest::option::of(0u32..4), oneof).prop_map(
                |(data, indices, vectors_count, vector)| q::VectorOutput {
                    data,
                    indices: indices.map(|data| q::SparseIndices { data }),
                    vectors_count,
                    vector,
                },
            )
        }

        fn point_id() -> impl Strategy<Value = Option<q::PointId>> {
            proptest::option::of(prop_oneof![
                any::<u64>().prop_map(q::PointId::from),
                "[0-9a-f-]{0,40}".prop_map(q::PointId::from),
            ])
        }

        fn value() -> impl Strategy<Value = q::Value> {
            let leaf = prop_oneof![
                any::<i64>().prop_map(q::Value::from),
                any::<f64>().prop_map(q::Value::from),
                any::<bool>().prop_map(q::Value::from),
                ".{0,8}".prop_map(q::Value::from),
                Just(q::Value { kind: None }),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                proptest::collection::vec(inner, 0..4).prop_map(|values| q::Value {
                    kind: Some(q::value::Kind::ListValue(q::ListValue { values })),
                })
            })
        }

        proptest! {
            #[test]
            fn retrieved_points_convert_or_fail(
                id in point_id(),
                payload in proptest::collection::hash_map("[a-z_]{1,8}", value(), 0..4),
                vectors in proptest::collection::hash_map("[a-z]{1,4}", vector_output(), 0..3),
                named in any::<bool>(),
            ) {
                let vectors = if named {
                    Some(q::VectorsOutput {
                        vectors_options: Some(q::vectors_output::VectorsOptions::Vectors(q::NamedVectorsOutput { vectors })),
                    })
                } else {
                    vectors.into_values().next().map(|v| q::VectorsOutput {
                        vectors_options: Some(q::vectors_output::VectorsOptions::Vector(v)),
                    })
                };
                let point = q::RetrievedPoint { id, payload, vectors, ..Default::default() };
                if let Ok(r) = record(point) {
                    for v in r.vectors.values() {
                        if let VectorData::Sparse { indices, values } = v {
                            prop_assert_eq!(indices.len(), values.len());
                        }
                    }
                }
            }

            #[test]
            fn scored_points_convert_or_fail(id in point_id(), score in any::<f32>()) {
                let _ = hit(q::ScoredPoint { id, score, ..Default::default() });
            }
        }
    }

    #[test]
    fn ids_round_trip() {
        let id = uuid::Uuid::from_u128(0x1234_5678_9abc);
        assert_eq!(from_point_id(Some(point_id(id))).unwrap(), id);
        assert!(from_point_id(None).is_err());
    }
}
