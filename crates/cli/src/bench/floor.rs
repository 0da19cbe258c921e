//! The engine's own floor under a chat workload: the same points, written and read straight
//! through the embedded qdrant-edge store, with no sealing, journal, conversation update or
//! unsealing. `bench` divides its figures by these, so a slow day on a shared VM (which moves
//! every absolute figure together) does not hide or fake a regression in our layers.
//!
//! The points are the ones the workload stored (sealed payloads and keyed keyword vectors as
//! they are on disk), copied one upsert at a time into a fresh store with the same collection
//! spec: the same data shape, the same sizes. Embedded stores only: a server's floor would be
//! mostly network and is not what the ratio is for.

use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::chat::Latency;
use anyhow::{Context as _, Result};
use cloudops_storage_service::store::{
    Condition, Direction, EmbeddedStore, FieldValue, Filter, OrderBy, Point, QueryRequest, ScrollRequest, VectorData,
    VectorStore,
};

/// The messages collection and the fields the chat workload filters on (the library's names).
const MESSAGES: &str = "chat_messages";
const KEYWORDS: &str = "keywords";
const CONTEXT_ID: &str = "context_id";
const USER_ID: &str = "user_id";
const MESSAGE_INDEX: &str = "message_index";
/// Candidates a keyword search asks the engine for (its depth for 10 conversations).
const KEYWORD_DEPTH: usize = 30;
/// Query tokens taken from a stored message (the bench's queries have three or four words).
const QUERY_TOKENS: usize = 3;
/// Points read from the source per page while copying.
const PAGE: usize = 256;

/// The floor's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EngineFloor {
    /// Points copied.
    pub points: usize,
    /// One plain upsert of a stored message point (payload and vectors as stored).
    pub upsert: Latency,
    /// The filtered scroll behind "last 5 messages": one conversation, newest index first, no
    /// unsealing.
    pub last5: Latency,
    /// The keyword query behind a keyword search: three of a stored message's keyed tokens,
    /// filtered to its user, 30 ids and scores, no payloads.
    pub keyword: Latency,
}

/// Copy the messages of the closed embedded store in `source_data_dir` into a fresh store
/// in `floor_data_dir`, timing each upsert, then time `samples` of each read.
///
/// # Errors
/// Store errors; a source without the messages collection.
pub(crate) async fn measure(
    source_data_dir: &Path,
    floor_data_dir: &Path,
    samples: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<EngineFloor> {
    let source = EmbeddedStore::open(source_data_dir).context("open the bench store for the floor")?;
    let spec = source.describe(MESSAGES).await?;
    let total = source.count(MESSAGES, None).await? as usize;
    let floor = EmbeddedStore::open(floor_data_dir).context("create the floor store")?;
    floor.ensure_collection(&spec).await?;

    let mut upserts = Vec::with_capacity(total);
    let mut sampled: Vec<Point> = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let mut offset = None;
    loop {
        let page = source
            .scroll(
                MESSAGES,
                ScrollRequest {
                    limit: PAGE,
                    offset,
                    with_vectors: true,
                    ..ScrollRequest::default()
                },
            )
            .await?;
        for record in page.records {
            let point = Point {
                id: record.id,
                vectors: record.vectors,
                payload: record.payload,
            };
            // Reservoir of read targets, so reads hit random conversations and users.
            if sampled.len() < samples.max(1) {
                sampled.push(point.clone());
            } else {
                let slot = rng.gen_range(0..=upserts.len());
                if slot < sampled.len() {
                    sampled[slot] = point.clone();
                }
            }
            let t = Instant::now();
            floor.upsert(MESSAGES, vec![point]).await?;
            upserts.push(t.elapsed());
            if upserts.len() % 1000 == 0 {
                progress(upserts.len(), total);
            }
        }
        match page.next_offset {
            Some(next) => offset = Some(next),
            None => break,
        }
    }
    progress(upserts.len(), total);
    source.close().await?;
    // Reads on a settled store (the background compaction done), as in the workload.
    floor.flush().await?;

    let mut last5 = Vec::with_capacity(samples);
    let mut keyword = Vec::with_capacity(samples);
    for i in 0..samples {
        let point = &sampled[i % sampled.len()];
        let request = ScrollRequest {
            filter: Some(Filter::must(eq(point, CONTEXT_ID)?)),
            order_by: Some(OrderBy {
                field: MESSAGE_INDEX.into(),
                direction: Direction::Desc,
                start_from: None,
            }),
            limit: 5,
            ..ScrollRequest::default()
        };
        let t = Instant::now();
        floor.scroll(MESSAGES, request).await?;
        last5.push(t.elapsed());

        let request = QueryRequest {
            using: KEYWORDS.into(),
            vector: query_tokens(point)?,
            filter: Some(Filter::must(eq(point, USER_ID)?)),
            limit: KEYWORD_DEPTH,
            with_payload: false,
            exact: false,
        };
        let t = Instant::now();
        floor.query(MESSAGES, request).await?;
        keyword.push(t.elapsed());
    }
    floor.close().await?;
    Ok(EngineFloor {
        points: upserts.len(),
        upsert: Latency::from_samples(upserts),
        last5: Latency::from_samples(last5),
        keyword: Latency::from_samples(keyword),
    })
}

/// `field` equals the value this point stores (as stored: clear ids, keyed tokens).
fn eq(point: &Point, field: &str) -> Result<Condition> {
    let value = point
        .payload
        .get(field)
        .and_then(|v| v.as_str())
        .with_context(|| format!("a stored message without a text {field}"))?;
    Ok(Condition::Eq(field.into(), FieldValue::Str(value.to_string())))
}

/// The first [`QUERY_TOKENS`] keyed tokens of the point's keyword vector, weight 1 (as a
/// query's tokens are).
fn query_tokens(point: &Point) -> Result<VectorData> {
    match point.vectors.get(KEYWORDS) {
        Some(VectorData::Sparse { indices, .. }) => {
            let indices: Vec<u32> = indices.iter().copied().take(QUERY_TOKENS).collect();
            let values = vec![1.0; indices.len()];
            Ok(VectorData::Sparse { indices, values })
        }
        _ => anyhow::bail!("a stored message without its keyword vector"),
    }
}
