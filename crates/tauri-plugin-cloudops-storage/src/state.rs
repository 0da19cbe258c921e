//! The service as managed state: opened once at start-up, shared by every command, shut down
//! when the app exits. If it could not open, commands get the reason as an error.

use std::sync::Arc;

use cloudops_storage_service::{StorageConfig, StorageService};

use crate::error::{Error, Result};

/// The plugin's state: the open service, or why it is not open.
pub struct Storage {
    service: tokio::sync::RwLock<std::result::Result<Arc<StorageService>, (&'static str, String)>>,
}

impl Storage {
    /// Open the store described by `config`; a failure is kept and reported by every command.
    pub(crate) async fn open(config: StorageConfig) -> Self {
        let service = match StorageService::open(config).await {
            Ok(s) => Ok(Arc::new(s)),
            Err(e) => {
                tracing::error!(error = %e, "cloudops-storage did not open");
                Err((e.kind().as_str(), e.to_string()))
            }
        };
        Storage {
            service: tokio::sync::RwLock::new(service),
        }
    }

    /// The open service, for one command.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store did not open.
    pub async fn service(&self) -> Result<Arc<StorageService>> {
        match &*self.service.read().await {
            Ok(s) => Ok(s.clone()),
            Err((kind, message)) => Err(Error::Unavailable {
                kind,
                message: message.clone(),
            }),
        }
    }

    /// Flush and close the store (on app exit). Commands after it get `shut_down` errors.
    pub(crate) async fn shutdown(&self) {
        if let Ok(service) = &*self.service.read().await {
            if let Err(e) = service.shutdown().await {
                tracing::error!(error = %e, "cloudops-storage did not shut down cleanly");
            }
        }
    }
}
