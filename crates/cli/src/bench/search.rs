//! The search workload behind `cloudops-storage bench --search`: embedding speed of the real
//! model, and keyword, semantic and hybrid search latency over a filled store.
//!
//! Filling 100,000 messages with real BERT vectors would take over twenty minutes on two
//! cores, so the store's dense vectors come from [`SyntheticEmbedder`] (seeded random unit
//! vectors of the model's dimension: the engine does the same work for them). The real model
//! is timed on its own, and the hybrid figure adds a real query embedding to each search.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::chat::Latency;
use super::target::BenchStore;
use anyhow::Result;
use cloudops_storage_service::StorageService;
use cloudops_storage_service::{BertEmbedder, EmbedError, Embedder};
use cloudops_storage_service::{ConfigKey, StorageConfig};
use cloudops_storage_service::{ContextOptions, NewMessage, Role, SearchMode, SearchOptions};

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct SearchBenchOptions {
    /// Messages stored.
    pub messages: usize,
    /// Messages per conversation.
    pub messages_per_conversation: usize,
    /// Conversations per user.
    pub conversations_per_user: usize,
    /// Timed searches per mode.
    pub samples: usize,
    /// The real model, for embedding speed and hybrid query embedding (skipped without it).
    pub model_dir: Option<PathBuf>,
    /// Where the store lives (embedded, or a server).
    pub store: BenchStore,
}

impl Default for SearchBenchOptions {
    fn default() -> Self {
        SearchBenchOptions {
            messages: 100_000,
            messages_per_conversation: 20,
            conversations_per_user: 50,
            samples: 500,
            model_dir: None,
            store: BenchStore::from_config(&StorageConfig::default()),
        }
    }
}

/// Speed of the real embedding model.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EmbeddingSpeed {
    /// Model id.
    pub model_id: String,
    /// Texts per second embedding 256 chat-length texts in batches of 32.
    pub texts_per_second_batch32: f64,
    /// One short query, not cached.
    pub single_query: Latency,
}

/// What the search bench measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SearchBenchReport {
    /// Where the store lived (`embedded`, or the server and its replication).
    pub store: String,
    /// Messages stored.
    pub messages: usize,
    /// Users (each search is scoped to one).
    pub users: usize,
    /// True: stored dense vectors are synthetic (see module docs).
    pub synthetic_dense_vectors: bool,
    /// Time to fill the store (appends, keyword vectors included).
    pub fill_seconds: f64,
    /// `append` latency while the background indexer runs.
    pub append: Latency,
    /// Time until the background indexer had written every dense vector.
    pub dense_index_seconds: f64,
    /// `search_conversations` keyword mode (query → grouped, unsealed results).
    pub keyword: Latency,
    /// Semantic mode, query embedding excluded (served from the cache).
    pub semantic: Latency,
    /// Hybrid mode, query embedding excluded.
    pub hybrid_without_embedding: Latency,
    /// Hybrid mode plus a real, uncached model embedding of a fresh query per search.
    pub hybrid_with_embedding: Option<Latency>,
    /// `context_for_prompt` (5 pairs from the user's other conversations), query embedding
    /// excluded (served from the cache).
    pub prompt_context: Latency,
    /// The real model's speed.
    pub embedding: Option<EmbeddingSpeed>,
    /// The engine's own floor on the same points (embedded stores; see `floor`).
    pub floor: Option<super::floor::EngineFloor>,
}

/// Seeded random unit vectors: a stand-in for a model's output in the latency benchmark
/// only (named as such; it knows nothing of meaning).
#[derive(Debug)]
pub(crate) struct SyntheticEmbedder {
    dim: usize,
}

impl SyntheticEmbedder {
    /// Vectors of `dim` values.
    pub(crate) fn new(dim: usize) -> Self {
        SyntheticEmbedder { dim }
    }
}

#[async_trait::async_trait]
impl Embedder for SyntheticEmbedder {
    fn model_id(&self) -> &str {
        "synthetic/benchmark"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut rng = rand::rngs::StdRng::seed_from_u64(text_seed(t));
                let mut v: Vec<f32> = (0..self.dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                normalize(&mut v);
                v
            })
            .collect())
    }
}

/// Message text with a Zipf-like word distribution: the bench's 40 cloud words spread over a
/// 20,000-word synthetic vocabulary, so that, as in real text, most words are rare and a few
/// are everywhere (with only 40 words, every message would hold every query word).
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new() -> Self {
        let mut words: Vec<String> = super::chat::WORDS.iter().map(|w| w.to_string()).collect();
        words.extend((0..20_000).map(|i| format!("term{i}")));
        let mut total = 0.0;
        let cumulative = (1..=words.len())
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Vocabulary { words, cumulative }
    }

    fn word(&self, rng: &mut impl Rng) -> &str {
        let x = rng.gen_range(0.0..self.cumulative.last().copied().unwrap_or(1.0));
        let i = self.cumulative.partition_point(|c| *c < x);
        &self.words[i.min(self.words.len() - 1)]
    }

    fn message(&self, rng: &mut impl Rng) -> String {
        let n = rng.gen_range(20..60);
        (0..n).map(|_| self.word(rng)).collect::<Vec<_>>().join(" ")
    }
}

const QUERIES: &[&str] = &[
    "production database latency",
    "lambda timeout error",
    "reduce cost of instance",
    "permission denied for role",
    "snapshot of volume",
    "scaling policy alarm",
    "throttling quota increase",
    "deploy cloudformation stack",
];

/// Run the search workload in `dir` (a fresh, empty folder).
///
/// # Errors
/// Any storage or embedding error.
pub(crate) async fn run_search_bench(
    dir: &Path,
    options: &SearchBenchOptions,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<SearchBenchReport> {
    let bert = match &options.model_dir {
        Some(d) => Some(Arc::new(BertEmbedder::load(d)?)),
        None => None,
    };
    let embedding = match &bert {
        Some(b) => Some(embedding_speed(b).await?),
        None => None,
    };
    let dim = bert.as_ref().map_or(384, |b| b.dim());
    let mut config = StorageConfig::builder()
        .with_data_dir(dir.join("data"))
        .with_config(ConfigKey::KeySource, "file")
        .with_config(ConfigKey::KeyFile, dir.join("bench.key").display().to_string())
        .build()?;
    options.store.apply(&mut config, "search");
    let service = StorageService::open_with_embedder(config, Some(Arc::new(SyntheticEmbedder::new(dim)))).await?;
    let per_conv = options.messages_per_conversation.max(1);
    let conversations = options.messages.div_ceil(per_conv).max(1);
    let users = conversations.div_ceil(options.conversations_per_user.max(1)).max(1);
    let mut contexts = Vec::with_capacity(conversations);
    for c in 0..conversations {
        let ctx = service
            .chat
            .create_conversation(
                &format!("user-{}", c % users),
                &format!("Conversation {c}"),
                serde_json::json!({}),
            )
            .await?;
        contexts.push(ctx);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let vocabulary = Vocabulary::new();
    let mut append = Vec::with_capacity(options.messages);
    let fill = Instant::now();
    for i in 0..options.messages {
        let content = vocabulary.message(&mut rng);
        let role = if i % 2 == 0 { Role::User } else { Role::Assistant };
        let t = Instant::now();
        service
            .chat
            .append(&contexts[i % conversations], NewMessage::new(role, content))
            .await?;
        append.push(t.elapsed());
        if i % 1000 == 0 {
            progress("filling", i, options.messages);
        }
    }
    let fill_seconds = fill.elapsed().as_secs_f64();
    progress("filling", options.messages, options.messages);
    let t = Instant::now();
    service.chat.wait_for_index().await?;
    let dense_index_seconds = fill_seconds + t.elapsed().as_secs_f64();
    // Searches on a settled store (background compactions done), as the engine floor's are.
    service.flush().await?;

    let time_mode = |mode: SearchMode| {
        let service = &service;
        async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(5);
            // Warm the query cache: these figures exclude query embedding.
            for q in QUERIES {
                service
                    .chat
                    .search_conversations(
                        "user-0",
                        q,
                        &SearchOptions {
                            mode,
                            ..SearchOptions::default()
                        },
                    )
                    .await?;
            }
            let mut samples = Vec::with_capacity(options.samples);
            for i in 0..options.samples {
                let user = format!("user-{}", rng.gen_range(0..users));
                let opts = SearchOptions {
                    mode,
                    ..SearchOptions::default()
                };
                let t = Instant::now();
                service
                    .chat
                    .search_conversations(&user, QUERIES[i % QUERIES.len()], &opts)
                    .await?;
                samples.push(t.elapsed());
            }
            Result::<Latency>::Ok(Latency::from_samples(samples))
        }
    };
    progress("searching", 0, 4);
    let keyword = time_mode(SearchMode::Keyword).await?;
    progress("searching", 1, 4);
    let semantic = time_mode(SearchMode::Semantic).await?;
    progress("searching", 2, 4);
    let hybrid_without_embedding = time_mode(SearchMode::Hybrid).await?;
    progress("searching", 3, 4);
    let prompt_context = time_prompt_context(&service, &contexts, users, options.samples).await?;
    progress("searching", 4, 4);
    let hybrid_with_embedding = match &bert {
        Some(bert) => {
            let mut samples = Vec::with_capacity(options.samples);
            for i in 0..options.samples {
                // A fresh query each time: neither cache helps.
                let query = format!("{} {i}", QUERIES[i % QUERIES.len()]);
                let user = format!("user-{}", i % users);
                let t = Instant::now();
                bert.embed(std::slice::from_ref(&query)).await?;
                service
                    .chat
                    .search_conversations(&user, &query, &SearchOptions::default())
                    .await?;
                samples.push(t.elapsed());
            }
            Some(Latency::from_samples(samples))
        }
        None => None,
    };
    service.shutdown().await?;
    let floor = if options.store.is_remote() {
        None
    } else {
        Some(
            super::floor::measure(&dir.join("data"), &dir.join("floor"), options.samples, |done, total| {
                progress("engine floor", done, total)
            })
            .await?,
        )
    };
    Ok(SearchBenchReport {
        store: options.store.describe(),
        messages: options.messages,
        users,
        synthetic_dense_vectors: true,
        fill_seconds,
        append: Latency::from_samples(append),
        dense_index_seconds,
        keyword,
        semantic,
        hybrid_without_embedding,
        hybrid_with_embedding,
        prompt_context,
        embedding,
        floor,
    })
}

/// `context_for_prompt` for a random user, from their first conversation, with the default
/// five pairs; the queries' embeddings are cached first, so embedding is excluded.
async fn time_prompt_context(
    service: &StorageService,
    contexts: &[String],
    users: usize,
    samples: usize,
) -> Result<Latency> {
    // Conversation `c` belongs to user `c % users`, so `contexts[u]` is user `u`'s first.
    let current = |user: usize| &contexts[user.min(contexts.len() - 1)];
    for q in QUERIES {
        service
            .chat
            .context_for_prompt("user-0", current(0), q, ContextOptions::default())
            .await?;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut timed = Vec::with_capacity(samples);
    for i in 0..samples {
        let user = rng.gen_range(0..users);
        let t = Instant::now();
        service
            .chat
            .context_for_prompt(
                &format!("user-{user}"),
                current(user),
                QUERIES[i % QUERIES.len()],
                ContextOptions::default(),
            )
            .await?;
        timed.push(t.elapsed());
    }
    Ok(Latency::from_samples(timed))
}

async fn embedding_speed(bert: &Arc<BertEmbedder>) -> Result<EmbeddingSpeed> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let texts: Vec<String> = (0..256)
        .map(|_| {
            let words = rng.gen_range(8..40);
            (0..words)
                .map(|_| super::chat::WORDS[rng.gen_range(0..super::chat::WORDS.len())])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    bert.embed(&texts[..32]).await?; // warm-up
    let t = Instant::now();
    bert.embed(&texts).await?;
    let texts_per_second_batch32 = texts.len() as f64 / t.elapsed().as_secs_f64();
    let mut single = Vec::new();
    for i in 0..50 {
        let q = format!("why is my production database slow {i}");
        let t = Instant::now();
        bert.embed(&[q]).await?;
        single.push(t.elapsed());
    }
    Ok(EmbeddingSpeed {
        model_id: bert.model_id().to_string(),
        texts_per_second_batch32,
        single_query: Latency::from_samples(single),
    })
}

/// Scale `v` to unit length (zero vectors stay zero).
/// A seed from a text (FNV-1a), so equal texts get equal stand-in vectors.
pub(crate) fn text_seed(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Scale `v` to unit length.
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
