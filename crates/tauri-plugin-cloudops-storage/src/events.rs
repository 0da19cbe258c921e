//! Background state pushed to the page as one Tauri event, [`EVENT`]: a backup finished or
//! failed (scheduled or started from the page), and how many messages still wait for a dense
//! vector. A watcher task polls the service's in-memory backup status and the pending count
//! every interval and emits only changes.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tauri::{AppHandle, Emitter as _, Manager as _, Runtime};

use crate::state::Storage;

/// The event name to `listen` to in the page.
pub const EVENT: &str = "cloudops-storage://event";

/// One change of background state: `{ "type": "backup_finished", ... }`.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StorageEvent {
    /// A backup was made (and uploaded when configured).
    BackupFinished {
        /// The backup's name.
        name: String,
        /// When, unix ms.
        at_ms: i64,
    },
    /// A backup failed; the schedule retries with backoff.
    BackupFailed {
        /// Why.
        error: String,
        /// When, unix ms.
        at_ms: i64,
    },
    /// Messages waiting for a dense vector changed (0: semantic search covers everything).
    EmbeddingsPending {
        /// How many wait.
        count: u64,
    },
}

/// Emit `event` to every window; a failure to emit is logged, never fatal.
pub(crate) fn emit<R: Runtime>(app: &AppHandle<R>, event: StorageEvent) {
    if let Err(e) = app.emit(EVENT, &event) {
        tracing::debug!(error = %e, "cloudops-storage event not delivered");
    }
}

/// What the watcher saw last, so it emits only changes.
#[derive(Default)]
struct Seen {
    success_ms: Option<i64>,
    failure_ms: Option<i64>,
    pending: Option<u64>,
}

/// Start the watcher; it ends when the app's [`Storage`] is shut down.
pub(crate) fn watch<R: Runtime>(app: AppHandle<R>, every: Duration) -> tauri::async_runtime::JoinHandle<()> {
    tauri::async_runtime::spawn(async move {
        let mut seen = Seen::default();
        loop {
            tokio::time::sleep(every).await;
            let Some(storage) = app.try_state::<Storage>() else {
                continue;
            };
            if storage.is_shut_down() {
                break;
            }
            let Ok(service) = storage.service().await else {
                continue;
            };
            for event in changes(&mut seen, &service).await {
                emit(&app, event);
            }
        }
    })
}

async fn changes(seen: &mut Seen, service: &Arc<cloudops_storage_service::StorageService>) -> Vec<StorageEvent> {
    let mut events = Vec::new();
    let status = service.backup.status();
    if status.last_success_ms != seen.success_ms {
        seen.success_ms = status.last_success_ms;
        if let (Some(at_ms), Some(name)) = (status.last_success_ms, status.last_backup.clone()) {
            events.push(StorageEvent::BackupFinished { name, at_ms });
        }
    }
    if status.last_failure_ms != seen.failure_ms {
        seen.failure_ms = status.last_failure_ms;
        if let Some(at_ms) = status.last_failure_ms {
            let error = status.last_error.unwrap_or_default();
            events.push(StorageEvent::BackupFailed { error, at_ms });
        }
    }
    match service.chat.pending_embeddings().await {
        Ok(count) if seen.pending != Some(count) => {
            // The first look reports only work waiting; later looks report every change.
            if seen.pending.is_some() || count > 0 {
                events.push(StorageEvent::EmbeddingsPending { count });
            }
            seen.pending = Some(count);
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "pending embeddings not counted"),
    }
    events
}
