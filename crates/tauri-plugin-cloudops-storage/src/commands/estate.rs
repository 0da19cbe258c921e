//! The AWS estate.

use cloudops_storage_service::{
    AWSResource, ImportOptions, ImportReport, Progress, ResourceFilter, ResourceHit, StatsBy, SyncReport, SyncScope,
    UpsertReport,
};
use tauri::ipc::Channel;
use tauri::State;

use crate::error::{Error, Result};
use crate::scope::{Expect, ImportScope};
use crate::state::Storage;

/// Most hits a search returns.
const MAX_HITS: usize = 1000;

/// Import AWS CLI output files (format detected per file); only regular files under the
/// app's import roots.
#[tauri::command]
pub(crate) async fn import_files(
    storage: State<'_, Storage>,
    scope: State<'_, ImportScope>,
    paths: Vec<std::path::PathBuf>,
    options: Option<ImportOptions>,
    on_progress: Channel<Progress>,
) -> Result<ImportReport> {
    let paths = paths
        .iter()
        .map(|p| scope.check(p, Expect::File))
        .collect::<Result<Vec<_>>>()?;
    let progress = super::forward(&on_progress);
    let options = options.unwrap_or_default();
    Ok(storage
        .service()
        .await?
        .estate
        .import_files(&paths, &options, &progress)
        .await?)
}

/// Insert or merge resources.
#[tauri::command]
pub(crate) async fn upsert_resources(storage: State<'_, Storage>, resources: Vec<AWSResource>) -> Result<UpsertReport> {
    Ok(storage.service().await?.estate.bulk_upsert(resources).await?)
}

/// Free text plus filters (the estate query language), best first.
#[tauri::command]
pub(crate) async fn search(
    storage: State<'_, Storage>,
    query: String,
    filter: Option<ResourceFilter>,
    limit: Option<usize>,
) -> Result<Vec<ResourceHit>> {
    let filter = filter.unwrap_or_default();
    let limit = limit.unwrap_or(20).clamp(1, MAX_HITS);
    Ok(storage.service().await?.estate.search(&query, &filter, limit).await?)
}

/// One resource by key or ARN.
#[tauri::command]
pub(crate) async fn get(storage: State<'_, Storage>, key_or_arn: String) -> Result<AWSResource> {
    Ok(storage.service().await?.estate.get_resource(&key_or_arn).await?)
}

/// Exact counts by a field (`service` by default, `type`, `region`, `account`, `state`,
/// `tag:KEY`).
#[tauri::command]
pub(crate) async fn stats(
    storage: State<'_, Storage>,
    by: Option<String>,
    filter: Option<ResourceFilter>,
) -> Result<Vec<(String, u64)>> {
    let by: StatsBy = match by {
        Some(text) => text.parse().map_err(|reason: String| {
            Error::Storage(cloudops_storage_service::StorageError::InvalidInput { field: "by", reason })
        })?,
        None => StatsBy::Service,
    };
    let filter = filter.unwrap_or_default();
    Ok(storage.service().await?.estate.stats(&by, &filter).await?)
}

/// Replace what the estate holds for `scope` with `resources` (missing ones are tombstoned).
#[tauri::command]
pub(crate) async fn sync(
    storage: State<'_, Storage>,
    scope: SyncScope,
    resources: Vec<AWSResource>,
    on_progress: Channel<Progress>,
) -> Result<SyncReport> {
    let progress = super::forward(&on_progress);
    Ok(storage
        .service()
        .await?
        .estate
        .sync_with_progress(&scope, resources, &progress)
        .await?)
}
