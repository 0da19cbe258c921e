//! The background worker that adds dense vectors to messages, off the append path.
//!
//! `append` stores a message with its keyword vector and queues its id. The worker first scans
//! for messages that lack a vector in the model's slot (`has_vector`: messages left by a crash,
//! a restart or a process without a model), then serves the queue: it opens the sealed
//! contents, embeds them in batches and writes the rotated vectors. The scan runs once per
//! start (and once after each bulk import, see [`DenseIndexer::rescan`]), not per batch: it
//! walks the collection with a cursor, which would make a busy store's appends pay for it if
//! it ran per batch. [`DenseIndexer::wait`] returns once every message appended before the
//! call has its vector.
//!
//! Bulk imports never wait on the model: they [`DenseIndexer::pause`] the worker while they
//! write (so the embedding does not compete with them for the CPU), then ask for a rescan, and
//! the worker embeds their messages afterwards, in bounded batches. Shutdown drains only a
//! small queue of appended messages ([`SHUTDOWN_DRAIN_LIMIT`]); a larger backlog is left to the
//! next start's scan, so closing the app after an import is not a wait of minutes.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::schema::{self, MESSAGES};
use crate::crypto::Sealer;
use crate::embed::{DenseSpace, EmbedError};
use crate::error::{Result, StorageError};
use crate::store::{
    Condition, Filter, PointId, PointVectors, Record, ScrollRequest, VectorData, VectorSelection, VectorStore,
};

/// Messages embedded per batch.
pub(crate) const BATCH: usize = 32;
/// How long the worker lets a partial batch fill up.
const GATHER: Duration = Duration::from_millis(20);
/// Longest pause after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Shutdown embeds the queued messages when at most this many wait (a few seconds of work);
/// a larger backlog is embedded by the next start's scan instead of delaying the exit.
pub(crate) const SHUTDOWN_DRAIN_LIMIT: usize = 256;

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
    /// Where the running scan continues.
    scan_cursor: Mutex<ScanCursor>,
    /// Bulk imports in progress: while non-zero the worker embeds nothing.
    paused: AtomicUsize,
    /// Shutting down: serve the queue, leave the scan to the next start.
    closing: AtomicBool,
}

/// Where the scan for messages without a vector continues, in id order.
#[derive(Debug, Default)]
struct ScanCursor {
    at: Option<PointId>,
    /// Bumped by every rescan: a page that began before one must not move the cursor past
    /// messages the rescan asked for.
    generation: u64,
}

/// What one pass of the worker ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Everything requested so far has its vector.
    Done,
    /// Stopped early: paused by a bulk import, or shutting down.
    Interrupted,
}

/// While held, the background worker embeds nothing (a bulk import writes at full speed);
/// dropping it lets the worker go on.
pub(crate) struct IndexingPause {
    inner: Arc<Inner>,
}

impl Drop for IndexingPause {
    fn drop(&mut self) {
        self.inner.paused.fetch_sub(1, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }
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
            scan_cursor: Mutex::new(ScanCursor::default()),
            paused: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
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

    /// Stop embedding until the returned guard is dropped (a batch in flight finishes).
    pub(crate) fn pause(&self) -> IndexingPause {
        self.inner.paused.fetch_add(1, Ordering::SeqCst);
        IndexingPause {
            inner: self.inner.clone(),
        }
    }

    /// Scan the collection again for messages without a vector (after a bulk import that
    /// queued none), from its start.
    pub(crate) fn rescan(&self) {
        {
            let mut cursor = self.inner.scan_cursor.lock().unwrap_or_else(|p| p.into_inner());
            cursor.at = None;
            cursor.generation += 1;
            self.inner.scan_pending.store(true, Ordering::SeqCst);
        }
        self.notify();
    }

    /// True when nothing is known to wait for a vector: no scan to do, an empty queue.
    pub(crate) fn idle(&self) -> bool {
        !self.inner.scan_pending.load(Ordering::SeqCst)
            && self.inner.queue.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
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

    /// Messages still waiting for a dense vector (within `scope`, when given).
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn pending(&self, scope: Option<Filter>) -> Result<u64> {
        let mut filter = missing(self.inner.space.slot());
        if let Some(scope) = scope {
            filter = filter.and(Condition::Filter(Box::new(scope)));
        }
        Ok(self.inner.store.count(MESSAGES, Some(filter)).await?)
    }

    /// Stop the worker. A small queue of appended messages is embedded first (best effort: a
    /// failing embedder is logged, not waited for), so a one-shot `chat add` is found by
    /// meaning in the next process at once; a running scan or a larger backlog (an import) is
    /// left to the next start, which finds those messages by their missing vector.
    pub(crate) async fn shutdown(&self) {
        if self.task.lock().await.is_none() {
            return;
        }
        self.inner.closing.store(true, Ordering::SeqCst);
        let queued = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner()).len();
        if queued <= SHUTDOWN_DRAIN_LIMIT && self.inner.paused.load(Ordering::SeqCst) == 0 {
            if let Err(e) = self.wait().await {
                tracing::warn!(error = %e, "messages left without dense vectors; they are embedded on the next start");
            }
        } else {
            tracing::info!(queued, "leaving messages without dense vectors to the next start");
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
    pub(crate) async fn catch_up(&self, progress: crate::progress::ProgressFn<'_>) -> Result<u64> {
        let progress = |done: u64, total: u64| {
            crate::progress::report(progress, crate::progress::Phase::EmbedMessages, done, total)
        };
        let total = self.pending(None).await?;
        let mut done = 0;
        let mut cursor = None;
        progress(0, total);
        loop {
            let (n, next) = embed_missing_page(&self.inner, cursor).await?;
            done += n as u64;
            if n > 0 {
                progress(done.min(total), total.max(done));
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(done),
            }
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
            Ok(Pass::Done) => {
                backoff = Duration::from_millis(500);
                inner.progress.send_modify(|p| {
                    p.done = p.done.max(target);
                    p.failed = None;
                });
            }
            Ok(Pass::Interrupted) => {
                if inner.stop.load(Ordering::SeqCst) {
                    return;
                }
                // Paused by a bulk import: its guard wakes us when it is dropped.
                inner.wake.notified().await;
                continue;
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

/// Whether the worker must stop before its next batch.
fn interrupted(inner: &Inner) -> bool {
    inner.stop.load(Ordering::SeqCst) || inner.paused.load(Ordering::SeqCst) > 0
}

async fn drain(inner: &Inner) -> Result<Pass> {
    while inner.scan_pending.load(Ordering::SeqCst) && !inner.closing.load(Ordering::SeqCst) {
        if interrupted(inner) {
            return Ok(Pass::Interrupted);
        }
        let (at, generation) = {
            let cursor = inner.scan_cursor.lock().unwrap_or_else(|p| p.into_inner());
            (cursor.at, cursor.generation)
        };
        let (_, next) = embed_missing_page(inner, at).await?;
        let mut cursor = inner.scan_cursor.lock().unwrap_or_else(|p| p.into_inner());
        if cursor.generation == generation {
            cursor.at = next;
            if next.is_none() {
                inner.scan_pending.store(false, Ordering::SeqCst);
            }
        }
    }
    loop {
        if interrupted(inner) {
            return Ok(Pass::Interrupted);
        }
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
        if batch.is_empty() {
            return Ok(Pass::Done);
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
    let records = inner
        .store
        .retrieve(MESSAGES, ids.to_vec(), VectorSelection::All)
        .await?;
    let todo: Vec<Record> = records.into_iter().filter(|r| !r.vectors.contains_key(slot)).collect();
    embed_records(inner, &todo).await?;
    Ok(())
}

/// Embed one page of messages lacking a vector, scanning in id order from `cursor`; returns
/// how many were handled and where the next page starts (`None` after the last).
async fn embed_missing_page(inner: &Inner, cursor: Option<PointId>) -> Result<(usize, Option<PointId>)> {
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
                offset: cursor,
                ..ScrollRequest::default()
            },
        )
        .await?;
    if page.records.is_empty() {
        return Ok((0, None));
    }
    embed_records(inner, &page.records).await?;
    Ok((page.records.len(), page.next_offset))
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
