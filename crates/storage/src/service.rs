//! `StorageService`: opens the store and keys, wires the domain services, reports health.

use crate::blocking::run_blocking;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::backup::{AutoBackup, BackupManager, BackupStatus};
use crate::chat::ChatStorage;
use crate::config::{KeyConfig, KeySourceKind, StorageConfig};
use crate::crypto::{self, DataKeyEpoch, KeyStatus, Purpose};
use crate::disk::{dir_size, disk_free_bytes};
use crate::embed::{self, DenseSpace, EmbedError, Embedder, EmbeddingRecord, KeywordEncoder};
use crate::error::{Result, StorageError};
use crate::estate::EstateStorage;
use crate::store::{CollectionStats, VectorStore};

/// The service is shared across tasks and threads (`Arc<StorageService>`) for the life of an
/// application: checked at compile time.
const _: fn() = || {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<StorageService>();
};

/// The storage service: chat history, the AWS estate and encrypted backups.
pub struct StorageService {
    /// Conversations and messages.
    pub chat: ChatStorage,
    /// The AWS estate.
    pub estate: EstateStorage,
    /// Encrypted backups of the whole store.
    pub backup: BackupManager,
    dense: Option<Arc<DenseSpace>>,
    recorded_embedding: std::sync::Mutex<Option<EmbeddingRecord>>,
    store: Arc<dyn VectorStore>,
    /// Shared with chat and estate; a new data-key epoch replaces its keys.
    sealer: Arc<crypto::Sealer>,
    config: StorageConfig,
    keys: std::sync::Mutex<KeyStatus>,
    auto_backup: tokio::sync::Mutex<Option<AutoBackup>>,
    shut_down: AtomicBool,
}

impl std::fmt::Debug for StorageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageService")
            .field("data_dir", &self.config.data_dir)
            .field("store", &self.store.to_string())
            .finish_non_exhaustive()
    }
}

/// Wraps the engine after it is opened (fault injection in tests).
type StoreWrapper = Box<dyn FnOnce(Arc<dyn VectorStore>) -> Arc<dyn VectorStore> + Send>;

/// A health report: what `status` prints.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Health {
    /// True when the store answered.
    pub store_reachable: bool,
    /// Backend description.
    pub backend: String,
    /// The data dir.
    pub data_dir: PathBuf,
    /// Store id.
    pub store_id: uuid::Uuid,
    /// Key source in use.
    pub key_source: KeySourceKind,
    /// Where the key lives.
    pub key_location: String,
    /// When the recovery kit was issued; `None`: there is none, so backups cannot be
    /// restored on another machine.
    pub recovery_kit_created_at_ms: Option<i64>,
    /// Collections with their point counts.
    pub collections: Vec<CollectionStats>,
    /// Free bytes on the data dir's file system.
    pub disk_free_bytes: Option<u64>,
    /// Bytes used by the data dir.
    pub data_dir_bytes: u64,
    /// Backup schedule: last success, last failure and why, next run.
    pub backup: BackupStatus,
    /// Embedding model in use (`None`: keyword search only).
    pub embedding_model: Option<String>,
    /// The model recorded in the store.
    pub stored_embedding: Option<EmbeddingRecord>,
    /// Messages still waiting for a dense vector.
    pub pending_embeddings: u64,
}

impl StorageService {
    /// Open (or, with `create_if_missing`, create) the store described by `config`.
    ///
    /// # Errors
    /// [`StorageError::NotInitialized`] when there is no store and creation is off;
    /// `Store(Locked)` when another process owns the data dir; crypto errors when the key
    /// source is unavailable or holds the wrong key.
    pub async fn open(config: StorageConfig) -> Result<Self> {
        Self::open_inner(config, OpenMode::Normal, None, None).await
    }

    /// Open with the engine wrapped by `wrap` (a fault-injecting wrapper in tests). The real
    /// store is opened, locked and unlocked as usual; every call then goes through the wrapper.
    ///
    /// # Errors
    /// As [`StorageService::open`].
    #[cfg(feature = "backend")]
    #[doc(hidden)]
    pub async fn open_with_store_wrapper(
        config: StorageConfig,
        wrap: impl FnOnce(Arc<dyn VectorStore>) -> Arc<dyn VectorStore> + Send + 'static,
    ) -> Result<Self> {
        Self::open_inner(config, OpenMode::Normal, None, Some(Box::new(wrap))).await
    }

    /// Open with this embedder instead of the one `[embedding]` configures (`None`: keyword
    /// search only). For applications bringing their own model.
    ///
    /// # Errors
    /// As [`StorageService::open`].
    pub async fn open_with_embedder(config: StorageConfig, embedder: Option<Arc<dyn Embedder>>) -> Result<Self> {
        Self::open_inner(config, OpenMode::Normal, Some(embedder), None).await
    }

    /// Open for `reindex`: a store indexed with another model opens with the configured one,
    /// without the background indexer (the caller embeds with [`StorageService::reindex`]).
    ///
    /// # Errors
    /// As [`StorageService::open`]; [`StorageError::InvalidInput`] when no embedder is configured.
    pub async fn open_for_reindex(config: StorageConfig) -> Result<Self> {
        Self::open_inner(config, OpenMode::Reindex, None, None).await
    }

    async fn open_inner(
        config: StorageConfig,
        mode: OpenMode,
        embedder: Option<Option<Arc<dyn Embedder>>>,
        wrap_store: Option<StoreWrapper>,
    ) -> Result<Self> {
        config.validate()?;
        config.warn_if_unwise();
        let (mut store, unlocked) = crate::store_open::open_store_and_keys(&config).await?;
        if let Some(wrap) = wrap_store {
            store = wrap(store);
        }
        let store: Arc<dyn VectorStore> = crate::store::verify::VerifiedStore::new(store);
        let sealer = Arc::new(unlocked.sealer());
        let keywords = Arc::new(KeywordEncoder::new(&*unlocked.index_subkey(Purpose::KeywordIndex)?));
        let embedder = match embedder {
            Some(given) => given,
            None => embed::from_config(&config.embedding).await?,
        };
        let dense = match embedder {
            Some(e) => Some(Arc::new(DenseSpace::new(
                e,
                &*unlocked.index_subkey(Purpose::VectorProtection)?,
            ))),
            None if mode == OpenMode::Reindex => {
                return Err(StorageError::InvalidInput {
                    field: "embedding.provider",
                    reason: "reindex needs an embedder: fetch the model (scripts/fetch-test-model.sh) or set [embedding] provider".into(),
                })
            }
            None => None,
        };
        let recorded = check_embedder(store.as_ref(), dense.as_deref(), mode).await?;
        let estate = EstateStorage::open(store.clone(), sealer.clone(), keywords.clone(), dense.clone()).await?;
        let chat = ChatStorage::open(
            store.clone(),
            sealer.clone(),
            keywords,
            dense.clone(),
            config.chat.max_message_bytes,
            mode == OpenMode::Normal,
        )
        .await?;
        let backup = BackupManager::new(
            &backup_site(&config),
            store.clone(),
            unlocked.backup_keys(),
            unlocked.status.store_id,
            Arc::new(crate::clock::now_ms),
        )
        .await?;
        Ok(StorageService {
            chat,
            estate,
            dense,
            recorded_embedding: std::sync::Mutex::new(recorded),
            backup,
            store,
            sealer,
            keys: std::sync::Mutex::new(unlocked.status),
            auto_backup: tokio::sync::Mutex::new(None),
            config,
            shut_down: AtomicBool::new(false),
        })
    }

    /// The configuration in effect.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// Key status (no secrets).
    pub fn key_status(&self) -> KeyStatus {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-wrap the data keys with a new key-encryption key from `to`; data is not touched.
    /// With [`DataKeyEpoch::New`] (after a leak of the current KEK), a new data key also
    /// starts sealing everything written from now on, wrapped under the new KEK and for the
    /// recovery kit only: the old KEK, with any envelope ever written, opens nothing newer.
    ///
    /// # Errors
    /// Crypto errors from either source; the old key keeps working if anything fails. For a
    /// new epoch while the recovery kit predates public keys, `KitCannotReceive`: issue a new
    /// kit first.
    pub async fn rotate_kek(&self, to: KeyConfig, epoch: DataKeyEpoch) -> Result<KeyStatus> {
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(StorageError::ShutDown);
        }
        let dir = self.config.data_dir.clone();
        let current = self.key_status();
        let mut current_config = self.config.keys.clone();
        current_config.source = current.key_source;
        let new_epoch = epoch == DataKeyEpoch::New;
        let unlocked =
            run_blocking(move || crypto::rotate_kek(&dir, &current_config, &to, new_epoch).map_err(StorageError::from))
                .await?;
        Ok(self.use_keys(unlocked))
    }

    /// Issue a new recovery kit for this store and start a new data-key epoch: the data keys
    /// are wrapped for the new recovery key only, which opens this store's backups on any
    /// machine (see [`RestoreOptions::recovery_key`](crate::RestoreOptions)), and a new data
    /// key seals everything written from now on. A previous kit opens nothing written after
    /// this call, in any backup, chunk or shipped journal; backups taken before keep opening
    /// with the kit that was current then. The key is returned once and never stored in clear.
    ///
    /// # Errors
    /// Crypto errors from the key source or the envelope (nothing changes then).
    pub async fn issue_recovery_kit(&self) -> Result<crate::crypto::RecoveryKit> {
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(StorageError::ShutDown);
        }
        let dir = self.config.data_dir.clone();
        let mut keys_config = self.config.keys.clone();
        keys_config.source = self.key_status().key_source;
        let (key, unlocked) =
            run_blocking(move || crypto::issue_recovery_key(&dir, &keys_config).map_err(StorageError::from)).await?;
        let status = self.use_keys(unlocked);
        Ok(crate::crypto::RecoveryKit {
            store_id: status.store_id,
            created_at_ms: status.recovery_kit_created_at_ms.unwrap_or_else(crate::clock::now_ms),
            key,
        })
    }

    /// Seal with `unlocked` from now on (records and backups), and report its status.
    fn use_keys(&self, unlocked: crypto::UnlockedKeys) -> KeyStatus {
        self.sealer.replace(&unlocked.data_keys, unlocked.active_key_id);
        self.backup.replace_keys(unlocked.backup_keys());
        let status = unlocked.status;
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = status.clone();
        status
    }

    /// A health report.
    ///
    /// # Errors
    /// Only [`StorageError::ShutDown`]; an unreachable store is reported in the result.
    pub async fn health(&self) -> Result<Health> {
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(StorageError::ShutDown);
        }
        let (reachable, collections) = match self.store.stats().await {
            Ok(c) => (true, c),
            Err(e) => {
                tracing::warn!(error = %e, "store did not answer the health check");
                (false, Vec::new())
            }
        };
        let keys = self.key_status();
        let dir = self.config.data_dir.clone();
        let (free, used) = run_blocking(move || Ok::<_, StorageError>((disk_free_bytes(&dir), dir_size(&dir))))
            .await
            .unwrap_or((None, 0));
        let pending_embeddings = self.chat.pending_embeddings().await.unwrap_or(0);
        let stored_embedding = self
            .recorded_embedding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(Health {
            store_reachable: reachable,
            backend: self.store.to_string(),
            data_dir: self.config.data_dir.clone(),
            store_id: keys.store_id,
            key_source: keys.key_source,
            key_location: keys.key_location,
            recovery_kit_created_at_ms: keys.recovery_kit_created_at_ms,
            collections,
            disk_free_bytes: free,
            data_dir_bytes: used,
            backup: self.backup.status_now().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not read the ship log for the health report");
                self.backup.status()
            }),
            embedding_model: self.chat.embedding_model().map(String::from),
            stored_embedding,
            pending_embeddings,
        })
    }

    /// Re-embed every message, then every estate resource, with the configured model (after
    /// [`StorageService::open_for_reindex`]), then record that model. Resumable: an
    /// interrupted run continues where it stopped. Reports `(done, total)` per phase.
    ///
    /// # Errors
    /// Store, crypto and embedding errors.
    pub async fn reindex(&self, progress: crate::progress::ProgressFn<'_>) -> Result<ReindexReport> {
        let Some(space) = &self.dense else {
            return Err(StorageError::InvalidInput {
                field: "embedding.provider",
                reason: "reindex needs an embedder".into(),
            });
        };
        let previous = self
            .recorded_embedding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let embedded = self.chat.embed_pending(progress).await?;
        let resources_embedded = self.estate.embed_missing(progress).await?;
        let record = EmbeddingRecord {
            model_id: space.model_id().to_string(),
            dim: space.spec().dim,
            slot: space.slot().to_string(),
        };
        embed::record::save(self.store.as_ref(), &record).await?;
        self.store.flush().await?;
        *self.recorded_embedding.lock().unwrap_or_else(|p| p.into_inner()) = Some(record.clone());
        Ok(ReindexReport {
            previous,
            current: record,
            embedded,
            resources_embedded,
        })
    }

    /// `keys rekey`: seal every record written in an older format or under an older data key
    /// again under the active key (see [`crate::RekeyReport`]). After a new key epoch this
    /// leaves the old data key nothing to open in the live store. Resumable (current records
    /// are skipped by their header); reads and writes go on meanwhile. Backups taken before
    /// keep their old keys: they age out with retention.
    ///
    /// # Errors
    /// Store and crypto errors (a record that does not authenticate stops the run: it is
    /// reported, never sealed again).
    pub async fn rekey(&self, progress: crate::progress::ProgressFn<'_>) -> Result<crate::rekey::RekeyReport> {
        use crate::names::{CONVERSATIONS, ESTATE, MESSAGES};
        let mut total = 0;
        for collection in [MESSAGES, CONVERSATIONS, ESTATE] {
            total += self.store.count(collection, None).await?;
        }
        let report = |done: u64| crate::progress::report(progress, crate::progress::Phase::Rekey, done, total);
        report(0);
        let messages = self.chat.reseal_messages(&report).await?;
        let conversations = self
            .chat
            .reseal_conversations(&|done| report(messages.scanned + done))
            .await?;
        let before = messages.scanned + conversations.scanned;
        let resources = self.estate.reseal_resources(&|done| report(before + done)).await?;
        self.store.flush().await?;
        let out = crate::rekey::RekeyReport {
            active_key_id: self.key_status().active_key_id,
            messages,
            conversations,
            resources,
        };
        tracing::info!(?out, "rekey done");
        Ok(out)
    }

    /// Stop the background work (backup schedule after a running backup, the embedding
    /// worker after a small queue), flush everything to disk and close the store. Every call
    /// after it returns a [`StorageError::ShutDown`] error (kind `shut_down`); a second
    /// `shutdown` returns `Ok`. The data-dir lock is released when this returns (unless a call
    /// still running holds the store past a 30 s grace; then when the service is dropped).
    ///
    /// # Errors
    /// Store errors from the final flush.
    pub async fn shutdown(&self) -> Result<()> {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.stop_auto_backup().await;
        self.chat.shutdown().await;
        self.ship_before_close().await;
        self.store.close().await?;
        tracing::debug!("storage service shut down");
        Ok(())
    }

    /// Ship what the journal still holds (shipping on), waiting at most
    /// [`SHIP_AT_SHUTDOWN`]: the writes of a short-lived process (the CLI) reach the bucket
    /// without a running schedule. A failure is logged; the records stay for the next open.
    async fn ship_before_close(&self) {
        if self.backup.ship_interval().is_none() {
            return;
        }
        match tokio::time::timeout(SHIP_AT_SHUTDOWN, self.backup.ship_journal()).await {
            Ok(Ok(report)) if report.records > 0 => {
                tracing::info!(records = report.records, "journal shipped at shutdown")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "shipping the journal at shutdown failed; it ships after the next open")
            }
            Err(_) => tracing::warn!("shipping the journal at shutdown timed out; it ships after the next open"),
        }
    }

    /// Copy the store of `config` (which must **not be open**: this takes the data-dir lock) to
    /// the store `to` describes, between the embedded engine and a Qdrant server either way.
    /// Collections are copied as stored (nothing is decrypted); a killed run resumes from its
    /// checkpoint when started again with the same target; counts and a sample of unsealed
    /// messages are verified; then `config_file`'s `[store]` section is set to `to` (other
    /// settings kept; comments are not). The source is left as it was. Progress:
    /// [`Phase::MigrateStore`](crate::Phase) in points.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for a target equal to the source, a remote target without a
    /// URL or one already holding collections; `Store(Locked)` while the store is open; store
    /// errors of either side (run it again to resume).
    pub async fn migrate_store(
        config: &StorageConfig,
        to: crate::StoreConfig,
        config_file: &Path,
        progress: crate::progress::ProgressFn<'_>,
    ) -> Result<crate::StoreMigrationReport> {
        crate::store_migrate::migrate_store(config, to, config_file, progress).await
    }

    /// Restore a backup into the store of `config`, which must **not be open** (restore takes
    /// the data-dir lock): the backup is verified and unpacked aside, checked, then swapped
    /// with the live collections atomically; any failure leaves the live data untouched. Open
    /// the service again afterwards. Progress: the restore phases of [`Phase`](crate::Phase).
    ///
    /// # Errors
    /// Kind `not_initialized` when the data dir holds no store; `locked` while the store is
    /// open; `wrong_key`, `corrupt_backup` and the other backup kinds otherwise.
    pub async fn restore_backup(
        config: &StorageConfig,
        options: &crate::backup::RestoreOptions,
        progress: crate::progress::ProgressFn<'_>,
    ) -> Result<crate::backup::RestoreReport> {
        Ok(crate::backup::restore(&backup_site(config), options, progress).await?)
    }

    /// The backups in the S3 bucket of `config`, without opening (or needing) a store: for
    /// a new machine choosing what to restore. Of `store_id`, or of every store in the bucket.
    /// Checked for form only; a restore authenticates the one it opens.
    ///
    /// # Errors
    /// Kind `backup` without `[backup.s3]` or when the bucket fails.
    pub async fn list_remote_backups(
        config: &StorageConfig,
        store_id: Option<uuid::Uuid>,
    ) -> Result<Vec<crate::backup::Manifest>> {
        Ok(crate::backup::list_remote_unopened(&backup_site(config), store_id).await?)
    }

    /// Compact and index every collection (qdrant-edge's optimizers), then checkpoint.
    ///
    /// Expensive and blocking for the collection being optimised (writes to it wait): run it
    /// from a maintenance task or after a bulk import, never on a request path.
    ///
    /// # Errors
    /// Store errors.
    pub async fn optimize(&self) -> Result<()> {
        for c in self.store.stats().await? {
            self.store.optimize(&c.name).await?;
        }
        Ok(self.store.flush().await?)
    }

    /// Start automatic backups every `[backup] interval_hours` (or `interval_minutes`).
    /// Restarts the schedule if it already runs.
    pub async fn start_auto_backup(&self) {
        self.start_auto_backup_every(self.config.backup.interval()).await;
    }

    /// Start automatic backups every `interval`.
    pub async fn start_auto_backup_every(&self, interval: std::time::Duration) {
        let mut slot = self.auto_backup.lock().await;
        if let Some(running) = slot.take() {
            running.stop().await;
        }
        *slot = Some(AutoBackup::start(self.backup.clone(), interval));
    }

    /// Stop automatic backups; a backup in progress finishes first.
    pub async fn stop_auto_backup(&self) {
        if let Some(running) = self.auto_backup.lock().await.take() {
            running.stop().await;
        }
    }

    /// Make every acknowledged write durable now.
    ///
    /// # Errors
    /// Store errors.
    pub async fn flush(&self) -> Result<()> {
        Ok(self.store.flush().await?)
    }
}

/// The longest [`StorageService::shutdown`] waits to ship the journal's last records.
const SHIP_AT_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(15);

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenMode {
    Normal,
    Reindex,
}

/// What [`StorageService::reindex`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ReindexReport {
    /// The model recorded before.
    pub previous: Option<EmbeddingRecord>,
    /// The model recorded now.
    pub current: EmbeddingRecord,
    /// Messages embedded by this run.
    pub embedded: u64,
    /// Estate resources embedded by this run.
    pub resources_embedded: u64,
}

/// Compare the configured embedder with the store's record; record it on first use.
async fn check_embedder(
    store: &dyn VectorStore,
    dense: Option<&DenseSpace>,
    mode: OpenMode,
) -> Result<Option<EmbeddingRecord>> {
    let recorded = embed::record::load(store).await?;
    let Some(space) = dense else {
        return Ok(recorded);
    };
    let current = EmbeddingRecord {
        model_id: space.model_id().to_string(),
        dim: space.spec().dim,
        slot: space.slot().to_string(),
    };
    match recorded {
        Some(r) if r.model_id == current.model_id && r.dim == current.dim => Ok(Some(r)),
        Some(r) if mode == OpenMode::Reindex => Ok(Some(r)),
        Some(r) => Err(EmbedError::Mismatch {
            stored: r.model_id,
            stored_dim: r.dim,
            configured: current.model_id,
            configured_dim: current.dim,
        }
        .into()),
        None => {
            // First model for this store: messages written without one get embedded by the
            // background indexer.
            embed::record::save(store, &current).await?;
            Ok(Some(current))
        }
    }
}

/// Create the data dir `0700`, or tighten an existing one with group or other access.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return crate::platform::private_dir_all(dir).map_err(|e| StorageError::io("creating data dir", dir, e));
    }
    match crate::platform::tighten_dir(dir) {
        Ok(Some(was)) => {
            tracing::warn!(data_dir = %dir.display(), was = format!("{was:o}"), "data dir was readable by others; made it 0700");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(StorageError::io(
            "making the data dir private (0700; it had group or other access)",
            dir,
            e,
        )),
    }
}

/// Whether the engine folder under `data_dir` holds any collection.
/// The parts of `config` backups use.
fn backup_site(config: &StorageConfig) -> crate::backup::BackupSite<'_> {
    crate::backup::BackupSite {
        data_dir: &config.data_dir,
        keys: &config.keys,
        backup: &config.backup,
        min_free_bytes: config.store.min_free_bytes,
        store: &config.store,
    }
}
