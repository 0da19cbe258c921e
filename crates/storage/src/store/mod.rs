//! The vector-store abstraction the services are written against.
//!
//! [`VectorStore`] is deliberately small: what chat and estate storage need, nothing more.
//! Request and result types here are our own, so engine types never leak out of a backend
//! module (`embedded` for qdrant-edge, `remote` for a Qdrant server over qdrant-client).

// Public for the `backend` feature (white-box tests and out-of-crate backends); within the
// crate alone some of that API (a raw `open`, index kinds the services do not use) is unused.
#![cfg_attr(not(feature = "backend"), allow(unreachable_pub, dead_code))]

use std::collections::BTreeMap;

use serde_json::{Map, Value};

mod config;
#[cfg(any(test, feature = "backend"))]
pub mod conformance;
pub mod copy;
pub mod embedded;
pub mod faulty;
#[cfg(feature = "remote")]
pub mod remote;
pub(crate) mod verify;

pub use config::{StoreConfig, StoreMode, StoreSync};
pub use embedded::{EmbeddedOptions, EmbeddedStore, DEFAULT_MIN_FREE_BYTES};

/// Vector size (KB) above which an appendable segment is converted into an immutable one by
/// the optimiser, on both backends. The mutable sparse index's insert walks every posting list
/// it touches (O(list length)), so appends stay cheap only while appendable segments are small:
/// ~1 MB of vectors is a few thousand messages.
pub(crate) const APPENDABLE_SEGMENT_KB: u64 = 1_000;

/// Points an embedded collection's appendable segment takes, at least, before it is converted
/// when the collection has dense vectors: [`APPENDABLE_SEGMENT_KB`] holds only ~650 vectors
/// of 384 dimensions, so under a steady stream of writes the optimiser found a new segment to
/// convert on every pass and one compaction never ended (a 200k-message fill: compactions of
/// ~20 s back to back, and every journal checkpoint waiting for one).
pub(crate) const APPENDABLE_SEGMENT_POINTS: u64 = 5_000;

/// The embedded indexing threshold (KB) of a collection with these dense slots:
/// [`APPENDABLE_SEGMENT_KB`], or [`APPENDABLE_SEGMENT_POINTS`] of its largest dense vectors
/// when that is more (the engine compares each vector's bytes in a segment with it).
pub(crate) fn indexing_threshold_kb(dense: &[DenseSpec]) -> u64 {
    let dense_kb = dense
        .iter()
        .map(|d| d.dim as u64 * 4 * APPENDABLE_SEGMENT_POINTS / 1024)
        .max()
        .unwrap_or(0);
    APPENDABLE_SEGMENT_KB.max(dense_kb)
}

/// Segments an embedded collection keeps before the optimiser merges small ones (a server
/// decides its own, see `remote::convert::optimizer_layout`): a compaction then
/// converts only the new appendable segment instead of rewriting the whole collection.
pub(crate) const SEGMENTS_BEFORE_MERGE: u64 = 8;

/// Point ids are UUIDs.
pub type PointId = uuid::Uuid;
/// A point's payload: a JSON object.
pub type Payload = Map<String, Value>;

/// Errors from a store backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process owns the data dir.
    #[error("store {path} is in use by {holder}; close it first (only one process may open a data dir)")]
    Locked {
        /// The lock file.
        path: String,
        /// Who holds it ("PID 1234", or "another process").
        holder: String,
    },
    /// The engine reported an error.
    #[error("{backend} engine error in collection `{collection}` during {operation}")]
    Backend {
        /// Backend name.
        backend: &'static str,
        /// Collection involved.
        collection: String,
        /// What was being done.
        operation: &'static str,
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The collection was never ensured.
    #[error("collection `{0}` does not exist")]
    NoSuchCollection(String),
    /// The backend cannot do this.
    #[error("{backend} does not support {operation}")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// The unsupported operation.
        operation: &'static str,
    },
    /// Files of the store could not be read or written.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Path involved.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The data dir's file system is (nearly) full; the write was refused before it started.
    #[error("disk nearly full: {free_bytes} bytes free on the file system of {path}, at least {reserve_bytes} must stay free (free some space, or lower store.min_free_bytes)")]
    DiskFull {
        /// The data dir.
        path: String,
        /// Free bytes now.
        free_bytes: u64,
        /// The configured reserve.
        reserve_bytes: u64,
    },
    /// The Qdrant server could not be used: a bad URL, no answer, or a missing setting.
    #[error("cannot use the Qdrant server at `{url}`: {reason} (is it running and is store.url right?)")]
    Unreachable {
        /// The URL dialled (empty when none is configured).
        url: String,
        /// What went wrong.
        reason: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store was closed (the service was shut down).
    #[error("the store is closed: the storage service was shut down")]
    Closed,
    /// The store answered outside the request (another user's records, ids not asked for):
    /// a compromised or faulty server. Nothing of the reply is used.
    #[error("the store's reply in collection `{collection}` does not match the request: {reason}")]
    Misdirected {
        /// Collection read.
        collection: String,
        /// What did not match.
        reason: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("store task failed: {0}")]
    Task(#[from] crate::blocking::TaskFailed),
}

/// Type of a payload index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// Exact-match string index.
    Keyword,
    /// Keyword index marked as the tenant (per-user) partition key.
    Tenant,
    /// Integer index with lookup and range (for order_by).
    Integer,
    /// Float index (range).
    Float,
    /// Boolean index.
    Bool,
}

/// A dense vector slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseSpec {
    /// Vector name.
    pub name: String,
    /// Dimension.
    pub dim: usize,
    /// Build a vector index (an HNSW graph) over the slot at compaction. For slots searched
    /// across the whole collection (the estate); per-user slots (chat) stay scans of the
    /// user's points, which is exact and cheaper than keeping a graph.
    pub graph: bool,
}

/// A sparse vector slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseSpec {
    /// Vector name.
    pub name: String,
    /// Apply the IDF modifier at query time (BM25-style scoring).
    pub idf: bool,
}

/// Everything a collection needs: vectors and payload indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSpec {
    /// Collection name (no NUL, no path separators).
    pub name: String,
    /// Dense vectors (cosine).
    pub dense: Vec<DenseSpec>,
    /// Sparse vectors.
    pub sparse: Vec<SparseSpec>,
    /// Payload indexes: every field used in a filter or order_by.
    pub indexes: Vec<(String, IndexKind)>,
}

impl CollectionSpec {
    /// A spec with its slots and indexes in name order (how backends describe a collection, so
    /// two descriptions of one collection compare equal).
    pub fn sorted(
        name: &str,
        mut dense: Vec<DenseSpec>,
        mut sparse: Vec<SparseSpec>,
        mut indexes: Vec<(String, IndexKind)>,
    ) -> Self {
        dense.sort_by(|a, b| a.name.cmp(&b.name));
        sparse.sort_by(|a, b| a.name.cmp(&b.name));
        indexes.sort_by(|a, b| a.0.cmp(&b.0));
        CollectionSpec {
            name: name.to_string(),
            dense,
            sparse,
            indexes,
        }
    }
}

/// A vector value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum VectorData {
    /// Dense.
    Dense(Vec<f32>),
    /// Sparse: sorted unique indices with their values.
    Sparse {
        /// Dimension ids.
        indices: Vec<u32>,
        /// Weights.
        values: Vec<f32>,
    },
}

/// A point to upsert.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// Id.
    pub id: PointId,
    /// Named vectors (may be empty).
    pub vectors: BTreeMap<String, VectorData>,
    /// Payload.
    pub payload: Payload,
}

/// New values for some named vectors of an existing point (other vectors and payload stay).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PointVectors {
    /// Id of an existing point.
    pub id: PointId,
    /// The vectors to set.
    pub vectors: BTreeMap<String, VectorData>,
}

/// A stored point as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Id.
    pub id: PointId,
    /// Payload.
    pub payload: Payload,
    /// Vectors, when asked for.
    pub vectors: BTreeMap<String, VectorData>,
}

/// A scalar payload value to compare with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FieldValue {
    /// String.
    Str(String),
    /// Integer.
    Int(i64),
    /// Boolean.
    Bool(bool),
}

impl From<&str> for FieldValue {
    fn from(v: &str) -> Self {
        FieldValue::Str(v.to_string())
    }
}
impl From<String> for FieldValue {
    fn from(v: String) -> Self {
        FieldValue::Str(v)
    }
}
impl From<i64> for FieldValue {
    fn from(v: i64) -> Self {
        FieldValue::Int(v)
    }
}
impl From<bool> for FieldValue {
    fn from(v: bool) -> Self {
        FieldValue::Bool(v)
    }
}

/// Numeric range bounds.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Range {
    /// `>`
    pub gt: Option<f64>,
    /// `>=`
    pub gte: Option<f64>,
    /// `<`
    pub lt: Option<f64>,
    /// `<=`
    pub lte: Option<f64>,
}

/// One filter condition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    /// Field equals value (for list fields: contains it).
    Eq(String, FieldValue),
    /// Field equals any of the values.
    Any(String, Vec<FieldValue>),
    /// Field lies in the range.
    Range(String, Range),
    /// Field is missing, null or an empty list.
    IsEmpty(String),
    /// Point id is one of these.
    HasId(Vec<PointId>),
    /// The point has a value for this named vector.
    HasVector(String),
    /// A nested filter.
    Filter(Box<Filter>),
}

/// A boolean combination of conditions.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    /// All must hold.
    pub must: Vec<Condition>,
    /// At least one must hold (when non-empty).
    pub should: Vec<Condition>,
    /// None may hold.
    pub must_not: Vec<Condition>,
}

impl Filter {
    /// A filter with one `must` condition.
    pub fn must(condition: Condition) -> Self {
        Filter {
            must: vec![condition],
            ..Filter::default()
        }
    }

    /// Add a `must` condition.
    pub fn and(mut self, condition: Condition) -> Self {
        self.must.push(condition);
        self
    }

    /// Add a `must_not` condition.
    pub fn and_not(mut self, condition: Condition) -> Self {
        self.must_not.push(condition);
        self
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// Order a scroll by a numeric payload field (which must have an Integer or Float index).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    /// Field.
    pub field: String,
    /// Direction.
    pub direction: Direction,
    /// Start at this value (inclusive); default is the first value in `direction`.
    pub start_from: Option<f64>,
}

/// A scroll (listing) request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScrollRequest {
    /// Filter.
    pub filter: Option<Filter>,
    /// Order; without it points come in id order and `offset` pages.
    pub order_by: Option<OrderBy>,
    /// Page size.
    pub limit: usize,
    /// Id to continue from (id order only).
    pub offset: Option<PointId>,
    /// Return vectors too.
    pub with_vectors: bool,
}

/// Which of a point's vectors a read returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VectorSelection {
    /// None: payload only.
    #[default]
    None,
    /// Every vector slot the point has.
    All,
    /// Only these slots (a 384-float dense vector is not read when only a sparse one is wanted).
    Only(Vec<String>),
}

/// One page of a scroll.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrollPage {
    /// Records.
    pub records: Vec<Record>,
    /// Where the next page starts (id order only).
    pub next_offset: Option<PointId>,
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    /// The vector slot to search.
    pub using: String,
    /// The query vector.
    pub vector: VectorData,
    /// Filter.
    pub filter: Option<Filter>,
    /// How many hits.
    pub limit: usize,
    /// Return payloads.
    pub with_payload: bool,
    /// Score every point the filter admits, even where a vector index exists: the exact answer
    /// an index's recall is measured against.
    pub exact: bool,
}

/// A scored hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Point id.
    pub id: PointId,
    /// Similarity score (higher is closer).
    pub score: f32,
    /// Payload when asked for (else empty).
    pub payload: Payload,
}

/// Counts of one collection, for health reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct CollectionStats {
    /// Name.
    pub name: String,
    /// Exact number of points.
    pub points: u64,
    /// Segments in the engine.
    pub segments: usize,
}

/// One write logged for shipping to the backup target (point-in-time restore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipRecord {
    /// Its place in the order of the store's writes (never reused within a generation).
    pub seq: u64,
    /// When it was written, unix ms.
    pub time_ms: i64,
    /// The journal entry (sealed fields stay sealed).
    pub body: Vec<u8>,
}

/// What a store's ship log holds that is not shipped yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unshipped {
    /// The log's generation (a new one after each restore).
    pub generation: String,
    /// The records, oldest first (as many as asked for).
    pub records: Vec<ShipRecord>,
    /// When records were last shipped and forgotten, unix ms.
    pub shipped_at_ms: Option<i64>,
}

/// Where a store's ship log stood when a snapshot was taken: the snapshot holds every write of
/// `generation` numbered below `next_seq`, and none after.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct JournalMark {
    /// The ship log's generation (a new one after each restore).
    pub generation: String,
    /// The first write the snapshot does not hold.
    #[cfg_attr(feature = "typescript", ts(type = "number"))]
    pub next_seq: u64,
}

/// What [`VectorStore::snapshot`] copied.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotInfo {
    /// Collections with their point counts at the moment of the copy.
    pub collections: Vec<CollectionStats>,
    /// How long writers were paused (flush + copy), in milliseconds.
    pub writer_pause_ms: f64,
    /// Bytes copied (allocated data only; holes of sparse files are skipped).
    pub bytes: u64,
    /// Bytes (allocated) hard-linked instead of copied: files of optimised segments the engine
    /// never writes again (embedded store).
    #[serde(default)]
    pub linked_bytes: u64,
    /// The linked files as they were when linked; a backup checks them once it has read them.
    #[serde(skip)]
    pub(crate) linked: Vec<embedded::FileStamp>,
    /// Where the ship log stood (a store that ships its journal).
    #[serde(default)]
    pub journal: Option<JournalMark>,
}

impl SnapshotInfo {
    /// A hard-linked file that was written since the snapshot took it (which would make the
    /// snapshot inconsistent), if any.
    pub(crate) fn changed_linked_file(&self) -> Option<&std::path::Path> {
        self.linked
            .iter()
            .find(|stamp| stamp.changed())
            .map(embedded::FileStamp::path)
    }
}

/// The operations chat and estate storage need from a vector database.
///
/// Every method is async; backends that block (qdrant-edge) run calls off the executor.
#[async_trait::async_trait]
pub trait VectorStore: Send + Sync + std::fmt::Display {
    /// Create the collection if missing; add any missing vector slot or payload index.
    async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<(), StoreError>;
    /// Insert or replace whole points.
    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError>;
    /// Set named vectors of existing points. Fails if a point does not exist.
    async fn update_vectors(&self, collection: &str, points: Vec<PointVectors>) -> Result<(), StoreError>;
    /// Merge these payload keys into existing points (other keys and vectors untouched).
    async fn set_payload(&self, collection: &str, ids: Vec<PointId>, payload: Payload) -> Result<(), StoreError>;
    /// Insert `point` unless a point with its id exists (then nothing is written). `true` when
    /// this call inserted it. Atomic against every other writer of the store, in other
    /// processes too (a server): two callers racing for one id see exactly one `true`.
    async fn insert_if_absent(&self, collection: &str, point: Point) -> Result<bool, StoreError>;
    /// Merge these payload keys into every point matching `filter`. A filter naming a field's
    /// current value makes it a compare-and-set on the server as in the embedded store.
    async fn set_payload_by_filter(&self, collection: &str, filter: Filter, payload: Payload)
        -> Result<(), StoreError>;
    /// Delete points by id (missing ids are ignored).
    async fn delete(&self, collection: &str, ids: Vec<PointId>) -> Result<(), StoreError>;
    /// Delete every point matching the filter.
    async fn delete_by_filter(&self, collection: &str, filter: Filter) -> Result<(), StoreError>;
    /// Fetch points by id, in the order asked, skipping missing ones.
    async fn retrieve(
        &self,
        collection: &str,
        ids: Vec<PointId>,
        vectors: VectorSelection,
    ) -> Result<Vec<Record>, StoreError>;
    /// List points matching a filter, optionally ordered by a numeric field.
    async fn scroll(&self, collection: &str, request: ScrollRequest) -> Result<ScrollPage, StoreError>;
    /// Nearest-neighbour search on one vector slot.
    async fn query(&self, collection: &str, request: QueryRequest) -> Result<Vec<Hit>, StoreError>;
    /// Exact count of points matching the filter.
    async fn count(&self, collection: &str, filter: Option<Filter>) -> Result<u64, StoreError>;
    /// Exact counts per value of a keyword field, largest first.
    async fn facet(
        &self,
        collection: &str,
        field: &str,
        filter: Option<Filter>,
        limit: usize,
    ) -> Result<Vec<(FieldValue, u64)>, StoreError>;
    /// Make every acknowledged write durable.
    async fn flush(&self) -> Result<(), StoreError>;
    /// Build search indexes (expensive; never call on a request path).
    async fn optimize(&self, collection: &str) -> Result<(), StoreError>;
    /// The vector slots and payload indexes of an existing collection (what
    /// `ensure_collection` gave it), to re-create it elsewhere.
    async fn describe(&self, collection: &str) -> Result<CollectionSpec, StoreError>;
    /// Point counts of every collection.
    async fn stats(&self) -> Result<Vec<CollectionStats>, StoreError>;
    /// Copy every collection, consistently, into the empty folder `dest`, pausing writers
    /// only for the flush and the copy. What `dest` holds is backend-specific and is opened
    /// again by the same backend.
    async fn snapshot(&self, dest: &std::path::Path) -> Result<SnapshotInfo, StoreError>;
    /// Writes acknowledged since the store was opened (to skip backups when nothing changed).
    fn write_count(&self) -> u64;
    /// The ship log's records not yet shipped and numbered `from` or later, oldest first, up
    /// to about `max_bytes` of them (at least one when there is one); `None` when this store
    /// keeps no ship log (shipping off, or a Qdrant server).
    async fn unshipped(&self, _from: u64, _max_bytes: u64) -> Result<Option<Unshipped>, StoreError> {
        Ok(None)
    }
    /// Forget the logged writes numbered up to `seq`: the backup target holds them.
    async fn shipped_through(&self, _seq: u64) -> Result<(), StoreError> {
        Ok(())
    }
    /// Make every acknowledged write durable, then refuse every later call with
    /// [`StoreError::Closed`] and release what the backend holds (the embedded store: its
    /// collections and the data-dir lock, once no call in flight still uses them). A second
    /// call returns `Ok`.
    async fn close(&self) -> Result<(), StoreError>;
}
