//! Restore: into the store of this data dir, or — disaster recovery — into an empty data dir
//! on a new machine, from the bucket alone with the store's recovery key.
//!
//! Either way the backup is chosen among manifests the keys authenticate, downloaded (from
//! S3), unpacked aside, opened and counted, and only then swapped with the live collections in
//! one atomic exchange. Nothing is written before the keys open the chosen backup, and any
//! failure leaves the live data (or the empty data dir) as it was.

use std::path::{Path, PathBuf};

use super::head::{self, Head, HeadState};
use super::manifest::{self, Manifest};
use super::{
    blocking, choose, ensure_space, incremental, io_err, shipping, snapshots_dir, unpack_and_check, BackupError,
    BackupSite, JournalReplay, ObjectStore, RestoreOptions, RestoreReport, RestoreTarget, S3Target, Source,
    PREVIOUS_PREFIX,
};
use crate::crypto::{self, CryptoError, KeyConfig, RecoveryKey, UnlockedKeys, WrappedKeys};
use crate::progress::{report, Phase, ProgressFn};
use crate::store::embedded::{lock_data_dir, DirLock, QDRANT_DIR};

const STEPS: u64 = 3;

/// Where the chosen archive is.
enum Origin {
    /// The local snapshots folder.
    Local(PathBuf),
    /// The bucket.
    Remote(std::sync::Arc<S3Target>),
}

/// A backup chosen for restore, with the keys that open it.
struct Chosen {
    manifest: Manifest,
    unlocked: UnlockedKeys,
    origin: Origin,
    /// Set when restoring into an empty data dir: the keys to install afterwards.
    install: Option<WrappedKeys>,
    /// Some authenticated backup of the target was written with a head object after it.
    headed: bool,
}

/// Restore a backup into a store that is **not open** (this takes the data-dir lock). With
/// a store in the data dir, its own keys choose and open the backup (local or S3). With an
/// empty data dir, the backup comes from S3 and is opened with `options.recovery_key` (or the
/// configured key source), and its keys are then installed under this machine's key source.
/// Progress: [`Phase::RestoreDownload`], [`Phase::RestoreCheck`], [`Phase::RestoreSwap`].
///
/// # Errors
/// [`BackupError::NotInitialized`] for an empty data dir without `from_s3`;
/// [`BackupError::StoreExists`] for a recovery key given with a store present;
/// `Store(Locked)` while the store is open elsewhere; crypto errors for a wrong key or
/// recovery key (nothing written); every [`BackupError`] that `verify` can return; from S3,
/// also [`BackupError::NoRemote`], [`BackupError::AmbiguousStore`] and [`BackupError::Target`].
pub(crate) async fn restore(
    site: &BackupSite<'_>,
    options: &RestoreOptions,
    progress: ProgressFn<'_>,
) -> Result<RestoreReport, BackupError> {
    let started = std::time::Instant::now();
    let data_dir = site.data_dir.to_path_buf();
    let (lock, chosen) = if crypto::keys_exist(&data_dir) {
        choose_for_store(site, options).await?
    } else {
        choose_for_new_machine(site, options).await?
    };
    let manifest = chosen.manifest.clone();
    let mut warnings = Vec::new();
    let head = check_head(site, options, &chosen, &mut warnings).await?;
    let (source, download) = match &chosen.origin {
        Origin::Local(dir) => (Source::Archive(dir.clone()), None),
        Origin::Remote(s3) => remote_source(site.data_dir, site.min_free_bytes, s3, &manifest, progress).await?,
    };
    report(progress, Phase::RestoreCheck, 1, STEPS);
    let reserve = site.min_free_bytes;
    let checked = blocking(move || {
        let keys = chosen.unlocked.backup_keys();
        let unpacked = unpack_and_check(&data_dir, &source, &chosen.manifest, &keys, reserve, ".restore-")?;
        Ok((lock, unpacked, data_dir, chosen))
    })
    .await;
    let mut journal = None;
    let checked = match checked {
        Ok((lock, unpacked, data_dir, chosen)) => {
            match replay_shipped(site, options, &chosen, &unpacked, head.as_ref(), &mut warnings).await {
                Ok(replayed) => {
                    journal = replayed;
                    Ok((lock, unpacked, data_dir, chosen))
                }
                Err(e) => {
                    let _ = blocking(move || {
                        let _ = std::fs::remove_dir_all(&unpacked);
                        Ok(())
                    })
                    .await;
                    Err(e)
                }
            }
        }
        Err(e) => Err(e),
    };
    let swapped = match checked {
        Ok((lock, unpacked, data_dir, chosen)) if site.store.mode == crate::store::StoreMode::Remote => {
            report(progress, Phase::RestoreSwap, 2, STEPS);
            let previous = into_server(site.store, &unpacked, &data_dir).await;
            let installed = match (&previous, &chosen.install) {
                (Ok(_), Some(wrapped)) => {
                    let (data_dir, wrapped, keys_config) = (data_dir.clone(), wrapped.clone(), site.keys.clone());
                    Some(
                        blocking(move || {
                            Ok(crypto::install_keys(
                                &data_dir,
                                &wrapped,
                                &chosen.unlocked,
                                &keys_config,
                            )?)
                        })
                        .await,
                    )
                }
                _ => None,
            };
            drop(lock);
            match (previous, installed) {
                (Ok(previous), Some(Ok(keys))) => Ok((previous, Some(keys))),
                (Ok(previous), None) => Ok((previous, None)),
                (_, Some(Err(e))) | (Err(e), _) => Err(e),
            }
        }
        Ok((lock, unpacked, data_dir, chosen)) => {
            report(progress, Phase::RestoreSwap, 2, STEPS);
            let keys_config = site.keys.clone();
            blocking(move || {
                let _lock: DirLock = lock;
                let previous = swap_in(&unpacked, &data_dir)?;
                let installed = match &chosen.install {
                    Some(wrapped) => Some(crypto::install_keys(
                        &data_dir,
                        wrapped,
                        &chosen.unlocked,
                        &keys_config,
                    )?),
                    None => None,
                };
                tracing::info!(backup = %chosen.manifest.name, "restored");
                Ok((previous, installed))
            })
            .await
        }
        Err(e) => Err(e),
    };
    if let Some(download) = download {
        let _ = blocking(move || {
            let _ = std::fs::remove_dir_all(download);
            Ok(())
        })
        .await;
    }
    let (previous_data, keys) = swapped?;
    report(progress, Phase::RestoreSwap, STEPS, STEPS);
    Ok(RestoreReport {
        backup: manifest,
        previous_data,
        keys,
        journal,
        warnings,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// A shortfall against the head: an error, or with `accept_gap` a warning kept for the report.
fn shortfall<'a>(
    options: &'a RestoreOptions,
    warnings: &'a mut Vec<String>,
) -> impl FnMut(String) -> Result<(), BackupError> + 'a {
    move |reason| {
        if !options.accept_gap {
            return Err(BackupError::Incomplete { reason });
        }
        tracing::warn!(reason, "restoring anyway (--accept-gap)");
        warnings.push(reason);
        Ok(())
    }
}

/// Hold a restore from the bucket to the target's authenticated head, before anything is
/// downloaded: the head must be there (when backups say one was written), authentic, not
/// older than the last one this store wrote, and for `Latest` the chosen backup at least
/// the newest it names. Returns the head for the journal's check.
async fn check_head(
    site: &BackupSite<'_>,
    options: &RestoreOptions,
    chosen: &Chosen,
    warnings: &mut Vec<String>,
) -> Result<Option<Head>, BackupError> {
    let Origin::Remote(s3) = &chosen.origin else {
        return Ok(None);
    };
    let store_id = chosen.manifest.store_id;
    let keys = chosen.unlocked.backup_keys();
    let wants_newest = options.target == RestoreTarget::Latest;
    let wants_journal = !options.skip_journal && !matches!(options.target, RestoreTarget::Named(_));
    let mut shortfall = shortfall(options, warnings);
    let head = match head::read(&**s3, &store_id, &keys).await? {
        HeadState::Verified(head) => head,
        HeadState::Absent => {
            if chosen.headed && (wants_newest || wants_journal) {
                shortfall("the head object is missing, though backups here say one was written".into())?;
            }
            return Ok(None);
        }
        HeadState::NewerKey(key_id) if wants_newest => return Err(BackupError::HeadNewerKey { key_id }),
        HeadState::NewerKey(_) => return Ok(None),
        HeadState::Invalid(reason) => {
            shortfall(format!("the head object does not authenticate ({reason})"))?;
            return Ok(None);
        }
    };
    if let Some(seen) = head::read_local(site.data_dir, &store_id, &keys) {
        if seen.counter > head.counter {
            shortfall(format!(
                "the head was rolled back: it is number {}, this store last wrote number {}",
                head.counter, seen.counter
            ))?;
        }
    }
    if let Some(newest) = head.newest_backup.as_ref().filter(|_| wants_newest) {
        let chosen = &chosen.manifest;
        if chosen.name != newest.name && chosen.created_at_ms <= newest.created_at_ms {
            shortfall(format!(
                "the newest backup it names, {}, is missing or does not authenticate (the newest here is {})",
                newest.name, chosen.name
            ))?;
        }
    }
    Ok(Some(head))
}

/// Replay onto the unpacked backup the journal shipped after it: for `Latest` all of it, for
/// `At(t)` the records written up to `t`; nothing for `Named`, with `skip_journal`, for a
/// backup of a store that did not ship, or (a local backup) without `[backup.s3]`.
async fn replay_shipped(
    site: &BackupSite<'_>,
    options: &RestoreOptions,
    chosen: &Chosen,
    unpacked: &Path,
    head: Option<&Head>,
    warnings: &mut Vec<String>,
) -> Result<Option<JournalReplay>, BackupError> {
    let until = match options.target {
        _ if options.skip_journal => return Ok(None),
        RestoreTarget::Named(_) => return Ok(None),
        RestoreTarget::Latest => None,
        RestoreTarget::At(t) => Some(t),
    };
    let Some(mark) = &chosen.manifest.journal else {
        return Ok(None);
    };
    let store_id = chosen.manifest.store_id;
    let objects: std::sync::Arc<dyn ObjectStore> = match (&chosen.origin, &site.backup.s3) {
        (Origin::Remote(s3), _) => s3.clone(),
        (Origin::Local(_), Some(config)) => std::sync::Arc::new(S3Target::new(config, &store_id).await?),
        (Origin::Local(_), None) => return Ok(None),
    };
    let keys = chosen.unlocked.backup_keys();
    let head = match head {
        Some(head) => Some(head.clone()),
        // A local backup replaying the bucket's journal: the bucket's head still bounds it.
        None => match head::read(&*objects, &store_id, &keys).await? {
            HeadState::Verified(head) => Some(head),
            _ => None,
        },
    };
    let fetched = shipping::fetch(&*objects, &keys, &store_id, mark, until).await?;
    let (replay, records) = (fetched.replay, fetched.records);
    let mut shortfall = shortfall(options, warnings);
    if let Some(missing) = replay.missing_seq {
        shortfall(format!(
            "shipped record {missing} of the journal is missing: the records after it cannot be applied"
        ))?;
    } else if let Some(end) = head.as_ref().and_then(|h| h.journal.as_ref()) {
        let reached = replay.last_seq.unwrap_or(mark.next_seq.saturating_sub(1));
        if end.generation == mark.generation && end.last_seq > reached && !fetched.stopped_at_time {
            shortfall(format!(
                "the shipped journal ends at record {reached}, but the head names record {}: the last shipments are missing",
                end.last_seq
            ))?;
        }
    }
    if !records.is_empty() {
        let (unpacked, reserve) = (unpacked.to_path_buf(), site.min_free_bytes);
        let bodies = records.into_iter().map(|r| r.body).collect();
        blocking(move || Ok(crate::store::embedded::apply_shipped(&unpacked, bodies, reserve)?)).await?;
    }
    tracing::info!(
        backup = %chosen.manifest.name,
        records = replay.records,
        last_record_ms = replay.last_record_ms,
        missing = replay.missing_seq,
        "replayed the shipped journal"
    );
    Ok(Some(replay))
}

/// The data dir holds a store: lock it, open its keys, choose among the backups they
/// authenticate.
async fn choose_for_store(site: &BackupSite<'_>, options: &RestoreOptions) -> Result<(DirLock, Chosen), BackupError> {
    let data_dir = site.data_dir.to_path_buf();
    if options.recovery_key.is_some() {
        return Err(BackupError::StoreExists {
            path: data_dir.display().to_string(),
        });
    }
    let keys_config = site.keys.clone();
    let (lock, unlocked) = blocking(move || {
        let lock = lock_data_dir(&data_dir)?;
        let unlocked = crypto::open_keys(&data_dir, &keys_config)?;
        Ok((lock, unlocked))
    })
    .await?;
    let store_id = unlocked.status.store_id;
    let keys = unlocked.backup_keys();
    let chosen = if options.from_s3 {
        let s3 = S3Target::new(site.backup.s3.as_ref().ok_or(BackupError::NoRemote)?, &store_id).await?;
        let all = manifest::authentic(s3.list().await?, &keys);
        let headed = all.iter().any(|m| m.head);
        (
            choose(&all, &options.target)?,
            Origin::Remote(std::sync::Arc::new(s3)),
            headed,
        )
    } else {
        let dir = snapshots_dir(site.data_dir, &store_id);
        let folder = dir.clone();
        let target = options.target.clone();
        let manifest = blocking(move || {
            let all = manifest::authentic(manifest::list(&folder, &store_id)?, &keys);
            choose(&all, &target)
        })
        .await?;
        (manifest, Origin::Local(dir), false)
    };
    let (manifest, origin, headed) = chosen;
    let chosen = Chosen {
        manifest,
        unlocked,
        origin,
        install: None,
        headed,
    };
    Ok((lock, chosen))
}

/// The data dir is empty (a new machine): find the store in the bucket, open its backups
/// with the recovery key (or the configured source), choose, and only then take the lock.
async fn choose_for_new_machine(
    site: &BackupSite<'_>,
    options: &RestoreOptions,
) -> Result<(DirLock, Chosen), BackupError> {
    let path = site.data_dir.display().to_string();
    if !options.from_s3 {
        return Err(BackupError::NotInitialized { path });
    }
    let s3_config = site.backup.s3.as_ref().ok_or(BackupError::NoRemote)?;
    let store_id = match options.store_id {
        Some(id) => id,
        None => only_store(S3Target::store_ids(s3_config).await?)?,
    };
    let s3 = S3Target::new(s3_config, &store_id).await?;
    let all = s3.list().await?;
    let (manifest, unlocked, headed) = open_and_choose(all, &options.target, options.recovery_key.as_ref(), site.keys)?;
    let install = manifest.keys.clone();
    let (data_dir, keys_config) = (site.data_dir.to_path_buf(), site.keys.clone());
    let lock = blocking(move || {
        // This machine's key source must be usable before anything is downloaded.
        crypto::probe_source(&keys_config, &store_id)?;
        create_private_dir(&data_dir)?;
        let lock = lock_data_dir(&data_dir)?;
        if crypto::keys_exist(&data_dir) {
            return Err(BackupError::StoreExists {
                path: data_dir.display().to_string(),
            });
        }
        Ok(lock)
    })
    .await?;
    let chosen = Chosen {
        manifest,
        unlocked,
        origin: Origin::Remote(std::sync::Arc::new(s3)),
        install,
        headed,
    };
    Ok((lock, chosen))
}

fn only_store(stores: Vec<uuid::Uuid>) -> Result<uuid::Uuid, BackupError> {
    match stores.as_slice() {
        [] => Err(BackupError::NotFound("the bucket holds no backups".into())),
        [one] => Ok(*one),
        many => Err(BackupError::AmbiguousStore {
            count: many.len(),
            stores: many.iter().map(uuid::Uuid::to_string).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Open every manifest's keys with `recovery` (or `config`'s source), keep those whose keys
/// authenticate them, and choose `target` among them. When the backup `target` names does not
/// open (or, for the newest, a newer one does not), that is the error: a restore never falls
/// back silently to older data than was asked for.
fn open_and_choose(
    all: Vec<Manifest>,
    target: &RestoreTarget,
    recovery: Option<&RecoveryKey>,
    config: &KeyConfig,
) -> Result<(Manifest, UnlockedKeys, bool), BackupError> {
    let mut opened: Vec<(Manifest, UnlockedKeys)> = Vec::new();
    let mut refused: Vec<(Manifest, CryptoError)> = Vec::new();
    for m in all {
        let unlocked = match &m.keys {
            Some(keys) => crypto::unlock_wrapped(keys, recovery, config),
            None => Err(CryptoError::NoRecoveryKit {
                what: format!("backup {} (made before backups carried their keys)", m.name),
            }),
        };
        match unlocked {
            Ok(unlocked) => match m.authenticate(&unlocked.backup_keys()) {
                Ok(()) => opened.push((m, unlocked)),
                Err(reason) => tracing::warn!(backup = %m.name, reason, "backup manifest refused"),
            },
            Err(e) => refused.push((m, e)),
        }
    }
    let openable: Vec<Manifest> = opened.iter().map(|(m, _)| m.clone()).collect();
    let unopened: Vec<Manifest> = refused.iter().map(|(m, _)| m.clone()).collect();
    let mut key_error = |wanted: &Manifest| -> BackupError {
        let index = refused.iter().position(|(m, _)| m.name == wanted.name).unwrap_or(0);
        match refused.swap_remove(index).1 {
            CryptoError::WrongRecoveryKey { hint } => CryptoError::WrongRecoveryKey {
                hint: format!("backup {}: {hint}", wanted.name),
            }
            .into(),
            other => other.into(),
        }
    };
    match choose(&openable, target) {
        Ok(found) => {
            if *target == RestoreTarget::Latest {
                if let Some(newer) = unopened.iter().rfind(|m| m.created_at_ms > found.created_at_ms) {
                    tracing::warn!(newest = %newer.name, opens = %found.name, "the key does not open the newest backup");
                    return Err(key_error(newer));
                }
            }
            let headed = opened.iter().any(|(m, _)| m.head);
            let index = opened.iter().position(|(m, _)| m.name == found.name).unwrap_or(0);
            let (manifest, unlocked) = opened.swap_remove(index);
            Ok((manifest, unlocked, headed))
        }
        Err(not_found) => match choose(&unopened, target) {
            Ok(wanted) => Err(key_error(&wanted)),
            Err(_) => Err(not_found),
        },
    }
}

/// Where to read the remote backup `manifest` from: its chunks, fetched as the unpack reads
/// them, or (an archive uploaded by an earlier version) a folder this call creates in
/// `data_dir` and downloads the archive into, returned second for the caller to remove.
pub(super) async fn remote_source(
    data_dir: &Path,
    min_free_bytes: u64,
    s3: &std::sync::Arc<S3Target>,
    manifest: &Manifest,
    progress: ProgressFn<'_>,
) -> Result<(Source, Option<PathBuf>), BackupError> {
    if manifest.format == incremental::CHUNKED_FORMAT {
        let objects: std::sync::Arc<dyn ObjectStore> = s3.clone();
        return Ok((Source::Chunks(objects, tokio::runtime::Handle::current()), None));
    }
    let data_dir = data_dir.to_path_buf();
    let needed = manifest
        .archive_bytes
        .checked_add(manifest.data_bytes)
        .and_then(|n| n.checked_add(min_free_bytes))
        .ok_or_else(|| BackupError::Corrupt {
            name: manifest.name.clone(),
            reason: "the manifest's sizes overflow".into(),
        })?;
    ensure_space(&data_dir, needed)?;
    report(progress, Phase::RestoreDownload, 0, STEPS);
    let prefix = format!(".download-{}-", manifest.name);
    let folder = blocking(move || super::new_private_folder(&data_dir, &prefix)).await?;
    if let Err(e) = s3.fetch(manifest, &folder).await {
        let _ = blocking(move || {
            let _ = std::fs::remove_dir_all(&folder);
            Ok(())
        })
        .await;
        return Err(e);
    }
    Ok((Source::Archive(folder.clone()), Some(folder)))
}

/// Swap the checked, unpacked backup with the live collections; the old ones are kept aside
/// until the next backup. Returns where.
fn swap_in(unpacked: &Path, data_dir: &Path) -> Result<Option<PathBuf>, BackupError> {
    let live = data_dir.join(QDRANT_DIR);
    let incoming = unpacked.join(QDRANT_DIR);
    if live.exists() {
        let kept = data_dir.join(format!("{PREVIOUS_PREFIX}{}", crate::clock::now_ms()));
        crate::platform::swap_dirs(&incoming, &live, &kept.join(QDRANT_DIR)).map_err(io_err(&live))?;
        let _ = std::fs::remove_dir_all(unpacked);
        Ok(Some(kept))
    } else {
        std::fs::rename(&incoming, &live).map_err(io_err(&live))?;
        let _ = std::fs::remove_dir_all(unpacked);
        Ok(None)
    }
}

/// Remote mode: replace this store's collections on the server with the unpacked backup. The
/// server's current collections are first exported into `<data_dir>/.previous-<ms>/` (kept
/// like the embedded store's replaced data); then each collection is dropped and copied from
/// the backup. A failure part-way leaves the backup unpacked and the export in place: run the
/// restore again.
#[cfg(feature = "remote")]
async fn into_server(
    store: &crate::store::StoreConfig,
    unpacked: &Path,
    data_dir: &Path,
) -> Result<Option<PathBuf>, BackupError> {
    use crate::store::remote::{RemoteOptions, RemoteStore};
    use crate::store::{EmbeddedOptions, EmbeddedStore, VectorStore};

    let config = store.clone();
    let options = blocking(move || Ok(RemoteOptions::from_config(&config)?)).await?;
    let server = RemoteStore::connect(options).await?;
    let kept = data_dir.join(format!("{PREVIOUS_PREFIX}{}", crate::clock::now_ms()));
    let existing = server.stats().await?;
    let previous = if existing.is_empty() {
        None
    } else {
        server.snapshot(&kept).await?;
        Some(kept)
    };
    let source = unpacked.to_path_buf();
    let backup = blocking(move || {
        Ok(EmbeddedStore::open_with(
            &source,
            EmbeddedOptions {
                min_free_bytes: 0,
                ..EmbeddedOptions::default()
            },
        )?)
    })
    .await?;
    let result = async {
        for collection in &existing {
            server.drop_collection(&collection.name).await?;
        }
        let quiet = |_: &str, _: u64, _: u64| {};
        crate::store::copy::copy_all(&backup, &server, &quiet).await
    }
    .await;
    backup.close().await?;
    server.close().await?;
    result?;
    let unpacked = unpacked.to_path_buf();
    blocking(move || {
        let _ = std::fs::remove_dir_all(&unpacked);
        Ok(())
    })
    .await?;
    tracing::info!(?previous, "restored into the Qdrant server");
    Ok(previous)
}

#[cfg(not(feature = "remote"))]
async fn into_server(
    _store: &crate::store::StoreConfig,
    _unpacked: &Path,
    _data_dir: &Path,
) -> Result<Option<PathBuf>, BackupError> {
    Err(BackupError::Store(crate::store::StoreError::Unsupported {
        backend: "this build",
        operation: "restore into a Qdrant server (cargo feature `remote`)",
    }))
}

fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    crate::platform::private_dir_all(dir).map_err(io_err(dir))
}

/// Manifests in the bucket without a local store or key (`backup list --remote` on a new
/// machine): of `store_id`, or of every store there. They are checked for form only: nothing
/// here can authenticate them until a restore opens them with a key.
///
/// # Errors
/// [`BackupError::NoRemote`] without `[backup.s3]`; [`BackupError::Target`].
pub(crate) async fn list_remote_unopened(
    site: &BackupSite<'_>,
    store_id: Option<uuid::Uuid>,
) -> Result<Vec<Manifest>, BackupError> {
    let s3_config = site.backup.s3.as_ref().ok_or(BackupError::NoRemote)?;
    let stores = match store_id {
        Some(id) => vec![id],
        None => S3Target::store_ids(s3_config).await?,
    };
    let mut all = Vec::new();
    for id in stores {
        all.extend(S3Target::new(s3_config, &id).await?.list().await?);
    }
    Ok(all)
}
