//! A store wrapper for tests that fails chosen operations, as object_store's and SQLite's test
//! harnesses do: the real store underneath does everything else, so a test can show that a
//! failure in the middle of an append, a sync or a snapshot leaves the store readable with
//! nothing acknowledged lost. Not a mock: every call that is not failed reaches the real engine.
//!
//! It also plays a hostile server ([`FaultyStore::ignore_filter_on`],
//! [`FaultyStore::add_to_retrieves`]): reads that ignore a filter field or answer a read by id
//! with records not asked for, as a compromised Qdrant server could, so the service's checks
//! of replies can be shown to refuse them.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{
    CollectionSpec, CollectionStats, FieldValue, Filter, Hit, Payload, Point, PointId, PointVectors, QueryRequest,
    Record, ScrollPage, ScrollRequest, SnapshotInfo, StoreError, VectorSelection, VectorStore,
};

/// An operation that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// [`VectorStore::upsert`] and [`VectorStore::insert_if_absent`].
    Upsert,
    /// [`VectorStore::set_payload`] and [`VectorStore::set_payload_by_filter`].
    SetPayload,
    /// [`VectorStore::update_vectors`].
    UpdateVectors,
    /// [`VectorStore::delete`] and [`VectorStore::delete_by_filter`].
    Delete,
    /// [`VectorStore::flush`].
    Flush,
    /// [`VectorStore::snapshot`].
    Snapshot,
}

/// One planned failure: the call of `op` (on `collection`, if set) after `skip` such calls
/// succeeded fails with an injected I/O error, without reaching the engine.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Which operation.
    pub op: FaultOp,
    /// Only on this collection (`None`: any).
    pub collection: Option<String>,
    /// How many matching calls succeed first.
    pub skip: usize,
}

/// Wraps a real store and fails the planned calls.
pub struct FaultyStore {
    inner: Arc<dyn VectorStore>,
    plan: Mutex<Vec<Fault>>,
    injected: Mutex<Vec<(FaultOp, String)>>,
    hostile: Mutex<Hostility>,
}

/// How the wrapper misanswers reads, as a hostile server would.
#[derive(Debug, Default, Clone)]
struct Hostility {
    /// Filter conditions on these fields are dropped from scrolls, queries and counts.
    ignored_fields: Vec<String>,
    /// These ids are added to every read by id.
    extra_ids: Vec<PointId>,
}

impl Hostility {
    fn strip(&self, filter: Option<Filter>) -> Option<Filter> {
        let mut filter = filter?;
        let ignored = |c: &super::Condition| match c {
            super::Condition::Eq(key, _) | super::Condition::Any(key, _) => self.ignored_fields.contains(key),
            _ => false,
        };
        filter.must.retain(|c| !ignored(c));
        filter.must_not.retain(|c| !ignored(c));
        Some(filter)
    }
}

impl std::fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (with injected faults)", self.inner)
    }
}

impl FaultyStore {
    /// Wrap `inner`; nothing fails until [`FaultyStore::fail`] plans it.
    pub fn new(inner: Arc<dyn VectorStore>) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            plan: Mutex::new(Vec::new()),
            injected: Mutex::new(Vec::new()),
            hostile: Mutex::new(Hostility::default()),
        })
    }

    /// From now on, answer scrolls, queries and counts as if no condition on `field` (an
    /// equality or any-of, in `must` or `must_not`) had been asked: a server ignoring a
    /// tenant filter.
    pub fn ignore_filter_on(&self, field: &str) {
        self.hostility().ignored_fields.push(field.to_string());
    }

    /// From now on, add the records of `ids` to every read by id: a server answering with
    /// records that were not asked for.
    pub fn add_to_retrieves(&self, ids: Vec<PointId>) {
        self.hostility().extra_ids.extend(ids);
    }

    fn hostility(&self) -> std::sync::MutexGuard<'_, Hostility> {
        self.hostile.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Plan a failure.
    pub fn fail(&self, fault: Fault) {
        self.plan.lock().unwrap_or_else(|p| p.into_inner()).push(fault);
    }

    /// The failures injected so far: (operation, collection).
    pub fn injected(&self) -> Vec<(FaultOp, String)> {
        self.injected.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn check(&self, op: FaultOp, collection: &str) -> Result<(), StoreError> {
        let mut plan = self.plan.lock().unwrap_or_else(|p| p.into_inner());
        let matching = plan
            .iter_mut()
            .position(|f| f.op == op && f.collection.as_deref().is_none_or(|c| c == collection));
        let Some(index) = matching else { return Ok(()) };
        if plan[index].skip > 0 {
            plan[index].skip -= 1;
            return Ok(());
        }
        plan.remove(index);
        self.injected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((op, collection.to_string()));
        tracing::debug!(?op, collection, "injected store fault");
        Err(StoreError::Io {
            action: "injected fault in",
            path: collection.to_string(),
            source: std::io::Error::other(format!("injected {op:?} failure")),
        })
    }
}

#[async_trait::async_trait]
impl VectorStore for FaultyStore {
    async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<(), StoreError> {
        self.inner.ensure_collection(spec).await
    }
    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError> {
        self.check(FaultOp::Upsert, collection)?;
        self.inner.upsert(collection, points).await
    }
    async fn update_vectors(&self, collection: &str, points: Vec<PointVectors>) -> Result<(), StoreError> {
        self.check(FaultOp::UpdateVectors, collection)?;
        self.inner.update_vectors(collection, points).await
    }
    async fn set_payload(&self, collection: &str, ids: Vec<PointId>, payload: Payload) -> Result<(), StoreError> {
        self.check(FaultOp::SetPayload, collection)?;
        self.inner.set_payload(collection, ids, payload).await
    }
    async fn insert_if_absent(&self, collection: &str, point: Point) -> Result<bool, StoreError> {
        self.check(FaultOp::Upsert, collection)?;
        self.inner.insert_if_absent(collection, point).await
    }
    async fn set_payload_by_filter(
        &self,
        collection: &str,
        filter: Filter,
        payload: Payload,
    ) -> Result<(), StoreError> {
        self.check(FaultOp::SetPayload, collection)?;
        self.inner.set_payload_by_filter(collection, filter, payload).await
    }
    async fn delete(&self, collection: &str, ids: Vec<PointId>) -> Result<(), StoreError> {
        self.check(FaultOp::Delete, collection)?;
        self.inner.delete(collection, ids).await
    }
    async fn delete_by_filter(&self, collection: &str, filter: Filter) -> Result<(), StoreError> {
        self.check(FaultOp::Delete, collection)?;
        self.inner.delete_by_filter(collection, filter).await
    }
    async fn retrieve(
        &self,
        collection: &str,
        ids: Vec<PointId>,
        vectors: VectorSelection,
    ) -> Result<Vec<Record>, StoreError> {
        let mut ids = ids;
        ids.extend(self.hostility().extra_ids.iter().copied());
        self.inner.retrieve(collection, ids, vectors).await
    }
    async fn scroll(&self, collection: &str, mut request: ScrollRequest) -> Result<ScrollPage, StoreError> {
        request.filter = self.hostility().strip(request.filter);
        self.inner.scroll(collection, request).await
    }
    async fn query(&self, collection: &str, mut request: QueryRequest) -> Result<Vec<Hit>, StoreError> {
        request.filter = self.hostility().strip(request.filter);
        self.inner.query(collection, request).await
    }
    async fn count(&self, collection: &str, filter: Option<Filter>) -> Result<u64, StoreError> {
        let filter = self.hostility().strip(filter);
        self.inner.count(collection, filter).await
    }
    async fn facet(
        &self,
        collection: &str,
        field: &str,
        filter: Option<Filter>,
        limit: usize,
    ) -> Result<Vec<(FieldValue, u64)>, StoreError> {
        self.inner.facet(collection, field, filter, limit).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.check(FaultOp::Flush, "")?;
        self.inner.flush().await
    }
    async fn optimize(&self, collection: &str) -> Result<(), StoreError> {
        self.inner.optimize(collection).await
    }
    async fn stats(&self) -> Result<Vec<CollectionStats>, StoreError> {
        self.inner.stats().await
    }
    async fn describe(&self, collection: &str) -> Result<super::CollectionSpec, StoreError> {
        self.inner.describe(collection).await
    }
    async fn snapshot(&self, dest: &Path) -> Result<SnapshotInfo, StoreError> {
        self.check(FaultOp::Snapshot, "")?;
        self.inner.snapshot(dest).await
    }
    fn write_count(&self) -> u64 {
        self.inner.write_count()
    }
    async fn unshipped(&self, from: u64, max_bytes: u64) -> Result<Option<super::Unshipped>, StoreError> {
        self.inner.unshipped(from, max_bytes).await
    }
    async fn shipped_through(&self, seq: u64) -> Result<(), StoreError> {
        self.inner.shipped_through(seq).await
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}
