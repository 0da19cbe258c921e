//! One progress type for long work (import, reindex, sync, backup, restore), which an application forwards to
//! its UI as is: `{ "phase": "embed_messages", "done": 640, "total": 20000 }`.

use serde::Serialize;

/// What a long operation is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Reading and importing the files of a chat-data folder (`done`/`total`: files).
    ImportFiles,
    /// Embedding messages without a dense vector (`reindex`; messages).
    EmbedMessages,
    /// Embedding estate resources without a dense vector (`reindex`; resources).
    EmbedResources,
    /// Writing the resources of one imported estate file (resources).
    ImportResources,
    /// Writing the resources of an estate sync (resources).
    SyncResources,
    /// Backup: copying the store with writers paused (steps of the backup).
    BackupSnapshot,
    /// Backup: writing the encrypted archive (steps).
    BackupArchive,
    /// Backup: uploading the archive to S3 (steps).
    BackupUpload,
    /// Restore: downloading the backup from S3 (steps of the restore).
    RestoreDownload,
    /// Restore: decrypting, unpacking and checking the backup aside (steps).
    RestoreCheck,
    /// Restore: swapping it with the live data (steps).
    RestoreSwap,
    /// `migrate store`: copying points to the other store (points).
    MigrateStore,
    /// `keys rekey`: sealing records again under the active data key (records).
    Rekey,
}

/// How far a long operation got. `done` never exceeds `total`; `total` may be 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Progress {
    /// What is being done.
    pub phase: Phase,
    /// Units done in this phase.
    pub done: u64,
    /// Units in this phase.
    pub total: u64,
}

/// The callback long operations report to; [`ignore`] when nobody listens.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// A [`ProgressFn`] that drops every report.
pub fn ignore(_: Progress) {}

/// Report `done` of `total` in `phase` (clamped so `done ≤ total`).
pub(crate) fn report(progress: ProgressFn<'_>, phase: Phase, done: u64, total: u64) {
    progress(Progress {
        phase,
        done: done.min(total),
        total,
    });
}
