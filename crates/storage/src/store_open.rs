//! Opening the configured store (`[store] mode`) together with the data dir's keys.
//!
//! In both modes the data dir holds the keys and backups and is locked by this process. In
//! remote mode the collections live on the server, which also records which store (key
//! envelope) they belong to, so another data dir's keys cannot write into them by mistake.

use std::path::Path;
use std::sync::Arc;

use crate::blocking::run_blocking;
use crate::config::StorageConfig;
use crate::crypto::{self, UnlockedKeys};
use crate::error::{Result, StorageError};
use crate::store::{EmbeddedOptions, EmbeddedStore, StoreMode, VectorStore};

/// The store and the unlocked keys, as `[store]` and `[keys]` say.
pub(crate) async fn open_store_and_keys(config: &StorageConfig) -> Result<(Arc<dyn VectorStore>, UnlockedKeys)> {
    match config.store.mode {
        StoreMode::Embedded => open_embedded(config).await,
        StoreMode::Remote => open_remote(config).await,
    }
}

fn refuse_missing_keys(dir: &Path, holder: &str) -> StorageError {
    StorageError::Crypto(crypto::CryptoError::Envelope {
        path: dir.join(crypto::ENVELOPE_FILE).display().to_string(),
        reason: format!("is missing, but {holder} holds collections sealed under it; refusing to create new keys (the data would become unreadable): put keys.json back from a copy of the data dir, or restore the store from a backup"),
    })
}

fn check_creation_allowed(config: &StorageConfig) -> Result<bool> {
    let exists = crypto::keys_exist(&config.data_dir);
    if !exists && !config.create_if_missing {
        return Err(StorageError::NotInitialized {
            path: config.data_dir.display().to_string(),
        });
    }
    Ok(exists)
}

fn open_or_create_keys(config: &StorageConfig) -> Result<UnlockedKeys> {
    let dir = &config.data_dir;
    if crypto::keys_exist(dir) {
        Ok(crypto::open_keys(dir, &config.keys)?)
    } else {
        tracing::info!(data_dir = %dir.display(), source = %config.keys.source, "creating a new store");
        Ok(crypto::create_keys(dir, &config.keys)?)
    }
}

async fn open_embedded(config: &StorageConfig) -> Result<(Arc<dyn VectorStore>, UnlockedKeys)> {
    let cfg = config.clone();
    let (store, unlocked) = run_blocking(move || -> Result<_> {
        let dir = &cfg.data_dir;
        let exists = check_creation_allowed(&cfg)?;
        if !exists && holds_collections(dir) {
            return Err(refuse_missing_keys(dir, "the data dir"));
        }
        crate::service::create_private_dir(dir)?;
        // The lock comes first, so two processes can never both create keys.
        let ship_journal = cfg.backup.ships_journal();
        let store = EmbeddedStore::open_with(
            dir,
            EmbeddedOptions {
                min_free_bytes: cfg.store.min_free_bytes,
                sync: cfg.store.sync,
                ship_journal,
            },
        )?;
        if !ship_journal {
            // Under the data-dir lock the store holds now.
            forget_ship_log(dir);
        }
        let unlocked = open_or_create_keys(&cfg)?;
        Ok((store, unlocked))
    })
    .await?;
    Ok((Arc::new(store), unlocked))
}

/// Shipping is off: a ship log left from when it was on goes, so that when shipping is turned
/// on again a new log (a new generation) starts instead of one missing the writes between.
fn forget_ship_log(data_dir: &Path) {
    let path = data_dir
        .join(crate::store::embedded::QDRANT_DIR)
        .join(crate::store::embedded::SHIP_LOG_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "journal shipping is off: removed the ship log"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not remove the ship log"),
    }
}

/// Does the data dir hold embedded collections?
pub(crate) fn holds_collections(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir.join(crate::store::embedded::QDRANT_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
}

#[cfg(feature = "remote")]
async fn open_remote(config: &StorageConfig) -> Result<(Arc<dyn VectorStore>, UnlockedKeys)> {
    use crate::store::remote::{RemoteOptions, RemoteStore};

    let cfg = config.clone();
    let (lock, keys_existed, options) = run_blocking(move || -> Result<_> {
        let options = RemoteOptions::from_config(&cfg.store)?;
        let exists = check_creation_allowed(&cfg)?;
        crate::service::create_private_dir(&cfg.data_dir)?;
        Ok((crate::store::embedded::lock_data_dir(&cfg.data_dir)?, exists, options))
    })
    .await?;
    let store = RemoteStore::connect(options).await?;
    if !keys_existed && !store.stats().await?.is_empty() {
        return Err(refuse_missing_keys(&config.data_dir, &format!("the server ({store})")));
    }
    let cfg = config.clone();
    let unlocked = run_blocking(move || open_or_create_keys(&cfg)).await?;
    identity::claim_or_check(&store, &unlocked.status.store_id, unlocked.status.key_source).await?;
    store.hold_lock(lock);
    Ok((Arc::new(store), unlocked))
}

#[cfg(not(feature = "remote"))]
async fn open_remote(_config: &StorageConfig) -> Result<(Arc<dyn VectorStore>, UnlockedKeys)> {
    Err(StorageError::InvalidInput {
        field: "store.mode",
        reason: "is remote, but this build has no remote store (cargo feature `remote`)".into(),
    })
}

/// Which store (key envelope) the collections on a server belong to.
#[cfg(feature = "remote")]
mod identity {
    use serde_json::json;

    use crate::crypto::CryptoError;
    use crate::error::{Result, StorageError};
    use crate::names::META;
    use crate::store::{CollectionSpec, Payload, Point, VectorSelection, VectorStore};

    const IDENTITY_ID: uuid::Uuid = uuid::Uuid::from_u128(0x7374_6f72_655f_6964_656e_7469_7479_0001);
    const STORE_ID: &str = "store_id";

    /// Record `store_id` as the owner of the server's collections, or check that it is.
    pub(super) async fn claim_or_check(
        store: &dyn VectorStore,
        store_id: &uuid::Uuid,
        source_kind: crate::config::KeySourceKind,
    ) -> Result<()> {
        store
            .ensure_collection(&CollectionSpec {
                name: META.to_string(),
                dense: Vec::new(),
                sparse: Vec::new(),
                indexes: Vec::new(),
            })
            .await?;
        let found = store.retrieve(META, vec![IDENTITY_ID], VectorSelection::None).await?;
        match found.first().and_then(|r| r.payload.get(STORE_ID)).and_then(|v| v.as_str()) {
            Some(owner) if owner == store_id.to_string() => Ok(()),
            Some(owner) => Err(StorageError::Crypto(CryptoError::WrongKey {
                source_kind,
                hint: format!(
                    "the collections on {store} belong to store {owner}, and this data dir's keys are those of store {store_id}: copy that store's keys.json (and its key) into this data dir, or choose another store.collection_prefix"
                ),
            })),
            None => {
                let mut payload = Payload::new();
                payload.insert(STORE_ID.into(), json!(store_id.to_string()));
                let record = Point {
                    id: IDENTITY_ID,
                    vectors: Default::default(),
                    payload,
                };
                // Two new data dirs racing to be first on an empty prefix: one record wins,
                // and the loser is checked against it.
                if !store.insert_if_absent(META, record).await? {
                    return Box::pin(claim_or_check(store, store_id, source_kind)).await;
                }
                Ok(())
            }
        }
    }
}
