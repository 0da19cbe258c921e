//! Backups.

use cloudops_storage_service::{BackupStatus, Manifest, Progress, RestoreOptions, RestoreReport};
use tauri::ipc::Channel;
use tauri::State;

use crate::error::Result;
use crate::state::Storage;

/// Take a backup now (and upload it with `upload: true`).
#[tauri::command]
pub(crate) async fn backup_now(
    storage: State<'_, Storage>,
    upload: Option<bool>,
    on_progress: Channel<Progress>,
) -> Result<Manifest> {
    let progress = super::forward(&on_progress);
    Ok(storage
        .service()
        .await?
        .backup
        .backup_now(upload.unwrap_or(false), &progress)
        .await?)
}

/// Local backups (or, with `remote: true`, those in S3), oldest first.
#[tauri::command]
pub(crate) async fn list_backups(storage: State<'_, Storage>, remote: Option<bool>) -> Result<Vec<Manifest>> {
    let service = storage.service().await?;
    if remote.unwrap_or(false) {
        Ok(service.backup.list_remote().await?)
    } else {
        Ok(service
            .backup
            .list()
            .map_err(cloudops_storage_service::StorageError::from)?)
    }
}

/// Prove a backup restorable without touching live data (default: the newest).
#[tauri::command]
pub(crate) async fn verify_backup(storage: State<'_, Storage>, name: Option<String>) -> Result<Manifest> {
    Ok(storage.service().await?.backup.verify(name.as_deref()).await?)
}

/// Last success, last failure and next run of the schedule.
#[tauri::command]
pub(crate) async fn backup_status(storage: State<'_, Storage>) -> Result<BackupStatus> {
    Ok(storage.service().await?.backup.status())
}

/// Replace the live data with a backup: the service closes, restores and reopens; commands
/// that arrive meanwhile wait for it.
#[tauri::command]
pub(crate) async fn restore_backup(
    storage: State<'_, Storage>,
    options: Option<RestoreOptions>,
    on_progress: Channel<Progress>,
) -> Result<RestoreReport> {
    let progress = super::forward(&on_progress);
    storage.restore(&options.unwrap_or_default(), &progress).await
}
