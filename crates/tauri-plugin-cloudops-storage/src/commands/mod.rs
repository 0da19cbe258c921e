//! The commands: thin wrappers over the library, arguments in camelCase from JavaScript
//! (Tauri's convention), results and errors as the library serialises them. Long work reports
//! progress on an `onProgress` channel (a `Channel` from `@tauri-apps/api/core`).

pub(crate) mod backup;
pub(crate) mod chat;
pub(crate) mod estate;

use cloudops_storage_service::{DataKeyEpoch, Health, KeyStatus, Progress};
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

/// Re-wrap the data keys with a new key-encryption key from the source the **app**
/// configures (the page never names a key target); `newEpoch: true` after a leak also starts
/// a new data key for everything written from now on.
#[tauri::command]
pub(crate) async fn rotate_key(storage: State<'_, Storage>, new_epoch: Option<bool>) -> Result<KeyStatus> {
    let service = storage.service().await?;
    let to = service.config().keys.clone();
    let epoch = match new_epoch {
        Some(true) => DataKeyEpoch::New,
        _ => DataKeyEpoch::Keep,
    };
    Ok(service.rotate_kek(to, epoch).await?)
}
