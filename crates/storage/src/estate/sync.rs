//! Sync of a complete listing (tombstoning what it no longer holds) and the purge of old
//! tombstones.

use serde_json::json;

use super::model::AWSResource;
use super::schema::{field, ESTATE};
use super::storage::{invalid, next_offset, EstateStorage, SyncReport, SyncScope};
use crate::clock::now_ms;
use crate::error::Result;
use crate::progress::{self, ProgressFn};
use crate::store::{Condition, FieldValue, Filter, Payload, PointId, Range};

impl EstateStorage {
    /// Upsert a complete listing of `scope`, then tombstone the live resources in scope that
    /// it does not contain (`deleted_at`, `state = "deleted"`). Resources outside the scope
    /// are untouched.
    ///
    /// # Errors
    /// [`crate::StorageError::InvalidInput`] for a resource outside the scope or an empty account;
    /// store, crypto and embedding errors.
    pub async fn sync(&self, scope: &SyncScope, resources: Vec<AWSResource>) -> Result<SyncReport> {
        self.sync_with_progress(scope, resources, &progress::ignore).await
    }

    /// [`EstateStorage::sync`] reporting `progress(done, total)` as resources are written.
    ///
    /// # Errors
    /// As [`EstateStorage::sync`].
    pub async fn sync_with_progress(
        &self,
        scope: &SyncScope,
        resources: Vec<AWSResource>,
        progress: ProgressFn<'_>,
    ) -> Result<SyncReport> {
        if scope.account_id.trim().is_empty() {
            return Err(invalid("scope", "a sync needs the account it lists"));
        }
        for r in &resources {
            let in_scope = r.account_id == scope.account_id
                && scope.regions.as_ref().is_none_or(|rs| rs.contains(&r.region))
                && scope
                    .resource_types
                    .as_ref()
                    .is_none_or(|ts| ts.contains(&r.resource_type));
            if !in_scope {
                return Err(invalid(
                    "resources",
                    format!(
                        "{} {} ({}, {}) is outside the sync scope",
                        r.resource_type, r.identifier, r.account_id, r.region
                    ),
                ));
            }
        }
        let now = now_ms();
        let (upserted, seen) = self.upsert_at(resources, now, progress).await?;
        let mut scope_filter = Filter::must(Condition::Eq(field::ACCOUNT_ID.into(), scope.account_id.clone().into()))
            .and(Condition::Eq(field::LIVE.into(), true.into()));
        if let Some(regions) = &scope.regions {
            scope_filter = scope_filter.and(Condition::Any(
                field::REGION.into(),
                regions.iter().map(|r| FieldValue::from(r.as_str())).collect(),
            ));
        }
        if let Some(types) = &scope.resource_types {
            scope_filter = scope_filter.and(Condition::Any(
                field::RESOURCE_TYPE.into(),
                types.iter().map(|t| FieldValue::from(t.as_str())).collect(),
            ));
        }
        let _guard = self.writer.lock().await;
        let seen: std::collections::HashSet<PointId> = seen.into_iter().collect();
        let mut gone = Vec::new();
        let mut offset = None;
        loop {
            let page = self.page(&scope_filter, 1000, offset).await?;
            gone.extend(page.records.iter().map(|r| r.id).filter(|id| !seen.contains(id)));
            match next_offset(&page) {
                Some(next) => offset = Some(next),
                None => break,
            }
        }
        let tombstoned = gone.len() as u64;
        if !gone.is_empty() {
            let mut payload = Payload::new();
            payload.insert(field::DELETED_AT.into(), json!(now));
            payload.insert(field::LIVE.into(), json!(false));
            payload.insert(field::STATE.into(), json!("deleted"));
            self.store.set_payload(ESTATE, gone, payload).await?;
        }
        Ok(SyncReport {
            added: upserted.added,
            updated: upserted.updated,
            unchanged: upserted.unchanged,
            tombstoned,
        })
    }

    /// Delete tombstones older than `retention_ms` (default [`crate::TOMBSTONE_RETENTION_MS`]).
    ///
    /// # Errors
    /// Store errors.
    pub async fn purge_tombstones(&self, retention_ms: i64) -> Result<u64> {
        // `live = false` (indexed) selects the few tombstones; their `deleted_at` (not
        // indexed: an index would be rebuilt at every compaction for a rare query) is then
        // checked point by point.
        let filter = Filter::must(Condition::Eq(field::LIVE.into(), false.into())).and(Condition::Range(
            field::DELETED_AT.into(),
            Range {
                lt: Some((now_ms() - retention_ms) as f64),
                ..Range::default()
            },
        ));
        let _guard = self.writer.lock().await;
        let n = self.store.count(ESTATE, Some(filter.clone())).await?;
        if n > 0 {
            self.store.delete_by_filter(ESTATE, filter).await?;
        }
        Ok(n)
    }
}
