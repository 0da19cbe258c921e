//! The estate workload behind `cloudops-storage bench --resources N`: bulk upsert speed
//! (keyword-only, and with the real model on a smaller batch), filtered search, count and
//! facet latency at N resources, and semantic search over 10,000 resources.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::chat::Latency;
use super::target::BenchStore;
use anyhow::Result;
use cloudops_storage_service::StorageService;
use cloudops_storage_service::{AWSResource, ResourceFilter, StatsBy};
use cloudops_storage_service::{BertEmbedder, Embedder};
use cloudops_storage_service::{ConfigKey, StorageConfig};

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct EstateBenchOptions {
    /// Resources for the keyword-only store.
    pub resources: usize,
    /// Timed queries per operation.
    pub samples: usize,
    /// The real model (embedding ingest and semantic search are skipped without it).
    pub model_dir: Option<PathBuf>,
    /// Where the stores live (embedded, or a server).
    pub store: BenchStore,
    /// Syncs of the same resources after the reads, every resource changed in each.
    pub resyncs: usize,
}

/// One re-sync of every resource, each one changed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ResyncRound {
    /// Resources per second.
    pub per_second: f64,
    /// The embedded store's bytes on disk after it (flushed).
    pub store_bytes: u64,
    /// Of which the engine's own WAL.
    pub engine_wal_bytes: u64,
}

/// What the estate bench measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EstateBenchReport {
    /// Where the stores lived (`embedded`, or the server and its replication).
    pub store: String,
    /// Resources stored.
    pub resources: usize,
    /// Keyword-only `bulk_upsert` (batches of 1,000), resources per second.
    pub ingest_keyword_only_per_second: f64,
    /// Re-importing the same resources (all unchanged), resources per second.
    pub reimport_unchanged_per_second: f64,
    /// `search` with filters only (`region:… state:… tag:env=…`), limit 20.
    pub filtered_search: Latency,
    /// `search` with filters that match nothing (`service:rds state:running`): the whole
    /// filtered set is checked.
    pub filtered_search_no_match: Latency,
    /// `search` with free text and filters (keyword only), limit 20.
    pub keyword_search: Latency,
    /// `count` with a two-field filter.
    pub count: Latency,
    /// `stats` by service (exact facet over every resource).
    pub facet: Latency,
    /// With the model: `bulk_upsert` of 1,000 resources with embeddings, resources per second.
    pub ingest_with_embeddings_per_second: Option<f64>,
    /// The embedded store's bytes on disk after the fill (flushed).
    pub store_bytes: Option<u64>,
    /// The re-syncs asked for (embedded store).
    pub resyncs: Vec<ResyncRound>,
    /// The embedded store's bytes on disk after the re-syncs, closed and opened again.
    pub store_bytes_after_reopen: Option<u64>,
    /// With the model: semantic search over 10,000 resources, the query embedding served
    /// from the cache (excluded).
    pub semantic_search_10k: Option<Latency>,
}

pub(crate) const REGIONS: [&str; 4] = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"];
const ENVS: [&str; 3] = ["production", "staging", "dev"];
const SIZES: [&str; 3] = ["small", "medium", "large"];

/// The `i`th generated resource.
pub(crate) fn resource(i: usize, rng: &mut impl Rng) -> AWSResource {
    // Region, type and account vary independently (a region keyed on `i % 4` like the type
    // would make every `region:X state:running` query but one match nothing).
    let region = REGIONS[(i / 4) % REGIONS.len()];
    let env = ENVS[rng.gen_range(0..ENVS.len())];
    let (rt, id, state) = match i % 4 {
        0 => (
            "ec2:instance",
            format!("i-{i:017x}"),
            if i.is_multiple_of(3) { "stopped" } else { "running" },
        ),
        1 => ("rds:db", format!("db-{i}"), "available"),
        2 => ("s3:bucket", format!("bucket-{i}"), "available"),
        _ => ("lambda:function", format!("fn-{i}"), "active"),
    };
    AWSResource {
        resource_type: rt.into(),
        identifier: id.clone(),
        account_id: format!("{:012}", 100_000_000_000u64 + ((i / 16) % 5) as u64),
        region: region.into(),
        service: rt.split(':').next().unwrap_or_default().into(),
        name: Some(format!("{env}-{}-{i}", rt.split(':').nth(1).unwrap_or("x"))),
        state: Some(state.into()),
        tags: Some(
            [
                ("env".to_string(), env.to_string()),
                ("team".to_string(), format!("team-{}", i % 12)),
            ]
            .into(),
        ),
        metadata: Some(serde_json::json!({ "size": SIZES[i % SIZES.len()] })),
        sources: vec!["bench".into()],
        ..AWSResource::default()
    }
}

/// A store in `dir/name` with its key file beside it.
pub(crate) fn config(dir: &Path, store: &BenchStore, name: &str) -> Result<StorageConfig> {
    let mut config = StorageConfig::builder()
        .with_data_dir(dir.join(name))
        .with_config(ConfigKey::KeySource, "file")
        .with_config(
            ConfigKey::KeyFile,
            dir.join(format!("{name}.key")).display().to_string(),
        )
        .build()?;
    store.apply(&mut config, name);
    Ok(config)
}

/// `samples` timed calls of `f(i)`.
pub(crate) async fn time<F, Fut, T>(samples: usize, mut f: F) -> Result<Latency>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = cloudops_storage_service::Result<T>>,
{
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let t = Instant::now();
        f(i).await?;
        out.push(t.elapsed());
    }
    Ok(Latency::from_samples(out))
}

/// Run the estate workload in `dir` (a fresh, empty folder).
///
/// # Errors
/// Any storage or embedding error.
pub(crate) async fn run_estate_bench(
    dir: &Path,
    options: &EstateBenchOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<EstateBenchReport> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let all: Vec<AWSResource> = (0..options.resources).map(|i| resource(i, &mut rng)).collect();
    let service = StorageService::open_with_embedder(config(dir, &options.store, "keyword")?, None).await?;
    let t = Instant::now();
    for (n, chunk) in all.chunks(1000).enumerate() {
        service.estate.bulk_upsert(chunk.to_vec()).await?;
        progress((n + 1) * 1000, options.resources);
    }
    let ingest_keyword_only_per_second = options.resources as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for chunk in all.chunks(1000) {
        service.estate.bulk_upsert(chunk.to_vec()).await?;
    }
    let reimport_unchanged_per_second = options.resources as f64 / t.elapsed().as_secs_f64();
    let estate = &service.estate;
    let none = &ResourceFilter::default();
    let filtered_search = time(options.samples, |i| {
        let q = format!(
            "region:{} state:running tag:env={}",
            REGIONS[i % REGIONS.len()],
            ENVS[i % ENVS.len()]
        );
        async move { estate.search(&q, none, 20).await }
    })
    .await?;
    let filtered_search_no_match = time(options.samples, |i| {
        let q = format!("service:rds state:running region:{}", REGIONS[i % REGIONS.len()]);
        async move { estate.search(&q, none, 20).await }
    })
    .await?;
    let keyword_search = time(options.samples, |i| {
        let q = format!(
            "{} database region:{}",
            ENVS[i % ENVS.len()],
            REGIONS[i % REGIONS.len()]
        );
        async move { estate.search(&q, none, 20).await }
    })
    .await?;
    let count = time(options.samples, |i| {
        let f = ResourceFilter {
            region: Some(REGIONS[i % REGIONS.len()].into()),
            resource_type: Some("ec2:instance".into()),
            ..ResourceFilter::default()
        };
        async move { estate.count(&f).await }
    })
    .await?;
    let facet = time(options.samples.min(200), |_| async {
        estate.stats(&StatsBy::Service, none).await
    })
    .await?;
    let engine_dir = dir.join("keyword").join("qdrant");
    let embedded = !options.store.is_remote();
    service.flush().await?;
    let store_bytes = embedded.then(|| super::chat::dir_size(&engine_dir));
    let mut resyncs = Vec::with_capacity(options.resyncs);
    for round in 1..=options.resyncs {
        let t = Instant::now();
        for chunk in all.chunks(1000) {
            let changed = chunk.iter().cloned().map(|r| resynced(r, round)).collect();
            service.estate.bulk_upsert(changed).await?;
        }
        let per_second = options.resources as f64 / t.elapsed().as_secs_f64();
        service.flush().await?;
        resyncs.push(ResyncRound {
            per_second,
            store_bytes: super::chat::dir_size(&engine_dir),
            engine_wal_bytes: engine_wal_bytes(&engine_dir),
        });
        progress(round, options.resyncs);
    }
    service.shutdown().await?;
    let store_bytes_after_reopen = if embedded && options.resyncs > 0 {
        let service = StorageService::open_with_embedder(config(dir, &options.store, "keyword")?, None).await?;
        service.shutdown().await?;
        Some(super::chat::dir_size(&engine_dir))
    } else {
        None
    };

    let (ingest_with_embeddings_per_second, semantic_search_10k) = match &options.model_dir {
        Some(model) => {
            let bert: Arc<dyn Embedder> = Arc::new(BertEmbedder::load(model)?);
            let service =
                StorageService::open_with_embedder(config(dir, &options.store, "semantic")?, Some(bert)).await?;
            let t = Instant::now();
            service
                .estate
                .bulk_upsert(all.iter().take(1000).cloned().collect())
                .await?;
            let with_embeddings = 1000.0 / t.elapsed().as_secs_f64();
            // Fill to 10,000 with real embeddings would take minutes: the rest of the vectors are
            // the real model's too, embedded in the same batched path (this is the slow part).
            let target = 10_000.min(all.len());
            for (n, chunk) in all[1000.min(all.len())..target].chunks(1000).enumerate() {
                service.estate.bulk_upsert(chunk.to_vec()).await?;
                progress((n + 2) * 1000, target);
            }
            let estate = &service.estate;
            let queries = ["production database", "serverless functions", "storage bucket for logs"];
            for q in queries {
                estate.search(q, none, 10).await?; // warm the query cache
            }
            let semantic = time(options.samples, |i| async move {
                estate.search(queries[i % 3], none, 10).await
            })
            .await?;
            service.shutdown().await?;
            (Some(with_embeddings), Some(semantic))
        }
        None => (None, None),
    };
    Ok(EstateBenchReport {
        store: options.store.describe(),
        resources: options.resources,
        ingest_keyword_only_per_second,
        reimport_unchanged_per_second,
        filtered_search,
        filtered_search_no_match,
        keyword_search,
        count,
        facet,
        store_bytes,
        resyncs,
        store_bytes_after_reopen,
        ingest_with_embeddings_per_second,
        semantic_search_10k,
    })
}

/// `resource` as sync number `round` finds it: its metadata carries the round, so every
/// resource is changed and rewritten.
fn resynced(mut resource: AWSResource, round: usize) -> AWSResource {
    if let Some(serde_json::Value::Object(metadata)) = resource.metadata.as_mut() {
        metadata.insert("observed_in_sync".into(), round.into());
    }
    resource
}

/// Bytes on disk of the engine's WAL folders under the store's engine folder.
fn engine_wal_bytes(engine_dir: &Path) -> u64 {
    std::fs::read_dir(engine_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|collection| super::chat::dir_size(&collection.path().join("wal")))
        .sum()
}
