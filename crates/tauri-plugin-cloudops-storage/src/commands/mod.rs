//! The commands: thin wrappers over the library, arguments in camelCase from JavaScript
//! (Tauri's convention), results and errors as the library serialises them. Long work reports
//! progress on an `onProgress` channel (a `Channel` from `@tauri-apps/api/core`).

pub(crate) mod backup;
pub(crate) mod chat;
pub(crate) mod estate;

use cloudops_storage_service::{Health, KeyConfig, KeyStatus, Progress};
use tauri::ipc::Channel;
use tauri::State;

use crate::error::Result;
use crate::state::Storage;

/// Forward library progress to the page's channel.
pub(crate) fn forward(channel: &Channel<Progress>) -> impl Fn(Progress) + Send + Sync + '_ {
    move |p| {
        if let Err(e) = channel.send(p) {
            tracing::debug!(error = %e, "progress channel closed");
        }
    }
}

/// The store's health (what `status` prints).
#[tauri::command]
pub(crate) async fn health(storage: State<'_, Storage>) -> Result<Health> {
    Ok(storage.service().await?.health().await?)
}

/// Key source and ids (never a key).
#[tauri::command]
pub(crate) async fn key_status(storage: State<'_, Storage>) -> Result<KeyStatus> {
    Ok(storage.service().await?.key_status())
}

/// Re-wrap the data key with a new key-encryption key from `to` (default: the current
/// source, in place).
#[tauri::command]
pub(crate) async fn rotate_key(storage: State<'_, Storage>, to: Option<KeyConfig>) -> Result<KeyStatus> {
    let service = storage.service().await?;
    let to = match to {
        Some(to) => to,
        None => {
            let mut same = service.config().keys.clone();
            same.source = service.key_status().key_source;
            same
        }
    };
    Ok(service
        .rotate_kek(to, cloudops_storage_service::DataKeyEpoch::Keep)
        .await?)
}
