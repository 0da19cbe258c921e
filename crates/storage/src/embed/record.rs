//! The store's record of which embedding model made its dense vectors (collection `store_meta`).

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::store::{CollectionSpec, Payload, Point, StoreError, VectorSelection, VectorStore};

use crate::names::META;
const EMBEDDING_ID: uuid::Uuid = uuid::Uuid::from_u128(0x656d_6265_6464_696e_675f_6d6f_6465_6c31);

/// Model id, dimension and vector slot of the store's dense vectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct EmbeddingRecord {
    /// Embedder model id.
    pub model_id: String,
    /// Dimension.
    pub dim: usize,
    /// Vector slot.
    pub slot: String,
}

fn spec() -> CollectionSpec {
    CollectionSpec {
        name: META.to_string(),
        dense: Vec::new(),
        sparse: Vec::new(),
        indexes: Vec::new(),
    }
}

/// The recorded model, if any.
///
/// # Errors
/// Store errors.
pub(crate) async fn load(store: &dyn VectorStore) -> Result<Option<EmbeddingRecord>, StoreError> {
    store.ensure_collection(&spec()).await?;
    let records = store.retrieve(META, vec![EMBEDDING_ID], VectorSelection::None).await?;
    Ok(records
        .first()
        .and_then(|r| serde_json::from_value(serde_json::Value::Object(r.payload.clone())).ok()))
}

/// Record `record` as the store's model.
///
/// # Errors
/// Store errors.
pub(crate) async fn save(store: &dyn VectorStore, record: &EmbeddingRecord) -> Result<(), StoreError> {
    store.ensure_collection(&spec()).await?;
    let payload: Payload = match json!(record) {
        serde_json::Value::Object(map) => map,
        _ => Payload::new(),
    };
    store
        .upsert(
            META,
            vec![Point {
                id: EMBEDDING_ID,
                vectors: Default::default(),
                payload,
            }],
        )
        .await?;
    Ok(())
}
