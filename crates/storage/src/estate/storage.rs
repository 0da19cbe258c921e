//! `EstateStorage` and its request and report types: resources, merge-on-upsert, lookup by
//! key or ARN, filters, counts and stats. Search, sync and the tag dictionary are beside it
//! (`search.rs`, `sync.rs`, `tags.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{json, Value};

use super::model::AWSResource;
use super::schema::{self, field, Keys, ESTATE};
use super::tags::DICTIONARY_COLLECTION;
use crate::clock::now_ms;
use crate::crypto::Sealer;
use crate::embed::{DenseSpace, KeywordEncoder};
use crate::error::{Result, StorageError};
use crate::names::KEYWORDS_VECTOR;
use crate::progress::{self, report, Phase, ProgressFn};
use crate::store::{
    CollectionSpec, Condition, FieldValue, Filter, Payload, Point, PointId, PointVectors, ScrollPage, ScrollRequest,
    VectorData, VectorSelection, VectorStore,
};

/// Resources embedded per model call by [`EstateStorage::embed_missing`].
const EMBED_BATCH: usize = 64;
/// Points written per store call.
const WRITE_BATCH: usize = 256;
/// Facet values fetched at most (far above any real estate's distinct values).
pub(super) const FACET_LIMIT: usize = 100_000;
/// Default tombstone retention.
pub const TOMBSTONE_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// An unchanged resource's `last_synced` is rewritten only when it is older than this.
/// Rewriting a payload moves the point back into the engine's appendable segment (its whole
/// keyword vector is re-indexed), so an hourly re-import of an unchanged estate costs reads,
/// not writes; `last_synced` is then exact to within this resolution.
pub const LAST_SYNCED_RESOLUTION_MS: i64 = 3600 * 1000;

/// Filters of [`EstateStorage::count`], [`EstateStorage::list`] and [`EstateStorage::search`].
/// From JSON, omitted fields match everything (`tags` is a list of `[key, value]` pairs);
/// unknown fields are an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct ResourceFilter {
    /// `rds:db`, ...
    pub resource_type: Option<String>,
    /// `rds`, ...
    pub service: Option<String>,
    /// 12-digit account id.
    pub account_id: Option<String>,
    /// Region or `global`.
    pub region: Option<String>,
    /// Lifecycle state.
    pub state: Option<String>,
    /// Every `key=value` must be set.
    pub tags: Vec<(String, String)>,
    /// Include tombstoned resources.
    pub include_deleted: bool,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct UpsertReport {
    /// New resources.
    pub added: u64,
    /// Existing resources whose content changed.
    pub updated: u64,
    /// Existing resources seen again unchanged (only `last_synced` moves; no re-embedding).
    pub unchanged: u64,
}

/// The part of the estate a sync covers. JSON: `{"account_id": "…", "regions": null,
/// "resource_types": ["ec2:instance"]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct SyncScope {
    /// The account listed.
    pub account_id: String,
    /// Regions listed (`None`: all).
    pub regions: Option<Vec<String>>,
    /// Resource types listed (`None`: all).
    pub resource_types: Option<Vec<String>>,
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct SyncReport {
    /// New resources.
    pub added: u64,
    /// Changed resources.
    pub updated: u64,
    /// Unchanged resources.
    pub unchanged: u64,
    /// Resources in scope missing from this listing, now tombstoned.
    pub tombstoned: u64,
}

/// A search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct ResourceHit {
    /// The resource.
    pub resource: AWSResource,
    /// Fused score (0 for filter-only searches). Hybrid results are ordered by the query's
    /// attribute and class words first, so scores need not decrease down the list.
    pub score: f32,
}

/// A field to count by in [`EstateStorage::stats`]. JSON: `"service"`, `"resource_type"`,
/// `"region"`, `"account"`, `"state"` or `{"tag": "env"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsBy {
    /// `service`
    Service,
    /// `resource_type`
    ResourceType,
    /// `region`
    Region,
    /// `account_id`
    Account,
    /// `state`
    State,
    /// Values of one tag key.
    Tag(String),
}

impl StatsBy {
    /// The fields `stats` reports when none is named: service, type, region, account, state.
    pub const OVERVIEW: [StatsBy; 5] = [
        StatsBy::Service,
        StatsBy::ResourceType,
        StatsBy::Region,
        StatsBy::Account,
        StatsBy::State,
    ];

    /// The name of this field (`tag:KEY` for a tag), as [`str::parse`] reads it.
    pub fn name(&self) -> String {
        match self {
            StatsBy::Service => "service".into(),
            StatsBy::ResourceType => "type".into(),
            StatsBy::Region => "region".into(),
            StatsBy::Account => "account".into(),
            StatsBy::State => "state".into(),
            StatsBy::Tag(key) => format!("tag:{key}"),
        }
    }
}

impl std::str::FromStr for StatsBy {
    type Err = String;

    /// `service`, `type` (or `resource_type`), `region`, `account` (or `account_id`),
    /// `state`, or `tag:KEY`.
    fn from_str(field: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match field {
            "service" => StatsBy::Service,
            "type" | "resourcetype" | "resource_type" => StatsBy::ResourceType,
            "region" => StatsBy::Region,
            "account" | "account_id" => StatsBy::Account,
            "state" => StatsBy::State,
            other => match other.strip_prefix("tag:") {
                Some(key) if !key.is_empty() => StatsBy::Tag(key.to_string()),
                _ => return Err(format!("{other}: use service, type, region, account, state or tag:KEY")),
            },
        })
    }
}

/// The AWS estate of every account the user imported.
#[derive(Clone)]
pub struct EstateStorage {
    pub(super) store: Arc<dyn VectorStore>,
    pub(super) sealer: Arc<Sealer>,
    pub(super) keywords: Arc<KeywordEncoder>,
    pub(super) dense: Option<Arc<DenseSpace>>,
    /// Tag key → values seen, decrypted in memory (persisted sealed in `store_meta`).
    pub(super) dictionary: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    /// Serialises read-merge-write cycles.
    pub(super) writer: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for EstateStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EstateStorage").finish_non_exhaustive()
    }
}

pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> StorageError {
    StorageError::InvalidInput {
        field,
        reason: reason.into(),
    }
}

pub(super) fn str_of(v: &FieldValue) -> Option<&str> {
    match v {
        FieldValue::Str(s) => Some(s),
        _ => None,
    }
}

impl EstateStorage {
    pub(crate) async fn open(
        store: Arc<dyn VectorStore>,
        sealer: Arc<Sealer>,
        keywords: Arc<KeywordEncoder>,
        dense: Option<Arc<DenseSpace>>,
    ) -> Result<Self> {
        store
            .ensure_collection(&schema::estate_spec(dense.as_ref().map(|d| d.spec())))
            .await?;
        store
            .ensure_collection(&CollectionSpec {
                name: DICTIONARY_COLLECTION.into(),
                dense: Vec::new(),
                sparse: Vec::new(),
                indexes: Vec::new(),
            })
            .await?;
        let estate = EstateStorage {
            store,
            sealer,
            keywords,
            dense,
            dictionary: Arc::new(Mutex::new(BTreeMap::new())),
            writer: Arc::new(tokio::sync::Mutex::new(())),
        };
        estate.load_dictionary().await?;
        let unembedded = estate.unembedded().await?;
        if unembedded > 0 {
            tracing::warn!(
                resources = unembedded,
                "estate resources without a vector for the configured model: semantic estate search misses them until `cloudops-storage reindex`"
            );
        }
        Ok(estate)
    }

    /// Resources without a vector in the configured model's slot (0 without a model).
    ///
    /// # Errors
    /// Store errors.
    pub async fn unembedded(&self) -> Result<u64> {
        match &self.dense {
            Some(space) => Ok(self.store.count(ESTATE, Some(missing_vector(space.slot()))).await?),
            None => Ok(0),
        }
    }

    pub(super) fn keys(&self) -> Keys<'_> {
        Keys {
            encoder: &self.keywords,
        }
    }

    /// Insert or merge one resource.
    ///
    /// # Errors
    /// As [`EstateStorage::bulk_upsert`].
    pub async fn upsert_resource(&self, resource: AWSResource) -> Result<UpsertReport> {
        self.bulk_upsert(vec![resource]).await
    }

    /// Insert or merge many resources: one read of the existing records, batched embedding of
    /// the changed ones, batched writes. A field a resource lacks keeps its stored value.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] naming the first resource without type, identifier,
    /// account or region (nothing is written then); store, crypto and embedding errors.
    pub async fn bulk_upsert(&self, resources: Vec<AWSResource>) -> Result<UpsertReport> {
        self.upsert_at(resources, now_ms(), &progress::ignore)
            .await
            .map(|(report, _)| report)
    }

    /// `progress(done, total)` follows the writes (unchanged resources count as done once
    /// compared).
    pub(super) async fn upsert_at(
        &self,
        resources: Vec<AWSResource>,
        now: i64,
        progress: ProgressFn<'_>,
    ) -> Result<(UpsertReport, Vec<PointId>)> {
        let progress = |done: usize, total: usize| report(progress, Phase::SyncResources, done as u64, total as u64);
        for (i, r) in resources.iter().enumerate() {
            for (name, value) in [
                ("resource_type", &r.resource_type),
                ("identifier", &r.identifier),
                ("account_id", &r.account_id),
                ("region", &r.region),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid("resource", format!("resource #{i} has no {name}")));
                }
            }
        }
        // One entry per resource key, later entries merged into earlier ones.
        let keys = self.keys();
        let mut order: Vec<PointId> = Vec::new();
        let mut incoming: HashMap<PointId, AWSResource> = HashMap::new();
        for mut r in resources {
            if r.service.is_empty() {
                r.service = r.resource_type.split(':').next().unwrap_or_default().to_string();
            }
            r.last_synced = Some(now);
            r.deleted_at = None;
            let id = schema::point_id(&keys, &r);
            match incoming.get_mut(&id) {
                Some(existing) => existing.merge(r),
                None => {
                    order.push(id);
                    incoming.insert(id, r);
                }
            }
        }
        let _guard = self.writer.lock().await;
        let mut report = UpsertReport::default();
        let mut stale = Vec::new();
        let mut changed: Vec<AWSResource> = Vec::new();
        for chunk in order.chunks(WRITE_BATCH) {
            let stored: HashMap<PointId, crate::store::Record> = self
                .store
                .retrieve(ESTATE, chunk.to_vec(), VectorSelection::None)
                .await?
                .into_iter()
                .map(|r| (r.id, r))
                .collect();
            for id in chunk {
                let Some(new) = incoming.remove(id) else { continue };
                match stored.get(id) {
                    None => {
                        report.added += 1;
                        changed.push(new);
                    }
                    Some(record) => {
                        let mut merged = schema::resource_from_record(record, &self.sealer)?;
                        let was_deleted = merged.deleted_at.is_some();
                        merged.merge(new);
                        let same = record.payload.get(field::FINGERPRINT).and_then(Value::as_str)
                            == Some(schema::fingerprint_of(&merged, &keys).as_str());
                        if same && !was_deleted && clear_fields_match(record, &merged) {
                            report.unchanged += 1;
                            let synced = record.payload.get(field::LAST_SYNCED).and_then(Value::as_i64);
                            if synced.is_none_or(|t| now - t >= LAST_SYNCED_RESOLUTION_MS) {
                                stale.push(*id);
                            }
                        } else {
                            report.updated += 1;
                            changed.push(merged);
                        }
                    }
                }
            }
        }
        let total = order.len();
        let mut done = total - changed.len();
        progress(done, total);
        // Pipelined: the next batch is sealed, tokenised (and embedded) while the engine
        // writes the previous one on the blocking pool.
        let mut ready: Option<Vec<Point>> = None;
        for batch in changed.chunks(WRITE_BATCH) {
            let next = self.points_of(batch);
            ready = Some(match ready.take() {
                Some(points) => {
                    let n = points.len();
                    let (written, next) = tokio::join!(self.store.upsert(ESTATE, points), next);
                    written?;
                    done += n;
                    progress(done, total);
                    next?
                }
                None => next.await?,
            });
        }
        if let Some(points) = ready {
            self.store.upsert(ESTATE, points).await?;
            progress(total, total);
        }
        if !stale.is_empty() {
            let mut payload = Payload::new();
            payload.insert(field::LAST_SYNCED.into(), json!(now));
            self.store.set_payload(ESTATE, stale, payload).await?;
        }
        self.remember_tags(changed.iter()).await?;
        Ok((report, order))
    }

    /// The points of `batch`: sealed payload, keyword vector and (with a model) dense vector.
    async fn points_of(&self, batch: &[AWSResource]) -> Result<Vec<Point>> {
        let keys = self.keys();
        let dense = match &self.dense {
            Some(space) => {
                let texts: Vec<String> = batch.iter().map(schema::search_text).collect();
                Some((space.slot().to_string(), space.documents(&texts).await?))
            }
            None => None,
        };
        let mut points = Vec::with_capacity(batch.len());
        for (i, r) in batch.iter().enumerate() {
            let mut point = schema::resource_to_point(r, &keys, &self.sealer)?;
            point
                .vectors
                .insert(KEYWORDS_VECTOR.to_string(), schema::keyword_vector(r, &self.keywords));
            if let Some((slot, vectors)) = &dense {
                point
                    .vectors
                    .insert(slot.clone(), VectorData::Dense(vectors[i].clone()));
            }
            points.push(point);
        }
        Ok(points)
    }

    /// Embed every resource (tombstones included) that has no vector in the configured
    /// model's slot: resources imported while no model was configured, or under another
    /// model (`reindex`). Reports `(done, total)`; returns how many were embedded. A
    /// resource that cannot be unsealed is logged and skipped. Without a model: `Ok(0)`.
    ///
    /// # Errors
    /// Store and embedding errors.
    pub async fn embed_missing(&self, progress: ProgressFn<'_>) -> Result<u64> {
        let progress = |done: u64, total: u64| report(progress, Phase::EmbedResources, done, total);
        let Some(space) = &self.dense else {
            return Ok(0);
        };
        let missing = missing_vector(space.slot());
        let total = self.store.count(ESTATE, Some(missing.clone())).await?;
        if total == 0 {
            return Ok(0);
        }
        let _guard = self.writer.lock().await;
        let (mut done, mut embedded) = (0u64, 0u64);
        progress(0, total);
        let mut offset = None;
        loop {
            let page = self.page(&missing, EMBED_BATCH, offset).await?;
            let mut ids = Vec::new();
            let mut texts = Vec::new();
            for record in &page.records {
                match schema::resource_from_record(record, &self.sealer) {
                    Ok(r) => {
                        ids.push(record.id);
                        texts.push(schema::search_text(&r));
                    }
                    Err(e) => tracing::warn!(point = %record.id, error = %e, "resource not embedded: unreadable"),
                }
            }
            if !texts.is_empty() {
                let vectors = space.documents(&texts).await?;
                let updates = ids
                    .into_iter()
                    .zip(vectors)
                    .map(|(id, v)| PointVectors {
                        id,
                        vectors: [(space.slot().to_string(), VectorData::Dense(v))].into(),
                    })
                    .collect::<Vec<_>>();
                embedded += updates.len() as u64;
                self.store.update_vectors(ESTATE, updates).await?;
            }
            done += page.records.len() as u64;
            progress(done.min(total), total);
            match next_offset(&page) {
                Some(next) => offset = Some(next),
                None => break,
            }
        }
        Ok(embedded)
    }

    /// A resource by its key (`account/region/type/identifier`) or ARN.
    ///
    /// # Errors
    /// [`StorageError::NotFound`]; store and crypto errors.
    pub async fn get_resource(&self, key_or_arn: &str) -> Result<AWSResource> {
        let record = self.find(key_or_arn).await?.ok_or_else(|| StorageError::NotFound {
            what: "resource",
            id: key_or_arn.to_string(),
        })?;
        schema::resource_from_record(&record, &self.sealer)
    }

    pub(super) async fn find(&self, key_or_arn: &str) -> Result<Option<crate::store::Record>> {
        let token = self.keys().key_token(key_or_arn.trim());
        let by_token = Filter::must(Condition::Eq(field::KEY_TOKENS.into(), token.into()));
        Ok(self.page(&by_token, 1, None).await?.records.into_iter().next())
    }

    /// Delete a resource; `false` when there was none (deleting twice is fine).
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete_resource(&self, key_or_arn: &str) -> Result<bool> {
        let _guard = self.writer.lock().await;
        match self.find(key_or_arn).await? {
            Some(record) => {
                self.store.delete(ESTATE, vec![record.id]).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Live resources of an account.
    ///
    /// # Errors
    /// Store and crypto errors.
    pub async fn get_by_account(&self, account_id: &str) -> Result<Vec<AWSResource>> {
        self.list(
            &ResourceFilter {
                account_id: Some(account_id.into()),
                ..ResourceFilter::default()
            },
            usize::MAX,
        )
        .await
    }

    /// Live resources in a region.
    ///
    /// # Errors
    /// Store and crypto errors.
    pub async fn get_by_region(&self, region: &str) -> Result<Vec<AWSResource>> {
        self.list(
            &ResourceFilter {
                region: Some(region.into()),
                ..ResourceFilter::default()
            },
            usize::MAX,
        )
        .await
    }

    /// Live resources of a type.
    ///
    /// # Errors
    /// Store and crypto errors.
    pub async fn get_by_type(&self, resource_type: &str) -> Result<Vec<AWSResource>> {
        self.list(
            &ResourceFilter {
                resource_type: Some(resource_type.into()),
                ..ResourceFilter::default()
            },
            usize::MAX,
        )
        .await
    }

    /// Resources matching `filter`, at most `limit`.
    ///
    /// # Errors
    /// Store and crypto errors.
    pub async fn list(&self, filter: &ResourceFilter, limit: usize) -> Result<Vec<AWSResource>> {
        let filter = self.base_filter(filter);
        self.scroll_all(filter, limit).await
    }

    pub(super) async fn scroll_all(&self, filter: Filter, limit: usize) -> Result<Vec<AWSResource>> {
        let mut out = Vec::new();
        let mut offset = None;
        while out.len() < limit {
            let page = self.page(&filter, (limit - out.len()).min(1000), offset).await?;
            for r in &page.records {
                out.push(schema::resource_from_record(r, &self.sealer)?);
            }
            match next_offset(&page) {
                Some(next) => offset = Some(next),
                None => break,
            }
        }
        Ok(out)
    }

    /// One page of the resources matching `filter`, from `offset`.
    pub(super) async fn page(&self, filter: &Filter, limit: usize, offset: Option<PointId>) -> Result<ScrollPage> {
        Ok(self
            .store
            .scroll(
                ESTATE,
                ScrollRequest {
                    filter: Some(filter.clone()),
                    limit,
                    offset,
                    ..ScrollRequest::default()
                },
            )
            .await?)
    }

    /// Exact number of resources matching `filter`.
    ///
    /// # Errors
    /// Store errors.
    pub async fn count(&self, filter: &ResourceFilter) -> Result<u64> {
        Ok(self.store.count(ESTATE, Some(self.base_filter(filter))).await?)
    }

    pub(super) fn base_filter(&self, f: &ResourceFilter) -> Filter {
        let mut filter = Filter::default();
        for (name, value) in [
            (field::RESOURCE_TYPE, &f.resource_type),
            (field::SERVICE, &f.service),
            (field::ACCOUNT_ID, &f.account_id),
            (field::REGION, &f.region),
            (field::STATE, &f.state),
        ] {
            if let Some(v) = value {
                filter = filter.and(Condition::Eq(name.into(), v.clone().into()));
            }
        }
        for (k, v) in &f.tags {
            filter = filter.and(Condition::Eq(
                field::TAG_TOKENS.into(),
                self.keys().tag_token(k, v).into(),
            ));
        }
        if !f.include_deleted {
            filter = filter.and(Condition::Eq(field::LIVE.into(), true.into()));
        }
        filter
    }

    /// Exact counts per value of `by` over the resources matching `filter`, largest first.
    ///
    /// # Errors
    /// Store errors.
    pub async fn stats(&self, by: &StatsBy, filter: &ResourceFilter) -> Result<Vec<(String, u64)>> {
        let base = self.base_filter(filter);
        let key = match by {
            StatsBy::Service => field::SERVICE,
            StatsBy::ResourceType => field::RESOURCE_TYPE,
            StatsBy::Region => field::REGION,
            StatsBy::Account => field::ACCOUNT_ID,
            StatsBy::State => field::STATE,
            StatsBy::Tag(tag_key) => {
                let values: Vec<String> = self
                    .dictionary
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(tag_key)
                    .map(|v| v.iter().cloned().collect())
                    .unwrap_or_default();
                let mut out = Vec::new();
                for v in values {
                    let f = base.clone().and(Condition::Eq(
                        field::TAG_TOKENS.into(),
                        self.keys().tag_token(tag_key, &v).into(),
                    ));
                    let n = self.store.count(ESTATE, Some(f)).await?;
                    if n > 0 {
                        out.push((v, n));
                    }
                }
                out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                return Ok(out);
            }
        };
        let facets = self.store.facet(ESTATE, key, Some(base), FACET_LIMIT).await?;
        Ok(facets
            .into_iter()
            .filter_map(|(v, n)| str_of(&v).map(|s| (s.to_string(), n)))
            .collect())
    }
}

/// Where the page after `page` starts; `None` after the last.
pub(super) fn next_offset(page: &ScrollPage) -> Option<PointId> {
    page.next_offset.filter(|_| !page.records.is_empty())
}

/// Points without a vector in `slot`.
pub(super) fn missing_vector(slot: &str) -> Filter {
    Filter::default().and_not(Condition::HasVector(slot.to_string()))
}

/// Clear fields outside the fingerprint (state, account name, tag keys, sources) also decide
/// whether a resource changed.
fn clear_fields_match(record: &crate::store::Record, merged: &AWSResource) -> bool {
    let p = &record.payload;
    let s = |k: &str| p.get(k).and_then(Value::as_str);
    let sources: Vec<&str> = p
        .get(field::SOURCES)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    s(field::STATE) == merged.state.as_deref()
        && s(field::ACCOUNT_NAME) == merged.account_name.as_deref()
        && s(field::RESOURCE_TYPE) == Some(merged.resource_type.as_str())
        && s(field::REGION) == Some(merged.region.as_str())
        && sources == merged.sources.iter().map(String::as_str).collect::<Vec<_>>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::StorageService;

    fn bucket() -> AWSResource {
        AWSResource {
            resource_type: "s3:bucket".into(),
            identifier: "logs".into(),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            ..AWSResource::default()
        }
    }

    #[tokio::test]
    async fn unchanged_resources_refresh_last_synced_only_past_the_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::keyword_only_test_config(dir.path());
        let s = StorageService::open(config).await.unwrap();
        let e = &s.estate;
        let t0 = 1_700_000_000_000;
        e.upsert_at(vec![bucket()], t0, &crate::progress::ignore).await.unwrap();
        let synced = || async {
            e.get_resource("123456789012/us-east-1/s3:bucket/logs")
                .await
                .unwrap()
                .last_synced
        };
        let (report, _) = e
            .upsert_at(vec![bucket()], t0 + 60_000, &crate::progress::ignore)
            .await
            .unwrap();
        assert_eq!(report.unchanged, 1);
        assert_eq!(synced().await, Some(t0), "a minute later: not rewritten");
        let later = t0 + LAST_SYNCED_RESOLUTION_MS;
        let (report, _) = e
            .upsert_at(vec![bucket()], later, &crate::progress::ignore)
            .await
            .unwrap();
        assert_eq!(report.unchanged, 1);
        assert_eq!(synced().await, Some(later), "an hour later: refreshed");
        s.shutdown().await.unwrap();
    }
}
