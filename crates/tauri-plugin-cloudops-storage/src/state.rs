//! The service as managed state: opened once at start-up, shared by every command, shut down
//! when the app exits. If it could not open, commands get the reason as an error.

use std::sync::Arc;

use cloudops_storage_service::{ErrorKind, ProgressFn, RestoreOptions, RestoreReport, StorageConfig, StorageService};

use crate::error::{Error, Result};

/// The plugin's state: the open service, or why it is not open.
pub struct Storage {
    config: StorageConfig,
    service: tokio::sync::RwLock<Opened>,
    shut_down: std::sync::atomic::AtomicBool,
}

/// The service, or the kind and message of why it did not open.
type Opened = std::result::Result<Arc<StorageService>, (ErrorKind, String)>;

async fn open(config: StorageConfig) -> Opened {
    match StorageService::open(config).await {
        Ok(s) => Ok(Arc::new(s)),
        Err(e) => {
            tracing::error!(error = %e, "cloudops-storage did not open");
            Err((e.kind(), e.to_string()))
        }
    }
}

impl Storage {
    /// Open the store described by `config`; a failure is kept and reported by every command.
    pub(crate) async fn open(config: StorageConfig) -> Self {
        let service = open(config.clone()).await;
        Storage {
            config,
            service: tokio::sync::RwLock::new(service),
            shut_down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Close the service, restore a backup into its data dir, and open it again. Commands
    /// that arrive meanwhile wait (the state is locked for writing); the store is reopened
    /// whether the restore worked or not (a failed restore leaves the live data as it was).
    ///
    /// # Errors
    /// The restore's error, after reopening.
    pub(crate) async fn restore(&self, options: &RestoreOptions, progress: ProgressFn<'_>) -> Result<RestoreReport> {
        let mut state = self.service.write().await;
        if let Ok(service) = &*state {
            service.shutdown().await?;
        }
        let report = StorageService::restore_backup(&self.config, options, progress).await;
        *state = open(self.config.clone()).await;
        Ok(report?)
    }

    /// The open service, for one command.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store did not open.
    pub async fn service(&self) -> Result<Arc<StorageService>> {
        match &*self.service.read().await {
            Ok(s) => Ok(s.clone()),
            Err((kind, message)) => Err(Error::Unavailable {
                kind: *kind,
                message: message.clone(),
            }),
        }
    }

    /// Flush and close the store, releasing its data dir. The plugin calls it on
    /// `RunEvent::Exit`; call it yourself to close the store earlier (an app that ends without
    /// running its event loop). Commands after it get `shut_down` errors.
    pub async fn shutdown(&self) {
        self.shut_down.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(service) = &*self.service.read().await {
            if let Err(e) = service.shutdown().await {
                tracing::error!(error = %e, "cloudops-storage did not shut down cleanly");
            }
        }
    }

    /// Whether [`Storage::shutdown`] ran (the app is exiting).
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The configuration the service was opened with.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }
}
