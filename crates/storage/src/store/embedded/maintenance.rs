//! Maintenance of the embedded store: background compaction (qdrant-edge never optimises by
//! itself) and checkpoints (flush every shard, then empty the journal) with writers paused.

use std::sync::{Arc, Mutex};

use super::journal::Journal;
use super::shard::Shard;
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
        let wal_limit = self.engine_wal_limit;
        Self::blocking(move || paused_checkpoint(&shards, &journal, wal_limit, |_| Ok(()))).await
    }

    /// The journal-size checkpoint: skipped (tried again at the next write) while a
    /// compaction runs, because a flush must wait for it and the writer would stall for
    /// the whole compaction. The journal grows past its threshold meanwhile, nothing else.
    /// `false` when it was skipped.
    pub(super) async fn checkpoint_unless_compacting(&self) -> Result<bool, StoreError> {
        let shards = self.all_shards()?;
        let journal = self.journal.clone();
        let wal_limit = self.engine_wal_limit;
        Self::blocking(move || {
            let mut maintenance = Vec::with_capacity(shards.len());
            for shard in &shards {
                match shard.maintenance.try_lock() {
                    Ok(guard) => maintenance.push(guard),
                    Err(std::sync::TryLockError::Poisoned(p)) => maintenance.push(p.into_inner()),
                    Err(std::sync::TryLockError::WouldBlock) => return Ok(false),
                }
            }
            checkpoint_locked(&shards, &journal, wal_limit, |_| Ok(true))
        })
        .await
    }
}

/// With every writer paused: flush all shards, empty the journal, reload a shard whose engine
/// WAL holds more than `engine_wal_limit` prunable bytes, then run `then` before writers
/// resume.
pub(super) fn paused_checkpoint<T>(
    shards: &[Arc<Shard>],
    journal: &Mutex<Journal>,
    engine_wal_limit: u64,
    then: impl FnOnce(&[Arc<Shard>]) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Lock order everywhere: maintenance, then writer.
    let _maintenance: Vec<_> = shards
        .iter()
        .map(|s| s.maintenance.lock().unwrap_or_else(|p| p.into_inner()))
        .collect();
    checkpoint_locked(shards, journal, engine_wal_limit, then)
}

/// The checkpoint itself, once the caller holds every shard's maintenance lock.
pub(super) fn checkpoint_locked<T>(
    shards: &[Arc<Shard>],
    journal: &Mutex<Journal>,
    engine_wal_limit: u64,
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
    // Every write is in the flushed segments now: a shard whose engine WAL has grown past
    // its bound is reloaded, which frees it (see `Shard::reload`).
    for shard in shards {
        let prunable = shard.prunable_wal_bytes()?;
        if prunable > engine_wal_limit {
            let started = std::time::Instant::now();
            let freed = shard.reload()?;
            tracing::info!(
                collection = %shard.name,
                freed_bytes = freed,
                ms = started.elapsed().as_millis() as u64,
                "reloaded the collection to prune the engine's WAL"
            );
        }
    }
    then(shards)
}
