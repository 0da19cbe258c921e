//! The dense vector space of one store: an embedder, the store's secret rotation, the vector
//! slot named after the model, and the query cache.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{EmbedError, Embedder, QueryCache, VectorRotation};
use crate::store::DenseSpec;

/// Queries remembered by the cache.
const QUERY_CACHE: usize = 512;

/// Embeds documents and queries into the store's protected vector space.
#[derive(Debug)]
pub(crate) struct DenseSpace {
    embedder: Arc<dyn Embedder>,
    rotation: VectorRotation,
    slot: String,
    cache: QueryCache,
}

impl DenseSpace {
    /// The space of `embedder` under the vector-protection key.
    pub(crate) fn new(embedder: Arc<dyn Embedder>, protection_key: &[u8; 32]) -> Self {
        let rotation = VectorRotation::new(protection_key, embedder.dim());
        DenseSpace {
            slot: slot_name(embedder.model_id()),
            embedder,
            rotation,
            cache: QueryCache::new(QUERY_CACHE),
        }
    }

    /// The model's id.
    pub(crate) fn model_id(&self) -> &str {
        self.embedder.model_id()
    }

    /// The vector slot holding this model's vectors.
    pub(crate) fn slot(&self) -> &str {
        &self.slot
    }

    /// The slot's spec, for `ensure_collection`.
    pub(crate) fn spec(&self) -> DenseSpec {
        DenseSpec {
            name: self.slot.clone(),
            dim: self.embedder.dim(),
            graph: false,
        }
    }

    /// Rotated vectors of documents, in order.
    ///
    /// # Errors
    /// The embedder's errors.
    pub(crate) async fn documents(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let vectors = self.embedder.embed(texts).await?;
        Ok(vectors.iter().map(|v| self.rotation.apply(v)).collect())
    }

    /// The rotated vector of a query (cached by text).
    ///
    /// # Errors
    /// The embedder's errors.
    pub(crate) async fn query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        if let Some(hit) = self.cache.get(text) {
            return Ok(hit);
        }
        let mut vectors = self.embedder.embed(&[text.to_string()]).await?;
        let v = vectors
            .pop()
            .ok_or_else(|| EmbedError::Inference("the embedder returned no vector".into()))?;
        let rotated = self.rotation.apply(&v);
        self.cache.put(text, rotated.clone());
        Ok(rotated)
    }
}

/// `dense_<8 hex of sha256(model id)>`: each model gets its own slot, so a reindex can fill a
/// new model's vectors while the old ones still answer.
pub(crate) fn slot_name(model_id: &str) -> String {
    let digest = Sha256::digest(model_id.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("dense_{hex}")
}
