//! Where a bench's stores live: embedded in the bench's temporary folder (the default), or on
//! the Qdrant server or cluster named by `--store remote --url URL`, under a collection prefix
//! of the run's own that is dropped when the bench ends.

use anyhow::Result;
use cloudops_storage_service::store::remote::{RemoteOptions, RemoteStore};
use cloudops_storage_service::store::{StoreConfig, VectorStore as _};
use cloudops_storage_service::{StorageConfig, StoreMode};

/// The store settings every workload of one bench run opens its stores with.
#[derive(Debug, Clone)]
pub(crate) struct BenchStore {
    store: StoreConfig,
    /// Prefix of this run's collections on a server: the configured prefix, then
    /// `bench<pid>_<ms>_`.
    run_prefix: String,
}

impl BenchStore {
    /// The `[store]` settings of `config` (flags, environment, config file).
    pub(crate) fn from_config(config: &StorageConfig) -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let run_prefix = format!(
            "{}bench{}_{millis}_",
            config.store.collection_prefix,
            std::process::id()
        );
        BenchStore {
            store: config.store.clone(),
            run_prefix,
        }
    }

    /// Embedded stores in the bench's folder.
    #[cfg(test)]
    pub(crate) fn embedded() -> Self {
        BenchStore::from_config(&StorageConfig::default())
    }

    /// True when the stores are on a server.
    pub(crate) fn is_remote(&self) -> bool {
        self.store.mode == StoreMode::Remote
    }

    /// Point `config` (a workload's store named `name`) at this run's store.
    pub(crate) fn apply(&self, config: &mut StorageConfig, name: &str) {
        config.store = self.store.clone();
        if self.is_remote() {
            config.store.collection_prefix = format!("{}{name}_", self.run_prefix);
        }
    }

    /// One line for reports: `embedded`, or the server, its replication and the run's prefix.
    pub(crate) fn describe(&self) -> String {
        match self.store.mode {
            StoreMode::Embedded => "embedded".to_string(),
            StoreMode::Remote => format!(
                "remote {} (replication factor {}, collections {}*)",
                self.store.url.as_deref().unwrap_or("?"),
                self.store.replication_factor.max(1),
                self.run_prefix
            ),
        }
    }

    /// Drop every collection this run created on the server (nothing to do when embedded:
    /// the temporary folder goes).
    ///
    /// # Errors
    /// The server's errors; the collections left behind are named.
    pub(crate) async fn cleanup(&self, names: &[&str]) -> Result<()> {
        if !self.is_remote() {
            return Ok(());
        }
        for name in names {
            let mut store = self.store.clone();
            store.collection_prefix = format!("{}{name}_", self.run_prefix);
            // The API key may come from the keychain, a blocking call.
            let options = tokio::task::spawn_blocking(move || RemoteOptions::from_config(&store)).await??;
            let prefix = options.collection_prefix.clone();
            let remote = RemoteStore::connect(options).await?;
            for c in remote.stats().await? {
                remote
                    .drop_collection(&c.name)
                    .await
                    .map_err(|e| anyhow::anyhow!("could not drop the bench collection {prefix}{}: {e}", c.name))?;
            }
            remote.close().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_runs_get_a_prefix_per_workload_store_and_embedded_keeps_the_default() {
        let embedded = BenchStore::embedded();
        let mut config = StorageConfig::default();
        embedded.apply(&mut config, "chat");
        assert_eq!(config.store, StoreConfig::default());
        assert_eq!(embedded.describe(), "embedded");

        let remote_config = StorageConfig {
            store: StoreConfig::remote("http://127.0.0.1:6334"),
            ..StorageConfig::default()
        };
        let remote = BenchStore::from_config(&remote_config);
        let (mut a, mut b) = (StorageConfig::default(), StorageConfig::default());
        remote.apply(&mut a, "keyword");
        remote.apply(&mut b, "semantic");
        assert_eq!(a.store.mode, StoreMode::Remote);
        assert!(a.store.collection_prefix.starts_with("cloudops_bench"));
        assert!(a.store.collection_prefix.ends_with("_keyword_"));
        assert_ne!(a.store.collection_prefix, b.store.collection_prefix);
        assert!(remote.describe().contains("http://127.0.0.1:6334"));
    }
}
