//! Backups.

use cloudops_storage_service::{BackupStatus, Manifest, Progress, RestoreOptions, RestoreReport};
use tauri::ipc::Channel;
use tauri::{AppHandle, Runtime, State};

use crate::error::Result;
use crate::events::{emit, StorageEvent};
use crate::state::Storage;

/// Take a backup now (and upload it with `upload: true`); the result is also sent as a
/// `backup_finished` or `backup_failed` event, as a scheduled backup's is.
#[tauri::command]
pub(crate) async fn backup_now<R: Runtime>(
    app: AppHandle<R>,
    storage: State<'_, Storage>,
    upload: Option<bool>,
    on_progress: Channel<Progress>,
) -> Result<Manifest> {
    let progress = super::forward(&on_progress);
    let service = storage.service().await?;
    let result = service.backup.backup_now(upload.unwrap_or(false), &progress).await;
    match &result {
        Ok(m) => emit(
            &app,
            StorageEvent::BackupFinished {
                name: m.name.clone(),
                at_ms: m.created_at_ms,
            },
        ),
        Err(e) => emit(
            &app,
            StorageEvent::BackupFailed {
                error: e.to_string(),
                at_ms: now_ms(),
            },
        ),
    }
    Ok(result?.without_keys())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Local backups (or, with `remote: true`, those in S3), oldest first.
#[tauri::command]
pub(crate) async fn list_backups(storage: State<'_, Storage>, remote: Option<bool>) -> Result<Vec<Manifest>> {
    let service = storage.service().await?;
    let listed = if remote.unwrap_or(false) {
        service.backup.list_remote().await?
    } else {
        service
            .backup
            .list()
            .map_err(cloudops_storage_service::StorageError::from)?
    };
    // Key envelopes never cross IPC.
    Ok(listed.into_iter().map(Manifest::without_keys).collect())
}

/// Prove a backup restorable without touching live data (default: the newest).
#[tauri::command]
pub(crate) async fn verify_backup(storage: State<'_, Storage>, name: Option<String>) -> Result<Manifest> {
    Ok(storage
        .service()
        .await?
        .backup
        .verify(name.as_deref())
        .await?
        .without_keys())
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
    let report = storage.restore(&options.unwrap_or_default(), &progress).await?;
    Ok(RestoreReport {
        backup: report.backup.clone().without_keys(),
        ..report
    })
}
