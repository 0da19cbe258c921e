//! `migrate store`: move a store's collections between the embedded engine and a Qdrant server
//! (either way, or between two servers), as stored: sealed payloads and vectors are copied
//! without being decrypted. Resumable: a checkpoint in the data dir records the collections
//! done and where the current one stopped, so a killed run continues where it was. Verified:
//! the point counts of every collection match, and a sample of messages unseals on the target
//! to what it unseals to on the source. Then the config file's `[store]` section is switched.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::blocking::run_blocking;
use crate::config::StorageConfig;
use crate::error::{Result, StorageError};
use crate::names::MESSAGES;
use crate::progress::{report, Phase, ProgressFn};
use crate::store::embedded::{lock_data_dir, DirLock};
use crate::store::{
    CollectionStats, EmbeddedOptions, EmbeddedStore, ScrollRequest, StoreConfig, StoreMode, VectorSelection,
    VectorStore,
};

/// The checkpoint file of a migration in progress, in the data dir.
pub(crate) const CHECKPOINT_FILE: &str = "migrate-store.json";
/// Messages unsealed on both sides to verify a migration.
const SAMPLE: usize = 50;

/// What [`crate::StorageService::migrate_store`] did.
#[derive(Debug, Clone, Serialize)]
pub struct StoreMigrationReport {
    /// The store copied from.
    pub from: String,
    /// The store copied to.
    pub to: String,
    /// Every collection with its point count, equal on both sides.
    pub collections: Vec<CollectionStats>,
    /// Points written by this run (a resumed run skips what an earlier one wrote).
    pub copied: u64,
    /// This run continued an interrupted one.
    pub resumed: bool,
    /// Messages unsealed on the target and compared with the source.
    pub sampled: usize,
    /// The config file whose `[store]` section now names the target.
    pub config_file: PathBuf,
    /// Time taken, ms.
    pub elapsed_ms: f64,
}

/// Where a migration stands (the checkpoint file).
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Checkpoint {
    /// Describes the target; a checkpoint for another target is not resumed.
    target: String,
    /// Collections copied completely.
    done: Vec<String>,
    /// The collection being copied and the first point not yet written.
    current: Option<(String, Option<uuid::Uuid>)>,
}

fn describe_target(to: &StoreConfig) -> String {
    match to.mode {
        StoreMode::Embedded => "embedded".into(),
        StoreMode::Remote => format!(
            "remote {} collections {}*",
            to.url.as_deref().unwrap_or_default(),
            to.collection_prefix
        ),
    }
}

fn invalid(reason: impl Into<String>) -> StorageError {
    StorageError::InvalidInput {
        field: "to",
        reason: reason.into(),
    }
}

fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StorageError::CorruptRecord {
                collection: "migrate-store checkpoint",
                id: path.display().to_string(),
                reason: format!("{e}; remove the file to start the migration over"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("reading", path, e)),
    }
}

fn write_checkpoint(path: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(checkpoint).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// Open one side of the migration; the embedded side takes the data-dir lock.
async fn open_side(store: &StoreConfig, data_dir: &Path, lock: &mut Option<DirLock>) -> Result<Box<dyn VectorStore>> {
    match store.mode {
        StoreMode::Embedded => {
            let lock = lock
                .take()
                .ok_or_else(|| invalid("both sides are the embedded store of this data dir"))?;
            let (dir, min_free_bytes) = (data_dir.to_path_buf(), store.min_free_bytes);
            let opened = run_blocking(move || {
                Ok::<_, StorageError>(EmbeddedStore::open_locked(
                    &dir,
                    EmbeddedOptions {
                        min_free_bytes,
                        ..EmbeddedOptions::default()
                    },
                    lock,
                )?)
            })
            .await?;
            Ok(Box::new(opened))
        }
        StoreMode::Remote => open_remote(store).await,
    }
}

#[cfg(feature = "remote")]
async fn open_remote(store: &StoreConfig) -> Result<Box<dyn VectorStore>> {
    use crate::store::remote::{RemoteOptions, RemoteStore};
    let config = store.clone();
    let options = run_blocking(move || Ok::<_, StorageError>(RemoteOptions::from_config(&config)?)).await?;
    Ok(Box::new(RemoteStore::connect(options).await?))
}

#[cfg(not(feature = "remote"))]
async fn open_remote(_store: &StoreConfig) -> Result<Box<dyn VectorStore>> {
    Err(invalid("this build has no remote store (cargo feature `remote`)"))
}

/// Copy the store of `config` to `to`, verify, and point `config_file`'s `[store]` at `to`.
pub(crate) async fn migrate_store(
    config: &StorageConfig,
    to: StoreConfig,
    config_file: &Path,
    progress: ProgressFn<'_>,
) -> Result<StoreMigrationReport> {
    let started = std::time::Instant::now();
    config.validate()?;
    if to.mode == StoreMode::Remote && to.url.as_deref().is_none_or(str::is_empty) {
        return Err(invalid("a remote target needs a URL (--to-url)"));
    }
    if describe_target(&to) == describe_target(&config.store) {
        return Err(invalid(format!("the store is already {}", describe_target(&to))));
    }
    let data_dir = config.data_dir.clone();
    if !crate::crypto::keys_exist(&data_dir) {
        return Err(StorageError::NotInitialized {
            path: data_dir.display().to_string(),
        });
    }
    let (dir, keys_config) = (data_dir.clone(), config.keys.clone());
    let (lock, unlocked) = run_blocking(move || {
        let lock = lock_data_dir(&dir)?;
        let unlocked = crate::crypto::open_keys(&dir, &keys_config)?;
        Ok::<_, StorageError>((lock, unlocked))
    })
    .await?;
    let sealer = unlocked.sealer();
    let checkpoint_path = data_dir.join(CHECKPOINT_FILE);
    let target_name = describe_target(&to);
    let previous = read_checkpoint(&checkpoint_path)?.filter(|c| c.target == target_name);
    let resumed = previous.is_some();
    let mut checkpoint = previous.unwrap_or(Checkpoint {
        target: target_name,
        ..Checkpoint::default()
    });

    let mut lock = Some(lock);
    let source = open_side(&config.store, &data_dir, &mut lock).await?;
    let target = open_side(&to, &data_dir, &mut lock).await?;
    let result = async {
        if !resumed && !target.stats().await?.is_empty() {
            return Err(invalid(format!(
                "{target} already holds collections: choose another store.collection_prefix, or move them away first"
            )));
        }
        let collections = source.stats().await?;
        let total: u64 = collections.iter().map(|c| c.points).sum();
        let mut copied = 0;
        let mut done_points: u64 = collections
            .iter()
            .filter(|c| checkpoint.done.contains(&c.name))
            .map(|c| c.points)
            .sum();
        for collection in &collections {
            if checkpoint.done.contains(&collection.name) {
                continue;
            }
            let resume_from = match &checkpoint.current {
                Some((name, next)) if *name == collection.name => *next,
                _ => None,
            };
            let base = done_points;
            let on_page = |_: &str, in_collection: u64, _: u64| {
                report(progress, Phase::MigrateStore, base + in_collection, total);
            };
            let path = checkpoint_path.clone();
            let name = collection.name.clone();
            let mut state = std::mem::take(&mut checkpoint);
            let result = crate::store::copy::copy_collection(
                source.as_ref(),
                target.as_ref(),
                &collection.name,
                resume_from,
                &on_page,
                |next| {
                    state.current = Some((name.clone(), next));
                    write_checkpoint(&path, &state).map_err(|source| crate::store::StoreError::Io {
                        action: "writing the migration checkpoint",
                        path: path.display().to_string(),
                        source,
                    })
                },
            )
            .await;
            checkpoint = state;
            copied += result?;
            checkpoint.done.push(collection.name.clone());
            checkpoint.current = None;
            write_checkpoint(&checkpoint_path, &checkpoint)
                .map_err(|e| StorageError::io("writing", &checkpoint_path, e))?;
            done_points += collection.points;
        }
        target.flush().await?;
        let verified = verify(source.as_ref(), target.as_ref(), &collections).await?;
        let sampled = sample_unsealed(source.as_ref(), target.as_ref(), &sealer).await?;
        Ok((verified, copied, sampled))
    }
    .await;
    let closed_target = target.close().await;
    let closed_source = source.close().await;
    drop(lock);
    let (collections, copied, sampled) = result?;
    closed_target?;
    closed_source?;
    switch_config(config_file, &to)?;
    std::fs::remove_file(&checkpoint_path).map_err(|e| StorageError::io("removing", &checkpoint_path, e))?;
    tracing::info!(to = %describe_target(&to), copied, "store migrated");
    Ok(StoreMigrationReport {
        from: describe_target(&config.store),
        to: describe_target(&to),
        collections,
        copied,
        resumed,
        sampled,
        config_file: config_file.to_path_buf(),
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// Point counts equal on both sides, collection by collection.
async fn verify(
    source: &dyn VectorStore,
    target: &dyn VectorStore,
    collections: &[CollectionStats],
) -> Result<Vec<CollectionStats>> {
    let mut verified = Vec::new();
    for c in collections {
        let (expected, found) = (source.count(&c.name, None).await?, target.count(&c.name, None).await?);
        if expected != found {
            return Err(StorageError::Store(crate::store::StoreError::Backend {
                backend: "migration",
                collection: c.name.clone(),
                operation: "verify counts",
                source: format!("{expected} points in the source, {found} in the target: run the migration again")
                    .into(),
            }));
        }
        verified.push(CollectionStats {
            name: c.name.clone(),
            points: found,
            segments: c.segments,
        });
    }
    Ok(verified)
}

/// Unseal a sample of messages on both sides and compare them.
async fn sample_unsealed(
    source: &dyn VectorStore,
    target: &dyn VectorStore,
    sealer: &crate::crypto::Sealer,
) -> Result<usize> {
    let Ok(page) = source
        .scroll(
            MESSAGES,
            ScrollRequest {
                limit: SAMPLE,
                ..ScrollRequest::default()
            },
        )
        .await
    else {
        return Ok(0);
    };
    let ids: Vec<_> = page.records.iter().map(|r| r.id).collect();
    let copies = target.retrieve(MESSAGES, ids, VectorSelection::None).await?;
    if copies.len() != page.records.len() {
        return Err(invalid(
            "sampled messages are missing on the target: run the migration again",
        ));
    }
    for (original, copy) in page.records.iter().zip(&copies) {
        let a = crate::chat::schema::message_from_record(original, sealer)?;
        let b = crate::chat::schema::message_from_record(copy, sealer)?;
        if a != b {
            return Err(invalid(format!("message {} reads differently on the target", a.id)));
        }
    }
    Ok(copies.len())
}

/// Point the `[store]` section of `path` (created when missing) at `to`; other settings stay.
fn switch_config(path: &Path, to: &StoreConfig) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(StorageError::io("reading", path, e)),
    };
    let mut doc: toml::Table =
        toml::from_str(&text).map_err(|e| invalid(format!("{} is not TOML: {e}", path.display())))?;
    let store = toml::Value::try_from(to).map_err(|e| invalid(format!("cannot write [store]: {e}")))?;
    doc.insert("store".into(), store);
    let out = toml::to_string(&doc).map_err(|e| invalid(format!("cannot write {}: {e}", path.display())))?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, out).map_err(|e| StorageError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| StorageError::io("writing", path, e))
}
