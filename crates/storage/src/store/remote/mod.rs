//! The remote backend: a Qdrant server or cluster over gRPC (`qdrant-client`).
//!
//! Collections are named `<collection_prefix><name>` on the server, so several stores (or test
//! runs) can share one server. Every write waits for the server to apply it (`wait = true`)
//! with medium write ordering (through each shard's elected leader), so an acknowledged write
//! is visible to every later read through any node of a cluster. What the server receives is what the embedded store keeps on disk:
//! sealed payloads, keyed tokens and rotated vectors, never a clear message or resource name.

mod connect;
mod convert;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use qdrant_client::qdrant as q;
use qdrant_client::{Qdrant, QdrantError};

pub use self::connect::RemoteOptions;
use self::convert::ConvertError;
use super::{
    CollectionSpec, CollectionStats, FieldValue, Filter, Hit, Payload, Point, PointId, PointVectors, QueryRequest,
    Record, ScrollPage, ScrollRequest, SnapshotInfo, StoreError, VectorSelection, VectorStore,
};

const BACKEND: &str = "qdrant server";

/// A Qdrant server or cluster as the store.
pub struct RemoteStore {
    client: Qdrant,
    url: String,
    prefix: String,
    replication_factor: u32,
    writes: AtomicU64,
    closed: AtomicBool,
    /// The data-dir lock of the service using this store (its keys and backups live there),
    /// released by `close`.
    lock: std::sync::Mutex<Option<super::embedded::DirLock>>,
}

impl std::fmt::Display for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{BACKEND} at {} (collections `{}*`)", self.url, self.prefix)
    }
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Is this a "collection does not exist" answer of the server?
fn is_missing_collection(e: &QdrantError) -> bool {
    match e {
        QdrantError::ResponseError { status } => {
            status.code() == tonic::Code::NotFound && status.message().contains("Collection")
        }
        _ => false,
    }
}

impl RemoteStore {
    /// Connect to the server and check that it answers.
    ///
    /// # Errors
    /// [`StoreError::Unreachable`] when the URL is malformed or the server does not answer.
    pub async fn connect(options: RemoteOptions) -> Result<Self, StoreError> {
        let (client, url) = connect::client(&options)?;
        client.health_check().await.map_err(|e| StoreError::Unreachable {
            url: url.clone(),
            reason: Box::new(e),
        })?;
        tracing::info!(%url, prefix = %options.collection_prefix, "connected to the Qdrant server");
        Ok(RemoteStore {
            client,
            url,
            prefix: options.collection_prefix,
            replication_factor: options.replication_factor.max(1),
            writes: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            lock: std::sync::Mutex::new(None),
        })
    }

    /// Keep the data-dir lock until `close` (the service locks its data dir in every mode).
    pub(crate) fn hold_lock(&self, lock: super::embedded::DirLock) {
        *self.lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
    }

    /// Delete one of this store's collections on the server (restore replaces them).
    ///
    /// # Errors
    /// Server errors; a missing collection is not one.
    pub async fn drop_collection(&self, collection: &str) -> Result<(), StoreError> {
        self.ensure_open()?;
        match self.client.delete_collection(self.full_name(collection)).await {
            Ok(_) => Ok(()),
            Err(e) if is_missing_collection(&e) => Ok(()),
            Err(e) => Err((self.err(collection, "delete collection"))(e)),
        }
    }

    /// The server URL dialled.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn ensure_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    fn full_name(&self, collection: &str) -> String {
        format!("{}{collection}", self.prefix)
    }

    /// Map a server error, naming the collection (its short name) and the operation.
    fn err(&self, collection: &str, operation: &'static str) -> impl Fn(QdrantError) -> StoreError + '_ {
        let collection = collection.to_string();
        move |e| {
            if is_missing_collection(&e) {
                return StoreError::NoSuchCollection(collection.clone());
            }
            if let QdrantError::ResponseError { status } = &e {
                if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) {
                    return StoreError::Unreachable {
                        url: self.url.clone(),
                        reason: Box::new(e),
                    };
                }
            }
            StoreError::Backend {
                backend: BACKEND,
                collection: collection.clone(),
                operation,
                source: Box::new(e),
            }
        }
    }

    fn convert_err<'a>(collection: &'a str, operation: &'static str) -> impl Fn(ConvertError) -> StoreError + 'a {
        move |source| StoreError::Backend {
            backend: BACKEND,
            collection: collection.to_string(),
            operation,
            source,
        }
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }

    async fn create_collection(&self, spec: &CollectionSpec) -> Result<(), StoreError> {
        let name = self.full_name(&spec.name);
        let mut dense = q::VectorsConfigBuilder::default();
        for d in &spec.dense {
            let mut params = q::VectorParamsBuilder::new(d.dim as u64, q::Distance::Cosine);
            if d.graph {
                params = params.hnsw_config(convert::graph_index());
            }
            dense.add_named_vector_params(d.name.clone(), params);
        }
        let mut sparse = q::SparseVectorsConfigBuilder::default();
        for s in &spec.sparse {
            let mut params = q::SparseVectorParamsBuilder::default();
            if s.idf {
                params = params.modifier(q::Modifier::Idf);
            }
            sparse.add_named_vector_params(s.name.clone(), params);
        }
        let mut create = q::CreateCollectionBuilder::new(name)
            .replication_factor(self.replication_factor)
            .write_consistency_factor(1)
            .on_disk_payload(true)
            .hnsw_config(convert::hnsw_layout())
            .optimizers_config(convert::optimizer_layout());
        if !spec.dense.is_empty() {
            create = create.vectors_config(dense);
        }
        if !spec.sparse.is_empty() {
            create = create.sparse_vectors_config(sparse);
        }
        match self.client.create_collection(create).await {
            Ok(_) => Ok(()),
            // Another writer created it meanwhile.
            Err(QdrantError::ResponseError { status }) if status.message().contains("already exists") => Ok(()),
            Err(e) => Err((self.err(&spec.name, "create collection"))(e)),
        }
    }

    /// Bring a collection created with other index or optimiser settings (the server's
    /// defaults, an older version) to ours.
    async fn ensure_layout(&self, collection: &str, info: &q::CollectionInfo) -> Result<(), StoreError> {
        if convert::has_layout(info) {
            return Ok(());
        }
        tracing::info!(
            collection,
            "setting the collection's index and optimiser layout on the server"
        );
        let request = q::UpdateCollectionBuilder::new(self.full_name(collection))
            .hnsw_config(convert::hnsw_layout())
            .optimizers_config(convert::optimizer_layout());
        self.client
            .update_collection(request)
            .await
            .map_err(self.err(collection, "update collection"))?;
        Ok(())
    }

    /// Add the vector slots the spec names and the collection lacks.
    async fn ensure_vectors(&self, spec: &CollectionSpec, info: &q::CollectionInfo) -> Result<(), StoreError> {
        let params = info.config.as_ref().and_then(|c| c.params.as_ref());
        let dense_known: Vec<String> = match params.and_then(|p| p.vectors_config.as_ref()?.config.as_ref()) {
            Some(q::vectors_config::Config::ParamsMap(map)) => map.map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let sparse_known: Vec<String> = params
            .and_then(|p| p.sparse_vectors_config.as_ref())
            .map(|s| s.map.keys().cloned().collect())
            .unwrap_or_default();
        let name = self.full_name(&spec.name);
        let dense = spec.dense.iter().filter(|d| !dense_known.contains(&d.name)).map(|d| {
            let config = q::DenseVectorCreationConfigBuilder::new(d.dim as u64, q::Distance::Cosine).build();
            (
                d.name.clone(),
                q::create_vector_name_request::VectorConfig::DenseConfig(config),
            )
        });
        let sparse = spec.sparse.iter().filter(|s| !sparse_known.contains(&s.name)).map(|s| {
            let mut config = q::SparseVectorCreationConfigBuilder::new();
            if s.idf {
                config = config.modifier(q::Modifier::Idf);
            }
            (
                s.name.clone(),
                q::create_vector_name_request::VectorConfig::SparseConfig(config.build()),
            )
        });
        for (vector, config) in dense.chain(sparse).collect::<Vec<_>>() {
            tracing::info!(collection = %spec.name, %vector, "adding a vector slot on the server");
            let request = q::CreateVectorNameRequestBuilder::new(name.clone(), vector, config)
                .wait(true)
                .ordering(convert::ordered());
            match self.client.create_vector_name(request).await {
                Ok(_) => {}
                // Another writer added it meanwhile.
                Err(QdrantError::ResponseError { status }) if status.message().contains("already exists") => {}
                Err(e) => return Err((self.err(&spec.name, "add vector"))(e)),
            }
        }
        self.ensure_graphs(spec).await
    }

    /// Give every [`crate::store::DenseSpec::graph`] slot its vector index (slots added after
    /// creation have none); the server's optimiser then rebuilds its segments with it.
    async fn ensure_graphs(&self, spec: &CollectionSpec) -> Result<(), StoreError> {
        let wanted: Vec<&str> = spec.dense.iter().filter(|d| d.graph).map(|d| d.name.as_str()).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let described = convert::describe(&spec.name, &self.collection_info(&spec.name).await?);
        let missing: Vec<&str> = wanted
            .into_iter()
            .filter(|name| described.dense.iter().any(|d| d.name == *name && !d.graph))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        tracing::info!(collection = %spec.name, vectors = ?missing, "adding a vector index (HNSW) on the server");
        let map = missing
            .into_iter()
            .map(|name| {
                let diff = q::VectorParamsDiff {
                    hnsw_config: Some(convert::graph_index().into()),
                    ..q::VectorParamsDiff::default()
                };
                (name.to_string(), diff)
            })
            .collect();
        let diff = q::VectorsConfigDiff {
            config: Some(q::vectors_config_diff::Config::ParamsMap(q::VectorParamsDiffMap {
                map,
            })),
        };
        let request = q::UpdateCollectionBuilder::new(self.full_name(&spec.name)).vectors_config(diff);
        self.client
            .update_collection(request)
            .await
            .map_err(self.err(&spec.name, "add vector index"))?;
        Ok(())
    }

    async fn ensure_indexes(&self, spec: &CollectionSpec, info: &q::CollectionInfo) -> Result<(), StoreError> {
        let name = self.full_name(&spec.name);
        for (field, kind) in &spec.indexes {
            if info.payload_schema.contains_key(field) {
                continue;
            }
            let (field_type, params) = convert::index(*kind);
            let mut create =
                q::CreateFieldIndexCollectionBuilder::new(name.clone(), field.clone(), field_type).wait(true);
            if let Some(params) = params {
                create = create.field_index_params(params);
            }
            self.client
                .create_field_index(create)
                .await
                .map_err(self.err(&spec.name, "create index"))?;
        }
        Ok(())
    }

    async fn collection_info(&self, collection: &str) -> Result<q::CollectionInfo, StoreError> {
        let info = self
            .client
            .collection_info(self.full_name(collection))
            .await
            .map_err(self.err(collection, "collection info"))?;
        info.result
            .ok_or_else(|| StoreError::NoSuchCollection(collection.to_string()))
    }

    /// Short names of this store's collections on the server, sorted.
    async fn collection_names(&self) -> Result<Vec<String>, StoreError> {
        let list = self
            .client
            .list_collections()
            .await
            .map_err(self.err("*", "list collections"))?;
        let mut names: Vec<String> = list
            .collections
            .into_iter()
            .filter_map(|c| c.name.strip_prefix(&self.prefix).map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }
}

#[async_trait::async_trait]
impl VectorStore for RemoteStore {
    async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<(), StoreError> {
        self.ensure_open()?;
        if spec.name.is_empty() || spec.name.contains(['/', '\\', '\0']) || spec.name.starts_with('.') {
            return Err(StoreError::NoSuchCollection(spec.name.clone()));
        }
        let info = match self.collection_info(&spec.name).await {
            Ok(info) => info,
            Err(StoreError::NoSuchCollection(_)) => {
                self.create_collection(spec).await?;
                self.collection_info(&spec.name).await?
            }
            Err(e) => return Err(e),
        };
        self.ensure_layout(&spec.name, &info).await?;
        self.ensure_vectors(spec, &info).await?;
        self.ensure_indexes(spec, &info).await
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError> {
        self.ensure_open()?;
        if points.is_empty() {
            return Ok(());
        }
        let points: Vec<q::PointStruct> = points.into_iter().map(convert::point).collect();
        self.client
            .upsert_points(
                q::UpsertPointsBuilder::new(self.full_name(collection), points)
                    .wait(true)
                    .ordering(convert::ordered()),
            )
            .await
            .map_err(self.err(collection, "upsert"))?;
        self.wrote();
        Ok(())
    }

    async fn update_vectors(&self, collection: &str, points: Vec<PointVectors>) -> Result<(), StoreError> {
        self.ensure_open()?;
        if points.is_empty() {
            return Ok(());
        }
        let points: Vec<q::PointVectors> = points
            .into_iter()
            .map(|p| q::PointVectors {
                id: Some(convert::point_id(p.id)),
                vectors: Some(convert::vectors(p.vectors)),
            })
            .collect();
        self.client
            .update_vectors(
                q::UpdatePointVectorsBuilder::new(self.full_name(collection), points)
                    .wait(true)
                    .ordering(convert::ordered()),
            )
            .await
            .map_err(self.err(collection, "update vectors"))?;
        self.wrote();
        Ok(())
    }

    async fn set_payload(&self, collection: &str, ids: Vec<PointId>, payload: Payload) -> Result<(), StoreError> {
        self.ensure_open()?;
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<q::PointId> = ids.into_iter().map(convert::point_id).collect();
        self.client
            .set_payload(
                q::SetPayloadPointsBuilder::new(self.full_name(collection), convert::payload(payload))
                    .points_selector(q::PointsIdsList { ids })
                    .wait(true)
                    .ordering(convert::ordered()),
            )
            .await
            .map_err(self.err(collection, "set payload"))?;
        self.wrote();
        Ok(())
    }

    /// `update_mode = insert_only` (the server leaves an existing point untouched), then a
    /// read-back: the point is ours when the stored payload is the one sent (sealed fields carry
    /// a random nonce, so two writers never send equal payloads for one id).
    async fn insert_if_absent(&self, collection: &str, point: Point) -> Result<bool, StoreError> {
        self.ensure_open()?;
        let (id, sent) = (point.id, point.payload.clone());
        self.client
            .upsert_points(
                q::UpsertPointsBuilder::new(self.full_name(collection), vec![convert::point(point)])
                    .wait(true)
                    .ordering(convert::ordered())
                    .update_mode(q::UpdateMode::InsertOnly),
            )
            .await
            .map_err(self.err(collection, "insert if absent"))?;
        let stored = self.retrieve(collection, vec![id], VectorSelection::None).await?;
        let inserted = stored.first().is_some_and(|r| r.payload == sent);
        if inserted {
            self.wrote();
        }
        Ok(inserted)
    }

    async fn set_payload_by_filter(
        &self,
        collection: &str,
        filter: Filter,
        payload: Payload,
    ) -> Result<(), StoreError> {
        self.ensure_open()?;
        let filter = convert::filter(&filter).map_err(Self::convert_err(collection, "set payload"))?;
        self.client
            .set_payload(
                q::SetPayloadPointsBuilder::new(self.full_name(collection), convert::payload(payload))
                    .points_selector(filter)
                    .wait(true)
                    .ordering(convert::ordered()),
            )
            .await
            .map_err(self.err(collection, "set payload"))?;
        self.wrote();
        Ok(())
    }

    async fn delete(&self, collection: &str, ids: Vec<PointId>) -> Result<(), StoreError> {
        self.ensure_open()?;
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<q::PointId> = ids.into_iter().map(convert::point_id).collect();
        self.client
            .delete_points(
                q::DeletePointsBuilder::new(self.full_name(collection))
                    .points(q::PointsIdsList { ids })
                    .wait(true)
                    .ordering(convert::ordered()),
            )
            .await
            .map_err(self.err(collection, "delete"))?;
        self.wrote();
        Ok(())
    }

    async fn delete_by_filter(&self, collection: &str, filter: Filter) -> Result<(), StoreError> {
        self.ensure_open()?;
        let filter = convert::filter(&filter).map_err(Self::convert_err(collection, "delete by filter"))?;
        self.client
            .delete_points(
                q::DeletePointsBuilder::new(self.full_name(collection))
                    .points(filter)
                    .wait(true)
                    .ordering(convert::ordered()),
            )
            .await
            .map_err(self.err(collection, "delete by filter"))?;
        self.wrote();
        Ok(())
    }

    async fn retrieve(
        &self,
        collection: &str,
        ids: Vec<PointId>,
        vectors: VectorSelection,
    ) -> Result<Vec<Record>, StoreError> {
        self.ensure_open()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<q::PointId> = ids.iter().map(|id| convert::point_id(*id)).collect();
        let response = self
            .client
            .get_points(
                q::GetPointsBuilder::new(self.full_name(collection), wanted)
                    .with_payload(true)
                    .with_vectors(convert::vectors_selector(vectors)),
            )
            .await
            .map_err(self.err(collection, "retrieve"))?;
        let mut by_id: HashMap<PointId, Record> = HashMap::new();
        for point in response.result {
            let record = convert::record(point).map_err(Self::convert_err(collection, "retrieve"))?;
            by_id.insert(record.id, record);
        }
        // In the order asked, skipping missing ids (a repeated id is returned once per ask).
        Ok(ids.iter().filter_map(|id| by_id.get(id).cloned()).collect())
    }

    async fn scroll(&self, collection: &str, request: ScrollRequest) -> Result<ScrollPage, StoreError> {
        self.ensure_open()?;
        let to_backend = Self::convert_err(collection, "scroll");
        let mut scroll = q::ScrollPointsBuilder::new(self.full_name(collection))
            .limit(u32::try_from(request.limit.max(1)).unwrap_or(u32::MAX))
            .with_payload(true)
            .with_vectors(request.with_vectors);
        if let Some(filter) = convert::opt_filter(request.filter.as_ref()).map_err(&to_backend)? {
            scroll = scroll.filter(filter);
        }
        if let Some(order_by) = &request.order_by {
            scroll = scroll.order_by(convert::order_by(order_by));
        }
        if let Some(offset) = request.offset {
            scroll = scroll.offset(convert::point_id(offset));
        }
        let response = self
            .client
            .scroll(scroll)
            .await
            .map_err(self.err(collection, "scroll"))?;
        let records = response
            .result
            .into_iter()
            .map(convert::record)
            .collect::<Result<Vec<_>, _>>()
            .map_err(&to_backend)?;
        let next_offset = match response.next_page_offset {
            Some(id) => Some(convert::from_point_id(Some(id)).map_err(&to_backend)?),
            None => None,
        };
        Ok(ScrollPage { records, next_offset })
    }

    async fn query(&self, collection: &str, request: QueryRequest) -> Result<Vec<Hit>, StoreError> {
        self.ensure_open()?;
        let to_backend = Self::convert_err(collection, "query");
        let mut query = q::QueryPointsBuilder::new(self.full_name(collection))
            .query(q::Query::new_nearest(convert::vector_input(request.vector)))
            .using(request.using)
            .limit(request.limit as u64)
            .with_payload(request.with_payload);
        if request.exact {
            query = query.params(q::SearchParamsBuilder::default().exact(true));
        }
        if let Some(filter) = convert::opt_filter(request.filter.as_ref()).map_err(&to_backend)? {
            query = query.filter(filter);
        }
        let response = self.client.query(query).await.map_err(self.err(collection, "query"))?;
        response
            .result
            .into_iter()
            .map(convert::hit)
            .collect::<Result<Vec<_>, _>>()
            .map_err(to_backend)
    }

    async fn count(&self, collection: &str, filter: Option<Filter>) -> Result<u64, StoreError> {
        self.ensure_open()?;
        let mut count = q::CountPointsBuilder::new(self.full_name(collection)).exact(true);
        if let Some(filter) = convert::opt_filter(filter.as_ref()).map_err(Self::convert_err(collection, "count"))? {
            count = count.filter(filter);
        }
        let response = self.client.count(count).await.map_err(self.err(collection, "count"))?;
        Ok(response.result.map_or(0, |r| r.count))
    }

    async fn facet(
        &self,
        collection: &str,
        field: &str,
        filter: Option<Filter>,
        limit: usize,
    ) -> Result<Vec<(FieldValue, u64)>, StoreError> {
        self.ensure_open()?;
        let to_backend = Self::convert_err(collection, "facet");
        let mut facet = q::FacetCountsBuilder::new(self.full_name(collection), field)
            .limit(limit.max(1) as u64)
            .exact(true);
        if let Some(filter) = convert::opt_filter(filter.as_ref()).map_err(&to_backend)? {
            facet = facet.filter(filter);
        }
        let response = self.client.facet(facet).await.map_err(self.err(collection, "facet"))?;
        response
            .hits
            .into_iter()
            .map(|h| Ok((convert::facet_value(h.value).map_err(&to_backend)?, h.count)))
            .collect()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write waited for the server to apply it to its write-ahead log.
        self.ensure_open()
    }

    async fn optimize(&self, _collection: &str) -> Result<(), StoreError> {
        // The server's own optimizers build indexes in the background.
        self.ensure_open()
    }

    async fn describe(&self, collection: &str) -> Result<CollectionSpec, StoreError> {
        self.ensure_open()?;
        let info = self.collection_info(collection).await?;
        Ok(convert::describe(collection, &info))
    }

    async fn stats(&self) -> Result<Vec<CollectionStats>, StoreError> {
        self.ensure_open()?;
        let mut stats = Vec::new();
        for name in self.collection_names().await? {
            let points = self.count(&name, None).await?;
            let segments = self.collection_info(&name).await?.segments_count as usize;
            stats.push(CollectionStats { name, points, segments });
        }
        Ok(stats)
    }

    /// Export every collection, page by page, into an embedded store created in `dest`: the
    /// same folder layout (and so the same archive format) as an embedded snapshot, which
    /// restores into either backend. Writers are not paused: each point is copied as the server
    /// held it when its page was read (not one instant across collections; a conversation's
    /// message count is repaired from its messages when it is next written).
    async fn snapshot(&self, dest: &std::path::Path) -> Result<SnapshotInfo, StoreError> {
        self.ensure_open()?;
        let dest_dir = dest.to_path_buf();
        let target = crate::blocking::run_blocking(move || {
            super::EmbeddedStore::open_with(
                &dest_dir,
                super::EmbeddedOptions {
                    min_free_bytes: 0,
                    ..super::EmbeddedOptions::default()
                },
            )
        })
        .await?;
        let quiet = |_: &str, _: u64, _: u64| {};
        // Counts as exported (a write during the export may have added to the source since).
        let exported = match super::copy::copy_all(self, &target, &quiet).await {
            Ok(_) => target.stats().await,
            Err(e) => Err(e),
        };
        let closed = target.close().await;
        let collections = exported?;
        closed?;
        let root = dest.join(super::embedded::QDRANT_DIR);
        let bytes = crate::blocking::run_blocking(move || Ok::<_, StoreError>(crate::disk::dir_size(&root))).await?;
        Ok(SnapshotInfo {
            collections,
            writer_pause_ms: 0.0,
            bytes,
            linked_bytes: 0,
            linked: Vec::new(),
            journal: None,
        })
    }

    fn write_count(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Nothing is buffered here: every acknowledged write is on the server.
        self.closed.store(true, Ordering::SeqCst);
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server the remote tests use: `CLOUDOPS_TEST_QDRANT_URL` (scripts/test.sh starts one)
    /// or `QDRANT_URL`. `None` (the test skips with a printed reason) outside CI; under
    /// `CI=true` a missing server fails the test.
    pub(crate) fn test_server_url() -> Option<String> {
        let url = std::env::var("CLOUDOPS_TEST_QDRANT_URL")
            .or_else(|_| std::env::var("QDRANT_URL"))
            .ok()
            .filter(|u| !u.is_empty());
        if url.is_none() {
            assert!(
                std::env::var("CI").is_err(),
                "CI=true but no Qdrant server: run the tests through scripts/test.sh (it starts one)"
            );
            eprintln!("skipped: no Qdrant server (set QDRANT_URL, or run scripts/test.sh)");
        }
        url
    }

    async fn connect_fresh() -> Option<RemoteStore> {
        let url = test_server_url()?;
        let mut options = RemoteOptions::new(&url);
        options.collection_prefix = format!("t{}_", uuid::Uuid::new_v4().simple());
        Some(RemoteStore::connect(options).await.unwrap())
    }

    #[tokio::test]
    async fn conformance() {
        let Some(store) = connect_fresh().await else { return };
        crate::store::conformance::run_all(&store, "conf").await;
    }

    #[tokio::test]
    async fn unreachable_server_is_a_clear_error() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut options = RemoteOptions::new(&format!("http://127.0.0.1:{port}"));
        options.timeout = std::time::Duration::from_secs(2);
        let err = RemoteStore::connect(options).await.unwrap_err();
        assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains(&port.to_string()), "{err}");
    }

    #[tokio::test]
    async fn stats_list_only_this_stores_collections() {
        let Some(store) = connect_fresh().await else { return };
        let spec = CollectionSpec {
            name: "only".into(),
            dense: Vec::new(),
            sparse: Vec::new(),
            indexes: Vec::new(),
        };
        store.ensure_collection(&spec).await.unwrap();
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.len(), 1, "{stats:?}");
        assert_eq!(stats[0].name, "only");
        assert!(matches!(
            store.count("never-created", None).await,
            Err(StoreError::NoSuchCollection(_))
        ));
    }

    #[tokio::test]
    async fn collections_get_the_embedded_layout_even_when_made_with_server_defaults() {
        let Some(store) = connect_fresh().await else { return };
        let spec = |name: &str| CollectionSpec {
            name: name.into(),
            dense: Vec::new(),
            sparse: vec![crate::store::SparseSpec {
                name: "kw".into(),
                idf: true,
            }],
            indexes: Vec::new(),
        };
        store.ensure_collection(&spec("ours")).await.unwrap();
        let info = store.collection_info("ours").await.unwrap();
        assert!(convert::has_layout(&info), "{:?}", info.config);

        // One an older version (or someone else) made with the server's defaults: 10 MB
        // appendable segments and an HNSW graph.
        store
            .client
            .create_collection(q::CreateCollectionBuilder::new(store.full_name("theirs")))
            .await
            .unwrap();
        assert!(!convert::has_layout(&store.collection_info("theirs").await.unwrap()));
        store.ensure_collection(&spec("theirs")).await.unwrap();
        let info = store.collection_info("theirs").await.unwrap();
        assert!(convert::has_layout(&info), "{:?}", info.config);
    }
}
