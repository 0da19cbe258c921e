//! Encrypted backups of the whole store: snapshot, archive, verify, restore, retention.
//!
//! A backup is a consistent copy of every collection (writers paused only for the flush and
//! the copy), archived with tar, compressed with zstd and encrypted in chunks with the backup
//! subkey, plus a JSON manifest. Archives live in `<data_dir>/snapshots/<store_id>/`. Restore
//! unpacks into a temporary folder, opens every collection and checks the counts, and only
//! then swaps it with the live data in one atomic `renameat2(RENAME_EXCHANGE)`; the previous
//! data is kept aside until the next successful backup.
//!
//! With `[backup.s3]` configured, backups are also uploaded to an S3-compatible bucket, pruned
//! there with their own retention, and can be restored from it. `start_auto_backup` runs the
//! whole cycle on a schedule.

mod archive;
mod chunk;
mod head;
mod incremental;
mod manifest;
mod objects;
mod restore;
mod retention;
#[cfg(feature = "s3")]
mod s3;
#[cfg(not(feature = "s3"))]
#[path = "s3_disabled.rs"]
mod s3;
mod s3_config;
mod scheduler;
mod shipping;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

pub use incremental::{SweepReport, UploadReport};
pub use manifest::Manifest;
pub(crate) use manifest::ARCHIVE_FORMAT;
pub(crate) use objects::{LocalObjects, ObjectStore};
pub(crate) use restore::{list_remote_unopened, restore};
pub use s3::S3Target;
pub use s3_config::S3Config;
pub(crate) use scheduler::AutoBackup;
pub use scheduler::BackupStatus;
pub use shipping::{JournalReplay, JournalSweep, ShipReport};

use crate::crypto::KeyConfig;
use crate::crypto::{BackupKeys, CryptoError};
use crate::disk::{dir_size, disk_free_bytes};
use crate::progress::{self, report, Phase, ProgressFn};
use crate::store::embedded::{EmbeddedOptions, EmbeddedStore, QDRANT_DIR};
use crate::store::{StoreError, VectorStore};

/// Folder under the data dir holding archives, one sub-folder per store id.
pub(crate) const SNAPSHOTS_DIR: &str = "snapshots";
const PREVIOUS_PREFIX: &str = ".previous-";

/// Errors of backup, verify, restore and prune.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file could not be read or written.
    #[error("backup I/O on {path}")]
    Io {
        /// Path involved.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The archive does not decrypt, decompress or unpack.
    #[error("backup {name} is corrupt: {reason}")]
    Corrupt {
        /// Backup name.
        name: String,
        /// What failed.
        reason: String,
    },
    /// The archive's SHA-256 differs from its manifest.
    #[error("backup {name} fails its checksum (expected {expected}, found {actual})")]
    ChecksumMismatch {
        /// Backup name.
        name: String,
        /// From the manifest.
        expected: String,
        /// Of the file.
        actual: String,
    },
    /// The restored copy does not hold what the manifest says.
    #[error("backup {name}: collection `{collection}` has {found} points, the manifest says {expected}")]
    CountMismatch {
        /// Backup name.
        name: String,
        /// Collection.
        collection: String,
        /// From the manifest.
        expected: u64,
        /// Found after unpacking.
        found: u64,
    },
    /// No backup matches the request.
    #[error("no backup found: {0}")]
    NotFound(String),
    /// The archive names a data key this store does not have.
    #[error("the archive was encrypted with data key {key_id}, which this store's key envelope does not hold")]
    UnknownKey {
        /// Key id from the archive header.
        key_id: u32,
    },
    /// The shipped journal continues under a data key the restoring keys do not hold: it was
    /// written after a newer recovery kit or a rotation with a new epoch.
    #[error("the shipped journal from record {first_seq} on is sealed under data key {key_id}, which this backup's keys do not hold: it was written after a newer recovery kit was issued or the key was rotated with --new-epoch, and this key cannot open it. Restore with the current recovery kit, or to a time before then (--at), or without the journal (--no-journal)")]
    JournalNewerKey {
        /// The first record that cannot be opened.
        first_seq: u64,
        /// The data key it is sealed under.
        key_id: u32,
    },
    /// The target's head is sealed under a data key the restoring keys lack: newer backups
    /// exist that they cannot open.
    #[error("the backup target's head is sealed under data key {key_id}, which these keys do not hold: newer backups exist that they cannot open (a newer recovery kit or key was made). Restore with the current kit or key, or name a backup or a time")]
    HeadNewerKey {
        /// The data key of the head.
        key_id: u32,
    },
    /// The target falls short of its authenticated head: the newest backup or the end of the
    /// journal it names is missing, a shipped record is missing, or the head was deleted,
    /// altered or rolled back.
    #[error("the backup target does not hold what its authenticated head names: {reason}. Nothing was restored; `--accept-gap` restores what is there")]
    Incomplete {
        /// What is missing.
        reason: String,
    },
    /// A remote target refused or failed an operation.
    #[error("{target} {operation} of {object} failed: {message}")]
    Target {
        /// Target kind (`s3`).
        target: &'static str,
        /// What was being done.
        operation: &'static str,
        /// Object key.
        object: String,
        /// The SDK's explanation.
        message: String,
    },
    /// There is no store (no keys) in the data dir, and the restore cannot make one.
    #[error("no store in {path}: run `cloudops-storage init` first, or restore a backup from S3 into it with the recovery key (`backup restore --from-s3 --recovery-key-file FILE`)")]
    NotInitialized {
        /// The data dir.
        path: String,
    },
    /// A recovery-key restore was asked for into a data dir that already holds a store.
    #[error("{path} already holds a store: restore into it without a recovery key (its own key opens its backups), or restore with the recovery key into an empty data dir")]
    StoreExists {
        /// The data dir.
        path: String,
    },
    /// The bucket holds backups of several stores and none was chosen.
    #[error("the bucket holds backups of {count} stores ({stores}); choose one with --store-id")]
    AmbiguousStore {
        /// How many stores.
        count: usize,
        /// Their ids.
        stores: String,
    },
    /// This build lacks a part the configuration asks for.
    #[error("this build has no {feature} support (build with the `{feature}` cargo feature)")]
    NotBuiltIn {
        /// The cargo feature.
        feature: &'static str,
    },
    /// Remote backups were asked for but no `[backup.s3]` is configured.
    #[error("no S3 target is configured (set [backup.s3] bucket, endpoint, …)")]
    NoRemote,
    /// Not enough free disk for the operation.
    #[error("not enough free disk in {path}: need {needed} bytes, {free} free")]
    DiskSpace {
        /// Where.
        path: String,
        /// Bytes needed (data plus the store's reserve).
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// A file the snapshot hard-linked (as one the engine never writes again) was written
    /// while the backup read it: the backup is discarded, the next one copies afresh.
    #[error("{path} changed while the backup read it (the snapshot had linked it as a file the engine never rewrites); the backup was discarded, nothing else is affected; please report this")]
    SourceChanged {
        /// The file, in the snapshot.
        path: String,
    },
    /// Prune stopped before deleting anything: objects that look like backup manifests do
    /// not read or authenticate, and what they reference would look unreferenced.
    #[error("prune deletes nothing while {} backup manifest(s) do not authenticate: {}; if you made them, restore them; if not, someone wrote to the backup target: remove them once you have looked, then prune again", .refused.len(), .refused.join("; "))]
    Unverified {
        /// Each refused manifest, `where: why`.
        refused: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Keys failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A blocking task failed.
    #[error("backup task failed: {0}")]
    Task(#[from] crate::blocking::TaskFailed),
}

/// Which backup to restore. JSON: `"latest"`, `{"at": 1764460800000}`, `{"named": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RestoreTarget {
    /// The newest.
    #[default]
    Latest,
    /// The newest taken at or before this time (unix ms).
    At(i64),
    /// By name.
    Named(String),
}

/// The parts of the configuration backups use (the service passes its own).
pub(crate) struct BackupSite<'a> {
    /// The data dir.
    pub(crate) data_dir: &'a Path,
    /// Key sources (a restore opens the keys itself).
    pub(crate) keys: &'a KeyConfig,
    /// Retention, schedule and the S3 target.
    pub(crate) backup: &'a BackupConfig,
    /// Free space kept on the data dir's file system.
    pub(crate) min_free_bytes: u64,
    /// Where the collections live (a restore in remote mode writes into the server).
    pub(crate) store: &'a crate::store::StoreConfig,
}

/// What a restore ([`crate::StorageService::restore_backup`]) restores, and from where. JSON:
/// `{"target": "latest", "from_s3": true, "recovery_key": "…", "store_id": null}`; omitted
/// fields take these defaults; unknown fields are an error. The recovery key is read from JSON
/// but never written back out.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct RestoreOptions {
    /// Which backup (default: the newest).
    pub target: RestoreTarget,
    /// Download it from the S3 target instead of the local folder.
    pub from_s3: bool,
    /// Disaster recovery: restore into an empty data dir (no store, no key) with the store's
    /// recovery key; the data keys are then wrapped under this machine's key source. Without
    /// it, a restore into an empty data dir tries the configured key source on the backup's
    /// keys (a passphrase, key file or variable you still have).
    #[serde(skip_serializing)]
    #[cfg_attr(feature = "typescript", ts(as = "Option<String>", optional))]
    pub recovery_key: Option<crate::crypto::RecoveryKey>,
    /// Which store's backups, when the bucket holds several (restore into an empty data dir).
    pub store_id: Option<uuid::Uuid>,
    /// Restore the backup alone: do not replay the journal shipped after it (which `Latest`
    /// and `At` otherwise do, up to that time, when `[backup.s3]` is configured).
    pub skip_journal: bool,
    /// Restore what the target holds even where it falls short of its authenticated head
    /// (the newest backup or the end of the journal it names is missing, a record is missing
    /// in the middle, the head itself is missing or altered): each shortfall becomes a
    /// warning in the report instead of an error.
    pub accept_gap: bool,
}

/// What `restore` did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct RestoreReport {
    /// The backup restored.
    pub backup: Manifest,
    /// Where the replaced live data was kept.
    pub previous_data: Option<PathBuf>,
    /// Restored into an empty data dir: the keys installed under this machine's key source.
    pub keys: Option<crate::crypto::KeyStatus>,
    /// What was replayed of the journal shipped after the backup.
    pub journal: Option<JournalReplay>,
    /// Shortfalls accepted with [`RestoreOptions::accept_gap`] (empty otherwise).
    pub warnings: Vec<String>,
    /// Time taken, ms.
    pub elapsed_ms: f64,
}

/// What `prune` removed (or would remove, on a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// Backups removed.
    pub removed: Vec<String>,
    /// Backups kept.
    pub kept: Vec<String>,
    /// Remote backups removed.
    pub removed_remote: Vec<String>,
    /// Remote chunks no remaining backup needs, deleted after the backups (not on a dry run).
    pub swept: Option<SweepReport>,
    /// Shipped journal no remaining backup needs, deleted after the chunks (not on a dry run).
    pub swept_journal: Option<JournalSweep>,
    /// Nothing was deleted.
    pub dry_run: bool,
}

/// `[backup]`: schedule, retention and the optional S3 target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Delete local backups older than this many days. Default: 7.
    pub local_keep_days: u32,
    /// Never keep fewer than this many, locally and remotely (at least 1). Default: 1.
    pub keep_last: usize,
    /// Hours between automatic backups. Default: 24.
    pub interval_hours: u32,
    /// Minutes between automatic backups; overrides `interval_hours` when set (for tests).
    pub interval_minutes: Option<u32>,
    /// Remote target; none by default.
    pub s3: Option<S3Config>,
    /// With `s3`: seconds between shipments of the journal (every write since the last one,
    /// sealed) to the bucket, for point-in-time restore between backups. 0 turns shipping
    /// off. Default: 10.
    pub ship_interval_seconds: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            local_keep_days: 7,
            keep_last: 1,
            interval_hours: 24,
            interval_minutes: None,
            s3: None,
            ship_interval_seconds: 10,
        }
    }
}

impl BackupConfig {
    /// Whether writes are logged and shipped to the S3 target (`s3` set, interval not 0).
    pub fn ships_journal(&self) -> bool {
        self.s3.is_some() && self.ship_interval_seconds > 0
    }

    /// The schedule's interval.
    pub fn interval(&self) -> std::time::Duration {
        let minutes = self
            .interval_minutes
            .map_or(u64::from(self.interval_hours) * 60, u64::from);
        std::time::Duration::from_secs(minutes.max(1) * 60)
    }
}

/// Unix ms now; replaceable in tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Creates, lists, verifies, uploads and prunes backups of an open store.
#[derive(Clone)]
pub struct BackupManager {
    data_dir: PathBuf,
    store: Arc<dyn VectorStore>,
    /// Replaced when a new data-key epoch starts ([`BackupManager::replace_keys`]).
    keys: Arc<std::sync::RwLock<Arc<BackupKeys>>>,
    store_id: uuid::Uuid,
    min_free_bytes: u64,
    retention: BackupConfig,
    s3: Option<Arc<S3Target>>,
    clock: Clock,
    status: Arc<std::sync::Mutex<BackupStatus>>,
    /// Serialises rewrites of the target's head (uploads and shipments may overlap).
    head_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for BackupManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupManager")
            .field("dir", &self.dir())
            .finish_non_exhaustive()
    }
}

fn snapshots_dir(data_dir: &Path, store_id: &uuid::Uuid) -> PathBuf {
    data_dir.join(SNAPSHOTS_DIR).join(store_id.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    crate::blocking::run_blocking(f).await
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn ensure_space(path: &Path, needed: u64) -> Result<(), BackupError> {
    match disk_free_bytes(path) {
        Some(free) if free < needed => Err(BackupError::DiskSpace {
            path: path.display().to_string(),
            needed,
            free,
        }),
        _ => Ok(()),
    }
}

impl BackupManager {
    /// The backup keys in effect.
    fn keys(&self) -> Arc<BackupKeys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Use `keys` from now on (a new data-key epoch: later backups, chunks and shipments are
    /// sealed under its active key).
    pub(crate) fn replace_keys(&self, keys: BackupKeys) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }

    pub(crate) async fn new(
        site: &BackupSite<'_>,
        store: Arc<dyn VectorStore>,
        keys: BackupKeys,
        store_id: uuid::Uuid,
        clock: Clock,
    ) -> Result<Self, BackupError> {
        let s3 = match &site.backup.s3 {
            Some(s3) => Some(Arc::new(S3Target::new(s3, &store_id).await?)),
            None => None,
        };
        // A Qdrant server keeps no journal of ours: nothing to ship in remote mode.
        let journal_shipping = site.backup.ships_journal() && site.store.mode == crate::store::StoreMode::Embedded;
        Ok(BackupManager {
            data_dir: site.data_dir.to_path_buf(),
            store,
            keys: Arc::new(std::sync::RwLock::new(Arc::new(keys))),
            store_id,
            min_free_bytes: site.min_free_bytes,
            retention: site.backup.clone(),
            s3,
            clock,
            status: Arc::new(std::sync::Mutex::new(BackupStatus {
                journal_shipping,
                ..BackupStatus::default()
            })),
            head_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The remote target, if configured.
    pub fn remote(&self) -> Option<&S3Target> {
        self.s3.as_deref()
    }

    /// Upload a local backup to the S3 target, incrementally: only the chunks the bucket does
    /// not hold yet (see [`UploadReport`]).
    ///
    /// # Errors
    /// [`BackupError::NoRemote`] without a target; [`BackupError::Target`] when it fails.
    pub async fn upload(&self, manifest: &Manifest) -> Result<UploadReport, BackupError> {
        let s3 = self.s3.as_ref().ok_or(BackupError::NoRemote)?;
        let report = self.upload_to(s3.clone(), manifest, true).await?;
        let newest = head::NewestBackup {
            name: manifest.name.clone(),
            created_at_ms: manifest.created_at_ms,
        };
        self.advance_head(&**s3, move |head| head.newest_backup = Some(newest))
            .await?;
        Ok(report)
    }

    /// Rewrite the target's authenticated head after an upload or a shipment.
    async fn advance_head(
        &self,
        objects: &dyn ObjectStore,
        change: impl FnOnce(&mut head::Head) + Send,
    ) -> Result<(), BackupError> {
        let _serialised = self.head_lock.lock().await;
        head::advance(objects, &self.data_dir, &self.store_id, &self.keys(), change).await?;
        Ok(())
    }

    /// Upload a local backup incrementally into `folder`, laid out as the bucket would be
    /// (`chunks/<id>`, `<name>.cosi`, `<name>.json`): what `bench` measures a bucket with, and
    /// a second copy on another disk.
    ///
    /// # Errors
    /// As [`BackupManager::upload`].
    pub async fn upload_to_folder(&self, folder: &Path, manifest: &Manifest) -> Result<UploadReport, BackupError> {
        self.upload_to(Arc::new(LocalObjects::new(folder)), manifest, false)
            .await
    }

    async fn upload_to(
        &self,
        objects: Arc<dyn ObjectStore>,
        manifest: &Manifest,
        headed: bool,
    ) -> Result<UploadReport, BackupError> {
        let started = std::time::Instant::now();
        let archive = manifest::archive_path(&self.dir(), &manifest.name);
        let report = incremental::upload(objects.clone(), &archive, manifest, self.keys(), headed).await?;
        tracing::info!(backup = %manifest.name, target = %objects, ms = started.elapsed().as_millis() as u64, new_chunks = report.new_chunks, uploaded_bytes = report.uploaded_bytes, "backup uploaded");
        Ok(report)
    }

    /// Ship the writes made since the last shipment to the S3 target (point-in-time restore
    /// between backups) and record the outcome in [`BackupManager::status`]. Nothing to do
    /// (an empty report) when the store keeps no ship log.
    ///
    /// # Errors
    /// [`BackupError::NoRemote`] without a target; store and target errors (the records stay
    /// in the log and go with the next shipment).
    pub async fn ship_journal(&self) -> Result<ShipReport, BackupError> {
        let s3 = self.s3.as_ref().ok_or(BackupError::NoRemote)?;
        let mut shipped = shipping::ship(&*self.store, &**s3, &self.keys(), &self.store_id).await;
        if let Ok(ShipReport {
            generation: Some(generation),
            last_seq: Some(last_seq),
            ..
        }) = &shipped
        {
            let journal = head::JournalHead {
                generation: generation.clone(),
                last_seq: *last_seq,
            };
            if let Err(e) = self.advance_head(&**s3, move |head| head.journal = Some(journal)).await {
                shipped = Err(e);
            }
        }
        {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            match &shipped {
                Ok(report) => {
                    status.journal_shipped_records += report.records;
                    status.journal_error = None;
                }
                Err(e) => status.journal_error = Some(e.to_string()),
            }
        }
        shipped
    }

    /// [`BackupManager::status`] with the shipped journal's state read from the store now
    /// (the recovery point).
    ///
    /// # Errors
    /// Store errors reading the ship log.
    pub async fn status_now(&self) -> Result<BackupStatus, BackupError> {
        let log = self.store.unshipped(0, 1).await?;
        let mut status = self.status();
        if let Some(log) = log {
            status.journal_shipped_at_ms = log.shipped_at_ms;
            status.journal_unshipped_since_ms = log.records.first().map(|r| r.time_ms);
        }
        Ok(status)
    }

    /// How often writes are shipped between backups: `None` unless `[backup.s3]` is set,
    /// `ship_interval_seconds` is not 0 and the store is embedded.
    pub(crate) fn ship_interval(&self) -> Option<std::time::Duration> {
        (self.s3.is_some() && self.status().journal_shipping)
            .then(|| std::time::Duration::from_secs(u64::from(self.retention.ship_interval_seconds)))
    }

    /// Remote backups, oldest first.
    ///
    /// # Errors
    /// [`BackupError::NoRemote`] or [`BackupError::Target`].
    pub async fn list_remote(&self) -> Result<Vec<Manifest>, BackupError> {
        let all = self.s3.as_ref().ok_or(BackupError::NoRemote)?.list().await?;
        Ok(manifest::authentic(all, &self.keys()))
    }

    /// One scheduled cycle: back up, upload when S3 is configured, prune.
    ///
    /// # Errors
    /// The first step that fails.
    pub async fn run_cycle(&self) -> Result<Manifest, BackupError> {
        let manifest = self.create_snapshot().await?;
        if self.s3.is_some() {
            self.upload(&manifest).await?;
        }
        self.prune(false).await?;
        Ok(manifest)
    }

    /// Schedule status (last success, last failure and why, next run).
    pub fn status(&self) -> BackupStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn status_handle(&self) -> Arc<std::sync::Mutex<BackupStatus>> {
        self.status.clone()
    }

    pub(crate) fn store_writes(&self) -> u64 {
        self.store.write_count()
    }

    pub(crate) fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Replace the clock (tests of retention and restore-at-time).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Where local archives are kept.
    pub fn dir(&self) -> PathBuf {
        snapshots_dir(&self.data_dir, &self.store_id)
    }

    /// Take a backup now: consistent snapshot, archive, manifest. A failure leaves no file.
    ///
    /// # Errors
    /// [`BackupError::DiskSpace`] when the disk cannot hold the copy and the archive; store,
    /// crypto and I/O errors.
    pub async fn create_snapshot(&self) -> Result<Manifest, BackupError> {
        self.snapshot_reporting(&progress::ignore, 2).await
    }

    /// Take a backup now and, with `upload`, send it to the S3 target. Progress:
    /// [`Phase::BackupSnapshot`], [`Phase::BackupArchive`], [`Phase::BackupUpload`], counting
    /// steps.
    ///
    /// # Errors
    /// [`BackupError::NoRemote`] for `upload` without a target (before any work); as
    /// [`BackupManager::create_snapshot`] and [`BackupManager::upload`].
    pub async fn backup_now(&self, upload: bool, progress: ProgressFn<'_>) -> Result<Manifest, BackupError> {
        Ok(self.backup_now_reporting(upload, progress).await?.0)
    }

    /// [`BackupManager::backup_now`], also returning what the upload sent (with `upload`).
    ///
    /// # Errors
    /// As [`BackupManager::backup_now`].
    pub async fn backup_now_reporting(
        &self,
        upload: bool,
        progress: ProgressFn<'_>,
    ) -> Result<(Manifest, Option<UploadReport>), BackupError> {
        if upload && self.s3.is_none() {
            return Err(BackupError::NoRemote);
        }
        let steps = if upload { 3 } else { 2 };
        let manifest = self.snapshot_reporting(progress, steps).await?;
        let mut sent = None;
        if upload {
            report(progress, Phase::BackupUpload, 2, steps);
            sent = Some(self.upload(&manifest).await?);
        }
        report(progress, Phase::BackupUpload, steps, steps);
        Ok((manifest, sent))
    }

    async fn snapshot_reporting(&self, progress: ProgressFn<'_>, steps: u64) -> Result<Manifest, BackupError> {
        report(progress, Phase::BackupSnapshot, 0, steps);
        let now = (self.clock)();
        let name = manifest::backup_name(now);
        let dir = self.dir();
        let folder = dir.clone();
        blocking(move || crate::platform::private_dir_all(&folder).map_err(io_err(&folder))).await?;
        let live = self.data_dir.join(QDRANT_DIR);
        let data_dir = self.data_dir.clone();
        let reserve = self.min_free_bytes;
        // Room for a full copy and an archive of at most the same size, above the reserve.
        let needed = blocking(move || Ok(dir_size(&live))).await? * 2 + reserve;
        ensure_space(&self.data_dir, needed)?;
        let staging = self.data_dir.join(format!(".staging-{name}"));
        let result = self.snapshot_into(&staging, &dir, &name, now, progress, steps).await;
        let cleanup = staging.clone();
        let _ = blocking(move || {
            let _ = std::fs::remove_dir_all(&cleanup);
            Ok(())
        })
        .await;
        let manifest = result?;
        // A good backup exists: the data kept aside by the last restore can go.
        let _ = blocking(move || {
            remove_previous(&data_dir);
            Ok(())
        })
        .await;
        tracing::info!(backup = %manifest.name, bytes = manifest.archive_bytes, pause_ms = manifest.writer_pause_ms, "backup created");
        Ok(manifest)
    }

    async fn snapshot_into(
        &self,
        staging: &Path,
        dir: &Path,
        name: &str,
        now: i64,
        progress: ProgressFn<'_>,
        steps: u64,
    ) -> Result<Manifest, BackupError> {
        let info = self.store.snapshot(staging).await?;
        report(progress, Phase::BackupArchive, 1, steps);
        let (staging, dir, name) = (staging.to_path_buf(), dir.to_path_buf(), name.to_string());
        let keys = self.keys();
        let store_id = self.store_id;
        let data_dir = self.data_dir.clone();
        blocking(move || {
            // The envelope as it is now (with the current recovery wrap) travels with the backup.
            let wrapped = crate::crypto::wrapped_keys(&data_dir)?;
            let key_id = keys.active_key_id;
            let key = keys.key(key_id).ok_or(BackupError::UnknownKey { key_id })?;
            let tmp = dir.join(format!(".{name}.cosb.tmp"));
            let written = match archive::write_archive(&staging, &tmp, &key, key_id, &store_id, &name) {
                Ok(w) => w,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            tracing::debug!(
                copied_bytes = info.bytes,
                linked_bytes = info.linked_bytes,
                linked_files = info.linked.len(),
                "snapshot archived"
            );
            if let Some(path) = info.changed_linked_file() {
                let _ = std::fs::remove_file(&tmp);
                return Err(BackupError::SourceChanged {
                    path: path.display().to_string(),
                });
            }
            let mut manifest = Manifest {
                name: name.clone(),
                store_id,
                created_at_ms: now,
                collections: info.collections,
                data_bytes: info.bytes + info.linked_bytes,
                archive_bytes: written.bytes,
                sha256: written.sha256,
                key_id,
                format: ARCHIVE_FORMAT,
                app_version: env!("CARGO_PKG_VERSION").to_string(),
                // Whole microseconds: the value reads back from JSON exactly.
                writer_pause_ms: (info.writer_pause_ms * 1e3).round() / 1e3,
                verified_at_ms: None,
                keys: Some(wrapped),
                journal: info.journal.clone(),
                head: false,
                mac: String::new(),
            };
            if let Err(e) = manifest.seal(&keys) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            let target = manifest::archive_path(&dir, &name);
            std::fs::rename(&tmp, &target).map_err(io_err(&target))?;
            if let Err(e) = manifest::write(&dir, &manifest) {
                let _ = std::fs::remove_file(&target);
                return Err(e);
            }
            Ok(manifest)
        })
        .await
    }

    /// Local backups, oldest first.
    ///
    /// # Errors
    /// I/O errors reading the folder.
    pub fn list(&self) -> Result<Vec<Manifest>, BackupError> {
        Ok(manifest::authentic(
            manifest::list(&self.dir(), &self.store_id)?,
            &self.keys(),
        ))
    }

    /// Prove a backup restorable without touching live data: checksum, decrypt, unpack, open
    /// every collection, compare counts. Records the time in the manifest.
    ///
    /// # Errors
    /// The first check that fails, as a [`BackupError`].
    pub async fn verify(&self, name: Option<&str>) -> Result<Manifest, BackupError> {
        let target = name.map_or(RestoreTarget::Latest, |n| RestoreTarget::Named(n.to_string()));
        let this = self.clone();
        let mut manifest = blocking(move || choose(&this.list()?, &target)).await?;
        let (data_dir, dir, keys, reserve) = (self.data_dir.clone(), self.dir(), self.keys(), self.min_free_bytes);
        let m = manifest.clone();
        blocking(move || {
            let unpacked = unpack_and_check(&data_dir, &Source::Archive(dir), &m, &keys, reserve, ".verify-")?;
            std::fs::remove_dir_all(&unpacked).map_err(io_err(&unpacked))
        })
        .await?;
        manifest.verified_at_ms = Some((self.clock)());
        manifest.seal(&self.keys())?;
        let (dir, verified) = (self.dir(), manifest.clone());
        blocking(move || manifest::write(&dir, &verified)).await?;
        Ok(manifest)
    }

    /// Prove a remote backup restorable without touching live data: fetch and authenticate
    /// every chunk (or the archive), unpack aside, open every collection, compare counts.
    ///
    /// # Errors
    /// [`BackupError::NoRemote`]; the first check that fails.
    pub async fn verify_remote(&self, name: Option<&str>) -> Result<Manifest, BackupError> {
        let s3 = self.s3.clone().ok_or(BackupError::NoRemote)?;
        let target = name.map_or(RestoreTarget::Latest, |n| RestoreTarget::Named(n.to_string()));
        let manifest = choose(&self.list_remote().await?, &target)?;
        let (data_dir, keys, reserve) = (self.data_dir.clone(), self.keys(), self.min_free_bytes);
        let (source, download) = restore::remote_source(&data_dir, reserve, &s3, &manifest, &progress::ignore).await?;
        let m = manifest.clone();
        let checked = blocking(move || {
            let unpacked = unpack_and_check(&data_dir, &source, &m, &keys, reserve, ".verify-")?;
            std::fs::remove_dir_all(&unpacked).map_err(io_err(&unpacked))
        })
        .await;
        if let Some(folder) = download {
            let _ = std::fs::remove_dir_all(folder);
        }
        checked.map(|()| manifest)
    }

    /// Apply retention: delete local backups older than `local_keep_days` and remote ones
    /// older than `[backup.s3] keep_days`, never the newest `keep_last` of either.
    ///
    /// # Errors
    /// [`BackupError::Unverified`], deleting nothing, while any manifest found locally or in
    /// the bucket does not read or authenticate; I/O and target errors.
    pub async fn prune(&self, dry_run: bool) -> Result<PruneReport, BackupError> {
        // Fail closed: a manifest that does not authenticate may be a real backup someone
        // edited, whose archive, index, chunks and shipments would then look unreferenced.
        let this = self.clone();
        let local =
            blocking(move || manifest::list_all(&this.dir(), &this.store_id).map(|l| l.authenticated(&this.keys())))
                .await?;
        let remote = match (&self.s3, &self.retention.s3) {
            (Some(s3), Some(_)) => Some(s3.list_all().await?.authenticated(&self.keys())),
            _ => None,
        };
        let refused: Vec<String> = local
            .refused
            .iter()
            .chain(remote.iter().flat_map(|r| &r.refused))
            .cloned()
            .collect();
        if !refused.is_empty() {
            return Err(BackupError::Unverified { refused });
        }
        let (dir, now, keep_days, keep_last) = (
            self.dir(),
            (self.clock)(),
            self.retention.local_keep_days,
            self.retention.keep_last,
        );
        let mut report =
            blocking(move || prune_local(&dir, local.manifests, now, keep_days, keep_last, dry_run)).await?;
        if let (Some(s3), Some(cfg), Some(remote)) = (&self.s3, &self.retention.s3, remote) {
            let remote = remote.manifests;
            let removed = retention::prunable(&remote, (self.clock)(), cfg.keep_days, self.retention.keep_last);
            if !dry_run {
                for name in &removed {
                    s3.delete(name).await?;
                }
                let kept: Vec<Manifest> = remote.into_iter().filter(|m| !removed.contains(&m.name)).collect();
                // Locks carry the target's wall-clock times, not the (injectable) backup clock.
                report.swept = Some(incremental::sweep(&**s3, &kept, &self.keys(), crate::clock::now_ms()).await?);
                let live_generation = self.store.unshipped(0, 1).await?.map(|u| u.generation);
                report.swept_journal = Some(shipping::prune(&**s3, &kept, live_generation.as_deref()).await?);
            }
            report.removed_remote = removed;
        }
        Ok(report)
    }
}

/// Local retention: of the (authenticated) backups `all` in `dir`, delete those older than
/// `keep_days` at `now`, never the newest `keep_last`. ([`BackupManager::prune`] has already
/// stopped if any manifest failed authentication.)
fn prune_local(
    dir: &Path,
    all: Vec<Manifest>,
    now: i64,
    keep_days: u32,
    keep_last: usize,
    dry_run: bool,
) -> Result<PruneReport, BackupError> {
    let removed = retention::prunable(&all, now, keep_days, keep_last);
    let kept = all
        .iter()
        .map(|m| m.name.clone())
        .filter(|n| !removed.contains(n))
        .collect();
    if !dry_run {
        for name in &removed {
            for path in [manifest::archive_path(dir, name), manifest::manifest_path(dir, name)] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path)(e)),
                }
            }
        }
    }
    Ok(PruneReport {
        removed,
        kept,
        removed_remote: Vec::new(),
        swept: None,
        swept_journal: None,
        dry_run,
    })
}

fn choose(all: &[Manifest], target: &RestoreTarget) -> Result<Manifest, BackupError> {
    let found = match target {
        RestoreTarget::Latest => all.last(),
        RestoreTarget::At(t) => all.iter().rev().find(|m| m.created_at_ms <= *t),
        RestoreTarget::Named(n) => all.iter().find(|m| &m.name == n),
    };
    found.cloned().ok_or_else(|| {
        BackupError::NotFound(match target {
            RestoreTarget::Latest => "there are no backups".to_string(),
            RestoreTarget::At(t) => format!("no backup taken at or before {t} (unix ms)"),
            RestoreTarget::Named(n) => format!("no backup named {n}"),
        })
    })
}

/// Create a new, uniquely named `0700` folder `<dir>/<prefix>XXXXXX` and return its path.
fn new_private_folder(dir: &Path, prefix: &str) -> Result<PathBuf, BackupError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(dir)
        .map(tempfile::TempDir::keep)
        .map_err(io_err(dir))
}

/// Where the backup being unpacked is.
pub(super) enum Source {
    /// A local folder holding `<name>.cosb` (a local backup, or one downloaded).
    Archive(PathBuf),
    /// An object store holding the chunked backup (unpacked as its chunks arrive).
    Chunks(Arc<dyn ObjectStore>, tokio::runtime::Handle),
}

/// Checksum, decrypt and unpack `manifest`'s backup from `source` into
/// `<data_dir>/<prefix><name>-XXXXXX/`, open every collection there and compare counts.
/// Returns the folder (holding `qdrant/`). Runs on a blocking thread.
fn unpack_and_check(
    data_dir: &Path,
    source: &Source,
    manifest: &Manifest,
    keys: &BackupKeys,
    reserve: u64,
    prefix: &str,
) -> Result<PathBuf, BackupError> {
    let archive = match (source, manifest.format) {
        (Source::Archive(dir), ARCHIVE_FORMAT) => {
            let archive = manifest::archive_path(dir, &manifest.name);
            if !archive.exists() {
                return Err(BackupError::NotFound(format!(
                    "archive file {} is missing",
                    archive.display()
                )));
            }
            let actual = archive::sha256_file(&archive)?;
            if actual != manifest.sha256 {
                return Err(BackupError::ChecksumMismatch {
                    name: manifest.name.clone(),
                    expected: manifest.sha256.clone(),
                    actual,
                });
            }
            Some(archive)
        }
        (Source::Chunks(..), incremental::CHUNKED_FORMAT) => None,
        (_, format) => {
            return Err(BackupError::Corrupt {
                name: manifest.name.clone(),
                reason: format!("backup format {format} cannot be read from here (or by this version)"),
            })
        }
    };
    ensure_space(data_dir, manifest.data_bytes.saturating_add(reserve))?;
    // A new folder of our own (0700, a name nobody else chose): only it is ever removed.
    let target = new_private_folder(data_dir, &format!("{prefix}{}-", manifest.name))?;
    let checked = (|| {
        if let Some(archive) = &archive {
            archive::read_archive(archive, &target, |id| keys.key(id), &manifest.store_id, &manifest.name)?;
        } else if let Source::Chunks(objects, runtime) = source {
            incremental::unpack(runtime, objects.clone(), manifest, keys, &target)?;
        }
        let store = EmbeddedStore::open_with(
            &target,
            EmbeddedOptions {
                min_free_bytes: reserve,
                ..EmbeddedOptions::default()
            },
        )?;
        let counts = futures_stats(&store)?;
        drop(store);
        for expected in &manifest.collections {
            let found = counts.iter().find(|c| c.name == expected.name).map_or(0, |c| c.points);
            if found != expected.points {
                return Err(BackupError::CountMismatch {
                    name: manifest.name.clone(),
                    collection: expected.name.clone(),
                    expected: expected.points,
                    found,
                });
            }
        }
        Ok(())
    })();
    match checked {
        Ok(()) => Ok(target),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&target);
            Err(e)
        }
    }
}

/// Point counts of a store opened outside any runtime (this runs on a blocking thread).
fn futures_stats(store: &EmbeddedStore) -> Result<Vec<crate::store::CollectionStats>, BackupError> {
    Ok(store.stats_blocking()?)
}

fn remove_previous(data_dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(data_dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(PREVIOUS_PREFIX) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}
