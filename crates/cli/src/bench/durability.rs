//! The durability workload behind `cloudops-storage bench --sync`: appends under each
//! `[store] sync` setting with one writer and with eight concurrent writers, so the price of
//! an `fsync` per acknowledged write, and how much group commit wins back, are measured.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::chat::{keyword_only_config, Latency, WORDS};
use super::target::BenchStore;
use anyhow::Result;
use cloudops_storage_service::{NewMessage, Role, StorageService, StoreSync};

/// Concurrent writers of the second run of each setting.
const MANY_WRITERS: usize = 8;

/// One setting with one writer count.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SyncRun {
    /// `checkpoint` or `always`.
    pub sync: String,
    /// Concurrent writers (tasks), each appending to its own conversations.
    pub writers: usize,
    /// Messages appended in all.
    pub messages: usize,
    /// Each append, as its writer saw it.
    pub append: Latency,
    /// Messages per second over the run (all writers together).
    pub messages_per_second: f64,
}

/// What the durability bench measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SyncBenchReport {
    /// Where the store lived.
    pub store: String,
    /// Every setting × writer count.
    pub runs: Vec<SyncRun>,
}

/// Append `messages` under each setting, with one writer and with eight, each run on a fresh
/// store in its own folder under `dir`.
///
/// # Errors
/// Storage errors.
pub(crate) async fn run_sync_bench(
    dir: &Path,
    messages: usize,
    store: &BenchStore,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<SyncBenchReport> {
    let mut runs = Vec::new();
    let settings = [StoreSync::Checkpoint, StoreSync::Always];
    let total = settings.len() * 2;
    for sync in settings {
        for writers in [1, MANY_WRITERS] {
            progress("sync runs", runs.len(), total);
            let name = format!("sync-{sync}-{writers}");
            let mut config = keyword_only_config(&dir.join(&name), store, &name)?;
            config.store.sync = sync;
            let service = Arc::new(StorageService::open(config).await?);
            let per_writer = messages.div_ceil(writers);
            let start = Instant::now();
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let service = service.clone();
                    tokio::spawn(async move { append_as(&service, w, per_writer).await })
                })
                .collect();
            let mut samples = Vec::with_capacity(per_writer * writers);
            for task in tasks {
                samples.extend(task.await??);
            }
            let seconds = start.elapsed().as_secs_f64();
            let appended = samples.len();
            service.shutdown().await?;
            runs.push(SyncRun {
                sync: sync.to_string(),
                writers,
                messages: appended,
                append: Latency::from_samples(samples),
                messages_per_second: appended as f64 / seconds.max(1e-9),
            });
        }
    }
    progress("sync runs", total, total);
    Ok(SyncBenchReport {
        store: store.describe(),
        runs,
    })
}

/// One writer's appends: `count` messages over ten conversations of its own user.
async fn append_as(service: &StorageService, writer: usize, count: usize) -> Result<Vec<std::time::Duration>> {
    let user = format!("writer-{writer}");
    let mut contexts = Vec::new();
    for c in 0..10 {
        contexts.push(
            service
                .chat
                .create_conversation(&user, &format!("Sync bench {c}"), serde_json::json!({}))
                .await?,
        );
    }
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let content = (0..30)
            .map(|w| WORDS[(i * 17 + w * 7 + writer) % WORDS.len()])
            .collect::<Vec<_>>()
            .join(" ");
        let role = if i % 2 == 0 { Role::User } else { Role::Assistant };
        let t = Instant::now();
        service
            .chat
            .append(&contexts[i % contexts.len()], NewMessage::new(role, content))
            .await?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}
