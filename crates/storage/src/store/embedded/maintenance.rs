//! Maintenance of the embedded store: background compaction (qdrant-edge never optimises by
//! itself) and checkpoints (flush every shard, then empty the journal) with writers paused.

use std::sync::{Arc, Mutex};

use super::engine_wal::{WalAction, WalBounds};
use super::journal::Journal;
use super::shard::{IdleReload, Shard};
use super::EmbeddedStore;
use crate::store::StoreError;

/// Points written to a collection between two background optimisations: the size of an
/// appendable segment of a collection with dense vectors, so one compaction finds about one
/// segment to convert.
pub(super) const COMPACT_AFTER_POINTS: u64 = crate::store::APPENDABLE_SEGMENT_POINTS;

impl EmbeddedStore {
    /// Start a background optimisation of `collection` once [`COMPACT_AFTER_POINTS`] points were
    /// written to it. qdrant-edge never optimises by itself, and its appendable segment's
    /// sparse posting lists cost O(list length) per inserted token (each insert walks the
    /// whole list to the left to update `max_next_weight`): at 100k messages an append took
    /// 2 ms instead of 0.2 ms. Optimising moves points into immutable segments and leaves a
    /// small appendable one. Writers go on while it runs (on the other core); checkpoints wait.
    pub(super) fn compact_if_due(&self, collection: &str, points: u64) {
        use std::sync::atomic::Ordering;
        let Ok(shard) = self.shard(collection) else {
            return;
        };
        let written = shard.written_since_optimize.fetch_add(points, Ordering::Relaxed) + points;
        if written < COMPACT_AFTER_POINTS || shard.compacting.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let result = {
                let _m = shard.maintenance.lock().unwrap_or_else(|p| p.into_inner());
                shard.written_since_optimize.store(0, Ordering::Relaxed);
                shard.optimize()
            };
            match result {
                Ok(_) => tracing::debug!(
                    collection = %shard.name,
                    ms = started.elapsed().as_millis() as u64,
                    "background compaction done"
                ),
                Err(e) => tracing::warn!(collection = %shard.name, error = %e, "background compaction failed"),
            }
            shard.compacting.store(false, Ordering::SeqCst);
        });
    }

    /// Flush every shard and empty the journal, with all writers paused.
    pub(super) async fn checkpoint(&self) -> Result<(), StoreError> {
        let shards = self.all_shards()?;
        let journal = self.journal.clone();
        let bounds = self.engine_wal_bounds;
        Self::blocking(move || paused_checkpoint(&shards, &journal, Some(bounds), |_| Ok(()))).await?;
        self.reload_idle_collections();
        Ok(())
    }

    /// The journal-size checkpoint: skipped (tried again at the next write) while a
    /// compaction runs, because a flush must wait for it and the writer would stall for
    /// the whole compaction. The journal grows past its threshold meanwhile, nothing else.
    /// `false` when it was skipped.
    pub(super) async fn checkpoint_unless_compacting(&self) -> Result<bool, StoreError> {
        let shards = self.all_shards()?;
        let journal = self.journal.clone();
        let bounds = self.engine_wal_bounds;
        let checkpointed = Self::blocking(move || {
            let mut maintenance = Vec::with_capacity(shards.len());
            for shard in &shards {
                match shard.maintenance.try_lock() {
                    Ok(guard) => maintenance.push(guard),
                    Err(std::sync::TryLockError::Poisoned(p)) => maintenance.push(p.into_inner()),
                    Err(std::sync::TryLockError::WouldBlock) => return Ok(false),
                }
            }
            checkpoint_locked(&shards, &journal, Some(bounds), |_| Ok(true))
        })
        .await?;
        if checkpointed {
            self.reload_idle_collections();
        }
        Ok(checkpointed)
    }

    /// Start a task for each collection a checkpoint wants reloaded once idle (see
    /// [`WalAction::ReloadWhenIdle`]) that has none yet. The task holds the shard weakly, so
    /// it never keeps a closed store's collection alive.
    fn reload_idle_collections(&self) {
        use std::sync::atomic::Ordering;
        let Ok(shards) = self.all_shards() else {
            return;
        };
        for shard in shards {
            if !shard.reload_when_idle.load(Ordering::SeqCst) || shard.idle_reloader.swap(true, Ordering::SeqCst) {
                continue;
            }
            let idle_after = self.engine_wal_bounds.idle_after;
            let weak = Arc::downgrade(&shard);
            drop(shard);
            tokio::spawn(reload_when_idle(weak, idle_after));
        }
    }
}

/// Wait until the collection has had no write for `idle_after`, then reload it, which frees
/// its engine WAL's mappings and index (a chat's writes come in bursts, so this runs between
/// them instead of pausing a writer). Ends when the reload is done or the store is closed.
async fn reload_when_idle(shard: std::sync::Weak<Shard>, idle_after: std::time::Duration) {
    use std::sync::atomic::Ordering;
    loop {
        let Some(seen) = shard.upgrade().map(|s| s.writes.load(Ordering::SeqCst)) else {
            return;
        };
        tokio::time::sleep(idle_after).await;
        let Some(strong) = shard.upgrade() else {
            return;
        };
        if strong.writes.load(Ordering::SeqCst) != seen {
            continue;
        }
        let name = strong.name.clone();
        let started = std::time::Instant::now();
        let result = crate::blocking::run_blocking(move || strong.reload_if_idle(seen)).await;
        if matches!(result, Ok(IdleReload::Busy)) {
            continue;
        }
        // Done, no longer needed, or failed: a later checkpoint may start another task.
        if let Some(strong) = shard.upgrade() {
            strong.idle_reloader.store(false, Ordering::SeqCst);
        }
        match result {
            Ok(IdleReload::Busy | IdleReload::NotNeeded) => return,
            Ok(IdleReload::Done(freed)) => {
                tracing::info!(
                    collection = %name,
                    freed_bytes = freed,
                    ms = started.elapsed().as_millis() as u64,
                    "reloaded the idle collection to release the engine's old WAL"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(collection = %name, error = %e, "reloading the idle collection failed");
                return;
            }
        }
    }
}

/// With every writer paused: flush all shards, empty the journal, free the engine WAL's old
/// segments as `wal_bounds` say (none with `None`), then run `then` before writers resume.
pub(super) fn paused_checkpoint<T>(
    shards: &[Arc<Shard>],
    journal: &Mutex<Journal>,
    wal_bounds: Option<WalBounds>,
    then: impl FnOnce(&[Arc<Shard>]) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Lock order everywhere: maintenance, then writer.
    let _maintenance: Vec<_> = shards
        .iter()
        .map(|s| s.maintenance.lock().unwrap_or_else(|p| p.into_inner()))
        .collect();
    checkpoint_locked(shards, journal, wal_bounds, then)
}

/// The checkpoint itself, once the caller holds every shard's maintenance lock.
pub(super) fn checkpoint_locked<T>(
    shards: &[Arc<Shard>],
    journal: &Mutex<Journal>,
    wal_bounds: Option<WalBounds>,
    then: impl FnOnce(&[Arc<Shard>]) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let _writers: Vec<_> = shards
        .iter()
        .map(|s| s.writer.lock().unwrap_or_else(|p| p.into_inner()))
        .collect();
    let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
    for shard in shards {
        shard.flush()?;
    }
    journal.truncate()?;
    if let Some(bounds) = wal_bounds {
        // Every write is in the flushed segments now: the engine's old WAL segments hold
        // nothing anyone reads (see `engine_wal`).
        for shard in shards {
            release_old_wal(shard, &bounds)?;
        }
    }
    then(shards)
}

/// Punch out a flushed shard's old WAL segments, then reload it now or mark it for a reload
/// when idle, as `bounds` say.
fn release_old_wal(shard: &Shard, bounds: &WalBounds) -> Result<(), StoreError> {
    use std::sync::atomic::Ordering;
    let old = shard.punch_old_wal()?;
    match bounds.action(&old) {
        WalAction::Keep => {}
        WalAction::ReloadWhenIdle => shard.reload_when_idle.store(true, Ordering::SeqCst),
        WalAction::ReloadNow => {
            let started = std::time::Instant::now();
            let freed = shard.reload()?;
            shard.reload_when_idle.store(false, Ordering::SeqCst);
            tracing::info!(
                collection = %shard.name,
                freed_bytes = freed,
                mapped_bytes = old.mapped,
                ms = started.elapsed().as_millis() as u64,
                "reloaded the collection to release the engine's old WAL"
            );
        }
    }
    Ok(())
}
