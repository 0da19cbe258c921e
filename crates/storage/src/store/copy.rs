//! Copying collections between two stores as stored: sealed payloads, keyed tokens and
//! rotated vectors pass through untouched (nothing is decrypted), so any backend can hold
//! what another one wrote. Backups in remote mode, restores into a server and
//! `migrate store` are built on it.

use super::{CollectionStats, ScrollRequest, StoreError, VectorStore};

/// Points per page read from the source and written to the target.
pub const COPY_PAGE: usize = 256;

/// Progress of a copy: the collection, points copied so far in it, and its total.
pub type CopyProgress<'a> = &'a (dyn Fn(&str, u64, u64) + Send + Sync);

/// Copy one collection: create it in `to` with the spec `from` describes, then every point
/// page by page in id order, starting at `resume_from` (the first point a previous,
/// interrupted copy had not yet written). After each page `checkpoint` gets where the next
/// page starts (`None`: the copy is complete). Returns the points copied by this call.
///
/// # Errors
/// Store errors of either side; the target then holds a prefix (in id order) of the source.
pub async fn copy_collection(
    from: &dyn VectorStore,
    to: &dyn VectorStore,
    collection: &str,
    resume_from: Option<uuid::Uuid>,
    progress: CopyProgress<'_>,
    mut checkpoint: impl FnMut(Option<uuid::Uuid>) -> Result<(), StoreError> + Send,
) -> Result<u64, StoreError> {
    let spec = from.describe(collection).await?;
    to.ensure_collection(&spec).await?;
    let total = from.count(collection, None).await?;
    let mut copied = 0;
    let mut offset = resume_from;
    loop {
        let page = from
            .scroll(
                collection,
                ScrollRequest {
                    limit: COPY_PAGE,
                    offset,
                    with_vectors: true,
                    ..ScrollRequest::default()
                },
            )
            .await?;
        let points: Vec<super::Point> = page
            .records
            .into_iter()
            .map(|r| super::Point {
                id: r.id,
                vectors: r.vectors,
                payload: r.payload,
            })
            .collect();
        copied += points.len() as u64;
        to.upsert(collection, points).await?;
        checkpoint(page.next_offset)?;
        progress(collection, copied, total);
        match page.next_offset {
            Some(next) => offset = Some(next),
            None => break,
        }
    }
    Ok(copied)
}

/// Copy every collection of `from` into `to` (see [`copy_collection`]); returns the point
/// counts of the source as they were when each collection's copy started.
///
/// # Errors
/// Store errors of either side.
pub async fn copy_all(
    from: &dyn VectorStore,
    to: &dyn VectorStore,
    progress: CopyProgress<'_>,
) -> Result<Vec<CollectionStats>, StoreError> {
    let stats = from.stats().await?;
    for collection in &stats {
        copy_collection(from, to, &collection.name, None, progress, |_| Ok(())).await?;
    }
    Ok(stats)
}
