//! Replies checked against their requests, before any caller sees them.
//!
//! A Qdrant server (or whoever answers in its place) could answer a query for one user with
//! another user's records. They would decrypt: every record is sealed under the store's keys
//! and bound to its *own* clear fields, so nothing in the record says it was not asked for.
//! [`VerifiedStore`] wraps every store the service opens and refuses, with
//! [`StoreError::Misdirected`], a scroll or query whose records fall outside the request's
//! filter, a scroll page out of the asked order, a retrieve that returns an id not asked
//! for, and more results than the limit.
//! The clear fields that scope a record (user, conversation, role, index; account, region,
//! type) are bound into its sealed fields' AAD, so a server cannot relabel a record to pass.
//!
//! Queries that return ids only are checked by their callers when the payloads are read
//! ([`check_admitted`]). The embedded engine goes through the same checks: one code path, and
//! the cost (a few comparisons per record) is small beside opening the sealed fields.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::{
    CollectionSpec, CollectionStats, Condition, FieldValue, Filter, Hit, Payload, Point, PointId, PointVectors,
    QueryRequest, Range, Record, ScrollPage, ScrollRequest, SnapshotInfo, StoreError, VectorSelection, VectorStore,
};

/// Wraps a store; every read reply is checked against its request.
pub(crate) struct VerifiedStore {
    inner: Arc<dyn VectorStore>,
}

impl VerifiedStore {
    /// Check every reply of `inner`.
    pub(crate) fn new(inner: Arc<dyn VectorStore>) -> Arc<Self> {
        Arc::new(VerifiedStore { inner })
    }
}

impl std::fmt::Display for VerifiedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

fn misdirected(collection: &str, reason: String) -> StoreError {
    tracing::warn!(collection, %reason, "the store answered outside the request");
    StoreError::Misdirected {
        collection: collection.to_string(),
        reason,
    }
}

/// Refuse a record (read by id after an id-only query) that `filter` does not admit.
///
/// # Errors
/// [`StoreError::Misdirected`].
pub(crate) fn check_admitted(
    collection: &str,
    filter: &Filter,
    id: PointId,
    payload: &Payload,
) -> Result<(), StoreError> {
    if admits(filter, id, payload, None) == Some(false) {
        return Err(misdirected(
            collection,
            format!("record {id} does not satisfy the filter of the request it answers"),
        ));
    }
    Ok(())
}

/// Refuse a page out of the asked order, or starting before `start_from`: a history read
/// back shuffled would put words in the wrong mouths. Records without a number in the field
/// are not judged.
fn check_order(collection: &str, order: &super::OrderBy, records: &[Record]) -> Result<(), StoreError> {
    let ascending = order.direction == super::Direction::Asc;
    let mut previous = order.start_from;
    for r in records {
        let Some(value) = r.payload.get(&order.field).and_then(Value::as_f64) else {
            continue;
        };
        if let Some(p) = previous {
            if (ascending && value < p) || (!ascending && value > p) {
                return Err(misdirected(
                    collection,
                    format!("record {} is out of the requested `{}` order", r.id, order.field),
                ));
            }
        }
        previous = Some(value);
    }
    Ok(())
}

fn check_limit(collection: &str, got: usize, limit: usize) -> Result<(), StoreError> {
    if limit > 0 && got > limit {
        return Err(misdirected(
            collection,
            format!("{got} results returned where at most {limit} were asked for"),
        ));
    }
    Ok(())
}

/// Whether `filter` admits the point: `Some(false)` only when the payload (and vectors, when
/// given) prove it does not; `None` when they cannot tell (a vector condition on a reply
/// without vectors, a nested key path).
pub(crate) fn admits(
    filter: &Filter,
    id: PointId,
    payload: &Payload,
    vectors: Option<&std::collections::BTreeMap<String, super::VectorData>>,
) -> Option<bool> {
    let eval = |c: &Condition| condition(c, id, payload, vectors);
    let mut unknown = false;
    for c in &filter.must {
        match eval(c) {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    for c in &filter.must_not {
        match eval(c) {
            Some(true) => return Some(false),
            None => unknown = true,
            Some(false) => {}
        }
    }
    if !filter.should.is_empty() {
        let results: Vec<Option<bool>> = filter.should.iter().map(eval).collect();
        if results.contains(&Some(true)) {
            // satisfied
        } else if results.iter().all(|r| *r == Some(false)) {
            return Some(false);
        } else {
            unknown = true;
        }
    }
    if unknown {
        None
    } else {
        Some(true)
    }
}

fn condition(
    c: &Condition,
    id: PointId,
    payload: &Payload,
    vectors: Option<&std::collections::BTreeMap<String, super::VectorData>>,
) -> Option<bool> {
    let values = |key: &str| -> Option<Vec<&Value>> {
        if key.contains('.') || key.contains('[') {
            return None; // a nested path: not judged here
        }
        Some(match payload.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(v) => vec![v],
        })
    };
    match c {
        Condition::Eq(key, wanted) => Some(values(key)?.into_iter().any(|v| equals(v, wanted))),
        Condition::Any(key, wanted) => Some(values(key)?.into_iter().any(|v| wanted.iter().any(|w| equals(v, w)))),
        Condition::Range(key, range) => Some(
            values(key)?
                .into_iter()
                .any(|v| v.as_f64().is_some_and(|x| within(x, range))),
        ),
        Condition::IsEmpty(key) => Some(values(key)?.is_empty()),
        Condition::HasId(ids) => Some(ids.contains(&id)),
        Condition::HasVector(name) => vectors.map(|v| v.contains_key(name)),
        Condition::Filter(inner) => admits(inner, id, payload, vectors),
    }
}

fn equals(value: &Value, wanted: &FieldValue) -> bool {
    match (value, wanted) {
        (Value::String(s), FieldValue::Str(w)) => s == w,
        (Value::Number(n), FieldValue::Int(w)) => n.as_i64() == Some(*w),
        (Value::Bool(b), FieldValue::Bool(w)) => b == w,
        _ => false,
    }
}

fn within(x: f64, r: &Range) -> bool {
    r.gt.is_none_or(|b| x > b)
        && r.gte.is_none_or(|b| x >= b)
        && r.lt.is_none_or(|b| x < b)
        && r.lte.is_none_or(|b| x <= b)
}

#[async_trait::async_trait]
impl VectorStore for VerifiedStore {
    async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<(), StoreError> {
        self.inner.ensure_collection(spec).await
    }
    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError> {
        self.inner.upsert(collection, points).await
    }
    async fn update_vectors(&self, collection: &str, points: Vec<PointVectors>) -> Result<(), StoreError> {
        self.inner.update_vectors(collection, points).await
    }
    async fn set_payload(&self, collection: &str, ids: Vec<PointId>, payload: Payload) -> Result<(), StoreError> {
        self.inner.set_payload(collection, ids, payload).await
    }
    async fn insert_if_absent(&self, collection: &str, point: Point) -> Result<bool, StoreError> {
        self.inner.insert_if_absent(collection, point).await
    }
    async fn set_payload_by_filter(
        &self,
        collection: &str,
        filter: Filter,
        payload: Payload,
    ) -> Result<(), StoreError> {
        self.inner.set_payload_by_filter(collection, filter, payload).await
    }
    async fn delete(&self, collection: &str, ids: Vec<PointId>) -> Result<(), StoreError> {
        self.inner.delete(collection, ids).await
    }
    async fn delete_by_filter(&self, collection: &str, filter: Filter) -> Result<(), StoreError> {
        self.inner.delete_by_filter(collection, filter).await
    }
    async fn retrieve(
        &self,
        collection: &str,
        ids: Vec<PointId>,
        vectors: VectorSelection,
    ) -> Result<Vec<Record>, StoreError> {
        let asked: HashSet<PointId> = ids.iter().copied().collect();
        let records = self.inner.retrieve(collection, ids, vectors).await?;
        let mut seen = HashSet::with_capacity(records.len());
        for r in &records {
            if !asked.contains(&r.id) || !seen.insert(r.id) {
                return Err(misdirected(
                    collection,
                    format!("record {} returned for a read by id that did not ask for it", r.id),
                ));
            }
        }
        Ok(records)
    }
    async fn scroll(&self, collection: &str, request: ScrollRequest) -> Result<ScrollPage, StoreError> {
        let filter = request.filter.clone();
        let order_by = request.order_by.clone();
        let limit = request.limit;
        let with_vectors = request.with_vectors;
        let page = self.inner.scroll(collection, request).await?;
        check_limit(collection, page.records.len(), limit)?;
        if let Some(order) = &order_by {
            check_order(collection, order, &page.records)?;
        }
        if let Some(filter) = &filter {
            for r in &page.records {
                let vectors = with_vectors.then_some(&r.vectors);
                if admits(filter, r.id, &r.payload, vectors) == Some(false) {
                    return Err(misdirected(
                        collection,
                        format!("record {} does not satisfy the filter of the scroll it answers", r.id),
                    ));
                }
            }
        }
        Ok(page)
    }
    async fn query(&self, collection: &str, request: QueryRequest) -> Result<Vec<Hit>, StoreError> {
        let filter = request.filter.clone();
        let (limit, with_payload) = (request.limit, request.with_payload);
        let hits = self.inner.query(collection, request).await?;
        check_limit(collection, hits.len(), limit)?;
        let mut seen = HashSet::with_capacity(hits.len());
        for h in &hits {
            if !seen.insert(h.id) {
                return Err(misdirected(
                    collection,
                    format!("record {} returned twice by one query", h.id),
                ));
            }
            if !h.score.is_finite() {
                return Err(misdirected(
                    collection,
                    format!("record {} has a score that is not a number", h.id),
                ));
            }
            if let (Some(filter), true) = (&filter, with_payload) {
                check_admitted(collection, filter, h.id, &h.payload)?;
            }
        }
        Ok(hits)
    }
    async fn count(&self, collection: &str, filter: Option<Filter>) -> Result<u64, StoreError> {
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
        self.inner.flush().await
    }
    async fn optimize(&self, collection: &str) -> Result<(), StoreError> {
        self.inner.optimize(collection).await
    }
    async fn stats(&self) -> Result<Vec<CollectionStats>, StoreError> {
        self.inner.stats().await
    }
    async fn describe(&self, collection: &str) -> Result<CollectionSpec, StoreError> {
        self.inner.describe(collection).await
    }
    async fn snapshot(&self, dest: &Path) -> Result<SnapshotInfo, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(v: Value) -> Payload {
        v.as_object().unwrap().clone()
    }

    fn eq(k: &str, v: impl Into<FieldValue>) -> Condition {
        Condition::Eq(k.into(), v.into())
    }

    #[test]
    fn pages_out_of_order_or_before_their_start_are_refused() {
        let rec = |n: i64| Record {
            id: PointId::from_u128(n as u128),
            payload: payload(json!({"i": n})),
            vectors: Default::default(),
        };
        let order = |direction, start_from| crate::store::OrderBy {
            field: "i".into(),
            direction,
            start_from,
        };
        use crate::store::Direction::{Asc, Desc};
        let page = [rec(1), rec(2), rec(2), rec(5)];
        assert!(check_order("c", &order(Asc, None), &page).is_ok());
        assert!(check_order("c", &order(Asc, Some(1.0)), &page).is_ok());
        assert!(check_order("c", &order(Asc, Some(2.0)), &page).is_err());
        assert!(check_order("c", &order(Desc, None), &page).is_err());
        let down = [rec(9), rec(4), rec(4), rec(0)];
        assert!(check_order("c", &order(Desc, Some(9.0)), &down).is_ok());
        assert!(check_order("c", &order(Desc, Some(8.0)), &down).is_err());
        assert!(check_order("c", &order(Asc, None), &down).is_err());
    }

    #[test]
    fn conditions_are_judged_like_the_engine_and_unknowns_pass() {
        let id = PointId::from_u128(7);
        let p = payload(json!({"user_id": "alice", "tags": ["a", "b"], "n": 5, "live": true, "none": null}));
        let yes = |f: Filter| assert_eq!(admits(&f, id, &p, None), Some(true), "{f:?}");
        let no = |f: Filter| assert_eq!(admits(&f, id, &p, None), Some(false), "{f:?}");
        yes(Filter::must(eq("user_id", "alice")));
        no(Filter::must(eq("user_id", "bob")));
        yes(Filter::must(eq("tags", "b")));
        no(Filter::must(eq("tags", "c")));
        yes(Filter::must(eq("n", 5i64)));
        no(Filter::must(eq("n", "5")));
        yes(Filter::must(eq("live", true)));
        yes(Filter::must(Condition::Any(
            "user_id".into(),
            vec!["x".into(), "alice".into()],
        )));
        let range = |gte: f64, lt: f64| Range {
            gte: Some(gte),
            lt: Some(lt),
            ..Range::default()
        };
        yes(Filter::must(Condition::Range("n".into(), range(5.0, 6.0))));
        no(Filter::must(Condition::Range("n".into(), range(6.0, 9.0))));
        no(Filter::must(Condition::Range("missing".into(), range(0.0, 9.0))));
        yes(Filter::must(Condition::IsEmpty("none".into())));
        yes(Filter::must(Condition::IsEmpty("missing".into())));
        no(Filter::must(Condition::IsEmpty("tags".into())));
        no(Filter::default().and_not(Condition::HasId(vec![id])));
        yes(Filter::default().and_not(eq("user_id", "bob")));
        let mut should = Filter {
            should: vec![eq("user_id", "bob"), eq("user_id", "alice")],
            ..Filter::default()
        };
        yes(should.clone());
        should.should.pop();
        no(should);
        no(Filter::must(Condition::Filter(Box::new(Filter::must(eq(
            "user_id", "bob",
        ))))));
        // What a payload cannot show is not held against the reply.
        let unknown = Filter::must(Condition::HasVector("dense".into())).and(eq("a.b", "x"));
        assert_eq!(admits(&unknown, id, &p, None), None);
        assert_eq!(
            admits(
                &Filter::default().and_not(Condition::HasVector("dense".into())),
                id,
                &p,
                Some(&Default::default())
            ),
            Some(true)
        );
    }
}
