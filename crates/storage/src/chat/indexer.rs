//! The background worker that adds dense vectors to messages, off the append path.
//!
//! `append` stores a message with its keyword vector and queues its id. The worker first scans
//! for messages that lack a vector in the model's slot (`has_vector`: messages left by a crash,
//! a restart or a process without a model), then serves the queue: it opens the sealed
//! contents, embeds them in batches and writes the rotated vectors. The scan runs once per
//! start, not per batch: it visits every point, which would make a busy store's appends pay
//! for it. [`DenseIndexer::wait`] returns once every message appended before the call has its
//! vector.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::schema::{self, MESSAGES};
use crate::crypto::Sealer;
use crate::embed::{DenseSpace, EmbedError};
use crate::error::{Result, StorageError};
use crate::store::{Condition, Filter, PointId, PointVectors, Record, ScrollRequest, VectorData, VectorStore};

/// Messages embedded per batch.
pub(crate) const BATCH: usize = 32;
/// How long the worker lets a partial batch fill up.
const GATHER: Duration = Duration::from_millis(20);
/// Longest pause after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default)]
struct Progress {
    /// Highest request generation fully served.
    done: u64,
    /// The last failure and the generation it was serving.
    failed: Option<(u64, String)>,
}

struct Inner {
    store: Arc<dyn VectorStore>,
    sealer: Arc<Sealer>,
    space: Arc<DenseSpace>,
    requested: AtomicU64,
    wake: Notify,
    progress: watch::Sender<Progress>,
    stop: AtomicBool,
    /// Messages whose content cannot be opened (tampered): never retried in this process.
    unreadable: Mutex<HashSet<PointId>>,
    /// Ids appended since the start, waiting for a vector.
    queue: Mutex<VecDeque<PointId>>,
    /// The start-up scan for messages without a vector is still to do.
    scan_pending: AtomicBool,
}

/// Handle to the running worker.
pub(crate) struct DenseIndexer {
    inner: Arc<Inner>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for DenseIndexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseIndexer")
            .field("slot", &self.inner.space.slot())
            .finish_non_exhaustive()
    }
}

impl DenseIndexer {
    /// The indexer; with `start`, the worker runs and its first pass embeds whatever an earlier
    /// process left without a vector (without, only [`DenseIndexer::catch_up`] embeds).
    pub(crate) fn new(store: Arc<dyn VectorStore>, sealer: Arc<Sealer>, space: Arc<DenseSpace>, start: bool) -> Self {
        let (progress, _) = watch::channel(Progress::default());
        let inner = Arc::new(Inner {
            store,
            sealer,
            space,
            requested: AtomicU64::new(1),
            wake: Notify::new(),
            progress,
            stop: AtomicBool::new(false),
            unreadable: Mutex::new(HashSet::new()),
            queue: Mutex::new(VecDeque::new()),
            scan_pending: AtomicBool::new(true),
        });
        let task = start.then(|| tokio::spawn(run(inner.clone())));
        DenseIndexer {
            inner,
            task: tokio::sync::Mutex::new(task),
        }
    }

    /// Queue messages for embedding.
    pub(crate) fn enqueue(&self, ids: impl IntoIterator<Item = PointId>) {
        self.inner.queue.lock().unwrap_or_else(|p| p.into_inner()).extend(ids);
        self.notify();
    }

    /// Wake the worker; returns the request generation it will serve.
    fn notify(&self) -> u64 {
        let generation = self.inner.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.wake.notify_one();
        generation
    }

    /// Wait until every message stored before this call has its dense vector.
    ///
    /// # Errors
    /// [`EmbedError::Indexer`] when the worker's latest attempt failed (it keeps retrying).
    pub(crate) async fn wait(&self) -> Result<()> {
        if self.task.lock().await.is_none() {
            return Ok(());
        }
        let target = self.notify();
        let mut rx = self.inner.progress.subscribe();
        loop {
            {
                let p = rx.borrow_and_update();
                if p.done >= target {
                    return Ok(());
                }
                if let Some((generation, reason)) = &p.failed {
                    if *generation >= target {
                        return Err(StorageError::Embedding(EmbedError::Indexer(reason.clone())));
                    }
                }
            }
            if rx.changed().await.is_err() {
                return Err(StorageError::ShutDown);
            }
        }
    }

    /// Messages still waiting for a dense vector.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn pending(&self) -> Result<u64> {
        Ok(self
            .inner
            .store
            .count(MESSAGES, Some(missing(self.inner.space.slot())))
            .await?)
    }

    /// Drain the queue (best effort: a failing embedder is logged, not waited for), then stop.
    pub(crate) async fn shutdown(&self) {
        if self.task.lock().await.is_none() {
            return;
        }
        if let Err(e) = self.wait().await {
            tracing::warn!(error = %e, "messages left without dense vectors; they are embedded on the next start");
        }
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        if let Some(task) = self.task.lock().await.take() {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "dense indexer task ended abnormally");
            }
        }
    }

    /// Embed every pending message now, on the caller's task, reporting `(done, total)`.
    ///
    /// # Errors
    /// Store, crypto and embedding errors.
    pub(crate) async fn catch_up(&self, progress: &(dyn Fn(u64, u64) + Send + Sync)) -> Result<u64> {
        let total = self.pending().await?;
        let mut done = 0;
        progress(0, total);
        loop {
            let n = embed_missing_batch(&self.inner).await?;
            if n == 0 {
                return Ok(done);
            }
            done += n as u64;
            progress(done.min(total), total.max(done));
        }
    }
}

impl Drop for DenseIndexer {
    /// A service dropped without `shutdown()` must not leave a worker holding the store (and
    /// its data-dir lock): stop it. Messages it had not embedded are found on the next start.
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        if let Some(task) = self.task.get_mut().take() {
            task.abort();
        }
    }
}

/// Messages without a vector in `slot`.
pub(crate) fn missing(slot: &str) -> Filter {
    Filter::default().and_not(Condition::HasVector(slot.to_string()))
}

async fn run(inner: Arc<Inner>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let target = inner.requested.load(Ordering::SeqCst);
        match drain(&inner).await {
            Ok(()) => {
                backoff = Duration::from_millis(500);
                inner.progress.send_modify(|p| {
                    p.done = p.done.max(target);
                    p.failed = None;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "background embedding failed");
                inner.progress.send_modify(|p| p.failed = Some((target, e.to_string())));
                if inner.stop.load(Ordering::SeqCst) {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = inner.wake.notified() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        if inner.requested.load(Ordering::SeqCst) == target {
            inner.wake.notified().await;
        }
    }
}

async fn drain(inner: &Inner) -> Result<()> {
    if inner.scan_pending.load(Ordering::SeqCst) {
        while embed_missing_batch(inner).await? > 0 {
            if inner.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
        }
        inner.scan_pending.store(false, Ordering::SeqCst);
    }
    loop {
        // A short pause when fewer than a batch wait: appends arriving in a burst are embedded
        // together instead of one engine write each.
        let queued = inner.queue.lock().unwrap_or_else(|p| p.into_inner()).len();
        if queued > 0 && queued < BATCH && !inner.stop.load(Ordering::SeqCst) {
            tokio::time::sleep(GATHER).await;
        }
        // Peek, embed, then pop: a failed batch stays queued for the retry.
        let batch: Vec<PointId> = {
            let queue = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.iter().take(BATCH).copied().collect()
        };
        if batch.is_empty() || inner.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        embed_queued(inner, &batch).await?;
        inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..batch.len());
    }
}

/// Embed these queued messages unless they already have a vector (the start-up scan may
/// have done them) or are gone.
async fn embed_queued(inner: &Inner, ids: &[PointId]) -> Result<()> {
    let slot = inner.space.slot();
    let records = inner.store.retrieve(MESSAGES, ids.to_vec(), true).await?;
    let todo: Vec<Record> = records.into_iter().filter(|r| !r.vectors.contains_key(slot)).collect();
    embed_records(inner, &todo).await?;
    Ok(())
}

/// Embed one batch of messages lacking a vector (found by a scan); returns how many were
/// handled.
async fn embed_missing_batch(inner: &Inner) -> Result<usize> {
    let slot = inner.space.slot().to_string();
    let mut filter = missing(&slot);
    let skipped: Vec<PointId> = inner
        .unreadable
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect();
    if !skipped.is_empty() {
        filter = filter.and_not(Condition::HasId(skipped));
    }
    let page = inner
        .store
        .scroll(
            MESSAGES,
            ScrollRequest {
                filter: Some(filter),
                limit: BATCH,
                ..ScrollRequest::default()
            },
        )
        .await?;
    if page.records.is_empty() {
        return Ok(0);
    }
    embed_records(inner, &page.records).await?;
    Ok(page.records.len())
}

/// Open, embed and write the vectors of these message records.
async fn embed_records(inner: &Inner, records: &[Record]) -> Result<()> {
    let slot = inner.space.slot().to_string();
    let mut ids = Vec::with_capacity(records.len());
    let mut texts = Vec::with_capacity(records.len());
    for record in records {
        match schema::message_from_record(record, &inner.sealer) {
            Ok(m) => {
                ids.push(m.id);
                texts.push(m.content);
            }
            Err(e) => {
                tracing::error!(id = %record.id, error = %e, "message cannot be opened; not embedded");
                inner
                    .unreadable
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(record.id);
            }
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let vectors = inner.space.documents(&texts).await?;
    let updates: Vec<PointVectors> = ids
        .iter()
        .zip(vectors)
        .map(|(id, v)| PointVectors {
            id: *id,
            vectors: [(slot.clone(), VectorData::Dense(v))].into_iter().collect(),
        })
        .collect();
    let written = updates.len();
    if let Err(batch_error) = inner.store.update_vectors(MESSAGES, updates.clone()).await {
        // A message deleted since the scan fails the whole batch: write the rest one by one.
        tracing::debug!(error = %batch_error, "batch vector update failed; retrying per message");
        let mut any = false;
        for update in updates {
            match inner.store.update_vectors(MESSAGES, vec![update]).await {
                Ok(()) => any = true,
                Err(e) => tracing::debug!(error = %e, "message vanished before its vector was written"),
            }
        }
        if !any {
            return Err(batch_error.into());
        }
    }
    tracing::trace!(written, "dense vectors written");
    Ok(())
}
