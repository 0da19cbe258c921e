//! The estate's semantic search at scale, behind `cloudops-storage bench --resources N --dense`:
//! N resources with dense vectors, the vector index (HNSW) built by compaction, semantic search
//! latency, and the index's recall@10 against an exact scan of the same store.
//!
//! Embedding a million resources with the real model would take about four hours on two
//! cores, so the stored vectors come from [`LowRankEmbedder`], named as a stand-in: seeded
//! vectors spanning a 32-dimensional subspace of the model's 384 dimensions, plus a little
//! noise in all of them. Sentence embeddings are far from uniform (their intrinsic dimension
//! has been measured in the tens); uniform random vectors, the adversarial case for any
//! nearest-neighbour index, are `--dense uniform`. The engine stores, indexes and scans both
//! exactly as it does real ones.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::chat::{memory, Latency};
use super::estate::{config as resource_config, resource, time, REGIONS};
use super::search::SyntheticEmbedder;
use super::target::BenchStore;
use anyhow::{Context as _, Result};
use cloudops_storage_service::store::{
    Condition, EmbeddedStore, Filter, PointId, QueryRequest, ScrollRequest, VectorData, VectorStore,
};
use cloudops_storage_service::{EmbedError, Embedder, ResourceFilter, SearchMode, StorageService};

/// The estate collection and its live flag (the library's names).
const ESTATE: &str = "aws_estate";
const LIVE: &str = "live";
/// Dimension of the stand-in vectors (the test model's).
const DIM: usize = 384;
/// Dimension of the subspace [`LowRankEmbedder`] draws from.
const RANK: usize = 32;
/// Queries whose recall is measured.
const RECALL_QUERIES: usize = 200;

/// The shape of the stand-in vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum DenseShape {
    /// A 32-dimensional subspace plus noise ([`LowRankEmbedder`]).
    LowRank,
    /// Uniform random directions (the adversarial case).
    Uniform,
    /// The real embedding model (`--model-dir`): ~80 texts/s on two cores, so tens of
    /// thousands of resources, not a million.
    Model,
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct DenseBenchOptions {
    /// Resources stored.
    pub resources: usize,
    /// Timed searches per operation.
    pub samples: usize,
    /// Stand-in vector shape.
    pub shape: DenseShape,
    /// The model folder, for [`DenseShape::Model`].
    pub model_dir: Option<std::path::PathBuf>,
    /// Where the store lives.
    pub store: BenchStore,
}

/// What the dense estate bench measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DenseBenchReport {
    /// Where the store lived.
    pub store: String,
    /// Resources stored.
    pub resources: usize,
    /// Shape of the stand-in vectors (not the real model's: see the module docs).
    pub vectors: DenseShape,
    /// `bulk_upsert` with vectors (batches of 1,000), resources per second, compaction of the
    /// filled segments running meanwhile.
    pub ingest_per_second: f64,
    /// Seconds until every segment was compacted and indexed after the last write.
    pub index_tail_seconds: f64,
    /// Process CPU seconds (all threads) of ingest and indexing together.
    pub cpu_seconds: f64,
    /// Semantic search (the query's vector excluded: the stand-in costs microseconds), top 10.
    pub semantic: Latency,
    /// The same with a region filter (a quarter of the resources).
    pub semantic_region: Latency,
    /// Hybrid search (keyword and vector rankings fused), top 10.
    pub hybrid: Latency,
    /// Embedded stores: one exact (every live resource scored) store query, top 10.
    pub exact_scan: Option<Latency>,
    /// Embedded stores: the indexed store query, top 10, on the same queries.
    pub indexed_query: Option<Latency>,
    /// Embedded stores: mean share of the exact top 10 the indexed query found, over
    /// [`RECALL_QUERIES`] queries (midpoints of two stored vectors).
    pub recall_at_10: Option<f64>,
    /// Embedded stores: bytes on disk.
    pub store_bytes: Option<u64>,
    /// Resident memory after the searches, bytes.
    pub rss_bytes: Option<u64>,
}

/// Seeded vectors in a fixed 32-dimensional subspace, plus noise: a stand-in for a model's
/// output in this benchmark only (named as such; it knows nothing of meaning).
#[derive(Debug)]
pub(crate) struct LowRankEmbedder {
    basis: Vec<Vec<f32>>,
}

impl LowRankEmbedder {
    fn new() -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let basis = (0..RANK)
            .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
            .collect();
        LowRankEmbedder { basis }
    }
}

#[async_trait::async_trait]
impl Embedder for LowRankEmbedder {
    fn model_id(&self) -> &str {
        "synthetic/low-rank"
    }

    fn dim(&self) -> usize {
        DIM
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut rng = rand::rngs::StdRng::seed_from_u64(super::search::text_seed(t));
                // Noise about a fifth of the signal's length.
                let mut v: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-0.35f32..0.35)).collect();
                for row in &self.basis {
                    let z = rng.gen_range(-1.0f32..1.0);
                    v.iter_mut().zip(row).for_each(|(x, b)| *x += z * b);
                }
                super::search::normalize(&mut v);
                v
            })
            .collect())
    }
}

/// Process CPU time (user and system, every thread) from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start at field 3.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux for every architecture's /proc interface.
    Duration::from_millis(ticks * 10)
}

/// Run the workload in `dir` (a fresh, empty folder).
///
/// # Errors
/// Any storage error.
pub(crate) async fn run_dense_bench(
    dir: &Path,
    options: &DenseBenchOptions,
    progress: impl Fn(&str, usize, usize),
) -> Result<DenseBenchReport> {
    let embedder: Arc<dyn Embedder> = match options.shape {
        DenseShape::LowRank => Arc::new(LowRankEmbedder::new()),
        DenseShape::Uniform => Arc::new(SyntheticEmbedder::new(DIM)),
        DenseShape::Model => {
            let dir = options
                .model_dir
                .as_ref()
                .context("--dense model needs the embedding model (scripts/fetch-test-model.sh or --model-dir)")?;
            Arc::new(cloudops_storage_service::BertEmbedder::load(dir)?)
        }
    };
    let config = resource_config(dir, &options.store, "dense")?;
    let service = StorageService::open_with_embedder(config, Some(embedder)).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let (cpu, t) = (cpu_time(), Instant::now());
    let mut done = 0;
    while done < options.resources {
        let n = 1000.min(options.resources - done);
        let batch = (done..done + n).map(|i| resource(i, &mut rng)).collect();
        service.estate.bulk_upsert(batch).await?;
        done += n;
        progress("ingest", done, options.resources);
    }
    let ingest_per_second = options.resources as f64 / t.elapsed().as_secs_f64();
    progress("indexing", 0, 1);
    let t = Instant::now();
    service.optimize().await?;
    let index_tail_seconds = t.elapsed().as_secs_f64();
    progress("indexing", 1, 1);
    let cpu_seconds = (cpu_time() - cpu).as_secs_f64();

    let estate = &service.estate;
    let none = &ResourceFilter::default();
    let samples = options.samples;
    let query = |i: usize| format!("resource query {i}");
    let semantic = time(samples, |i| async move {
        estate.search_in_mode(&query(i), none, 10, SearchMode::Semantic).await
    })
    .await?;
    let semantic_region = time(samples, |i| async move {
        let q = format!("region:{} {}", REGIONS[i % REGIONS.len()], query(i));
        estate.search_in_mode(&q, none, 10, SearchMode::Semantic).await
    })
    .await?;
    let hybrid = time(samples, |i| async move {
        let q = format!("production database {}", query(i));
        estate.search_in_mode(&q, none, 10, SearchMode::Hybrid).await
    })
    .await?;
    let rss_bytes = memory().0;
    service.shutdown().await?;
    drop(service);

    let (exact_scan, indexed_query, recall_at_10, store_bytes) = if options.store.is_remote() {
        (None, None, None, None)
    } else {
        let data = dir.join("dense");
        let (exact, indexed, recall) = recall(&data, samples.min(RECALL_QUERIES), &progress).await?;
        (
            Some(exact),
            Some(indexed),
            Some(recall),
            Some(super::chat::dir_size(&data.join("qdrant"))),
        )
    };
    Ok(DenseBenchReport {
        store: options.store.describe(),
        resources: options.resources,
        vectors: options.shape,
        ingest_per_second,
        index_tail_seconds,
        cpu_seconds,
        semantic,
        semantic_region,
        hybrid,
        exact_scan,
        indexed_query,
        recall_at_10,
        store_bytes,
        rss_bytes,
    })
}

/// Exact and indexed store queries on the closed store in `data_dir`, and the indexed query's
/// recall@10. Queries are midpoints of two stored vectors (stored vectors are keyed
/// rotations of the embedder's, and a midpoint of two rotated vectors is the rotation of
/// theirs, so the queries lie where real ones would).
async fn recall(
    data_dir: &Path,
    queries: usize,
    progress: &impl Fn(&str, usize, usize),
) -> Result<(Latency, Latency, f64)> {
    let store = EmbeddedStore::open(data_dir).context("open the bench store for the recall check")?;
    let spec = store.describe(ESTATE).await?;
    let slot = spec
        .dense
        .iter()
        .find(|d| d.graph)
        .map(|d| d.name.clone())
        .context("the estate has no indexed vector slot")?;
    let page = store
        .scroll(
            ESTATE,
            ScrollRequest {
                limit: queries * 2,
                with_vectors: true,
                ..ScrollRequest::default()
            },
        )
        .await?;
    let stored: Vec<Vec<f32>> = page
        .records
        .into_iter()
        .filter_map(|r| match r.vectors.get(&slot) {
            Some(VectorData::Dense(v)) => Some(v.clone()),
            _ => None,
        })
        .collect();
    anyhow::ensure!(stored.len() >= 2, "too few stored vectors to query with");
    let live = Filter::must(Condition::Eq(LIVE.into(), true.into()));
    let (mut exact_times, mut indexed_times, mut found) = (Vec::new(), Vec::new(), 0usize);
    for (n, pair) in stored.chunks_exact(2).enumerate() {
        let mut q: Vec<f32> = pair[0].iter().zip(&pair[1]).map(|(a, b)| a + b).collect();
        super::search::normalize(&mut q);
        let ask = |exact: bool| QueryRequest {
            using: slot.clone(),
            vector: VectorData::Dense(q.clone()),
            filter: Some(live.clone()),
            limit: 10,
            with_payload: false,
            exact,
        };
        let t = Instant::now();
        let truth: Vec<PointId> = store.query(ESTATE, ask(true)).await?.iter().map(|h| h.id).collect();
        exact_times.push(t.elapsed());
        let t = Instant::now();
        let got = store.query(ESTATE, ask(false)).await?;
        indexed_times.push(t.elapsed());
        found += got.iter().filter(|h| truth.contains(&h.id)).count();
        progress("recall", n + 1, stored.len() / 2);
    }
    store.close().await?;
    let asked = (stored.len() / 2) * 10;
    Ok((
        Latency::from_samples(exact_times),
        Latency::from_samples(indexed_times),
        found as f64 / asked as f64,
    ))
}
