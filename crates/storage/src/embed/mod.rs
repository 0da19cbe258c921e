//! Text → vectors: dense embedders (local BERT, OpenAI-compatible HTTP) behind one trait, the
//! keyed keyword encoder (sparse BM25), the secret rotation protecting stored dense vectors,
//! and a small cache for query embeddings.

#[cfg(feature = "bert")]
mod bert;
mod cache;
mod config;
#[cfg(feature = "http")]
mod http;
mod keywords;
pub(crate) mod record;
mod rotation;
mod space;

use std::sync::Arc;

#[cfg(feature = "bert")]
pub use bert::BertEmbedder;
pub(crate) use cache::QueryCache;
pub use config::{default_model_dir, EmbeddingConfig, EmbeddingProvider};
#[cfg(feature = "http")]
pub use http::HttpEmbedder;
pub(crate) use keywords::KeywordEncoder;
pub use record::EmbeddingRecord;
pub(crate) use rotation::VectorRotation;
pub(crate) use space::DenseSpace;

/// Errors of an embedder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The model directory is missing a file or holds something unreadable.
    #[error("cannot load the embedding model from {path}: {reason} (fetch the test model with scripts/fetch-test-model.sh, or set [embedding] model_dir)")]
    Model {
        /// Model directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Inference failed.
    #[error("embedding failed: {0}")]
    Inference(String),
    /// The HTTP endpoint could not be reached or answered with an error.
    #[error("embedding endpoint {url} failed after {attempts} attempt(s): {reason}")]
    Endpoint {
        /// Endpoint URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Last failure.
        reason: String,
    },
    /// The store was indexed with another model.
    #[error("the store's dense vectors were made by `{stored}` ({stored_dim}-d) but the configured embedder is `{configured}` ({configured_dim}-d); run `cloudops-storage reindex` to re-embed everything with the configured model, or configure `{stored}` again")]
    Mismatch {
        /// Model recorded in the store.
        stored: String,
        /// Its dimension.
        stored_dim: usize,
        /// Model configured now.
        configured: String,
        /// Its dimension.
        configured_dim: usize,
    },
    /// The background indexer could not embed pending messages.
    #[error("background embedding failed: {0}")]
    Indexer(String),
}

/// Turns texts into dense vectors. Implementations batch internally and are cheap to share.
#[async_trait::async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// A stable id of the model (recorded in the store; a different id needs a reindex).
    fn model_id(&self) -> &str;
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// Embed every text, in order. Vectors are L2-normalised.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// The embedder the configuration selects; `None` for keyword-only search.
///
/// # Errors
/// [`EmbedError::Model`] when a configured model directory cannot be loaded;
/// [`EmbedError::Endpoint`] when an HTTP endpoint without a configured `dim` cannot be probed.
pub(crate) async fn from_config(config: &EmbeddingConfig) -> Result<Option<Arc<dyn Embedder>>, EmbedError> {
    match config.provider {
        EmbeddingProvider::None => Ok(None),
        #[cfg(feature = "bert")]
        EmbeddingProvider::Bert => Ok(Some(Arc::new(BertEmbedder::load(&config.model_dir_or_default())?))),
        #[cfg(not(feature = "bert"))]
        EmbeddingProvider::Bert => Err(not_built_in(&config.model_dir_or_default(), "bert")),
        EmbeddingProvider::Auto => auto(config),
        #[cfg(feature = "http")]
        EmbeddingProvider::OpenAi => Ok(Some(Arc::new(
            HttpEmbedder::connect(config.url.clone(), config.model.clone(), config.api_key(), config.dim).await?,
        ))),
        #[cfg(not(feature = "http"))]
        EmbeddingProvider::OpenAi => Err(not_built_in(std::path::Path::new(&config.url), "http")),
    }
}

/// Whether `url` is plain HTTP to a host other than this machine (loopback addresses and
/// `localhost` are this machine; anything unparsable counts as remote).
pub(crate) fn sends_clear_text_off_this_machine(url: &str) -> bool {
    let url = url.trim();
    let Some(rest) = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .and_then(|_| url.get(7..))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// `auto`: the local model when its files are in the model dir, else keyword search only.
#[cfg(feature = "bert")]
fn auto(config: &EmbeddingConfig) -> Result<Option<Arc<dyn Embedder>>, EmbedError> {
    let dir = config.model_dir_or_default();
    if dir.join("model.safetensors").is_file() {
        Ok(Some(Arc::new(BertEmbedder::load(&dir)?)))
    } else {
        tracing::info!(
            model_dir = %dir.display(),
            "no embedding model found: keyword search only (run scripts/fetch-test-model.sh to enable semantic search)"
        );
        Ok(None)
    }
}

/// `auto` in a build without the local model: keyword search only.
#[cfg(not(feature = "bert"))]
fn auto(_: &EmbeddingConfig) -> Result<Option<Arc<dyn Embedder>>, EmbedError> {
    tracing::info!("built without the `bert` feature: keyword search only");
    Ok(None)
}

/// The error for a provider this build lacks (`StorageConfig::validate` refuses it first).
#[cfg(any(not(feature = "bert"), not(feature = "http")))]
fn not_built_in(place: &std::path::Path, feature: &str) -> EmbedError {
    EmbedError::Model {
        path: place.display().to_string(),
        reason: format!("this build has no `{feature}` support (build with the `{feature}` cargo feature)"),
    }
}

#[cfg(any(feature = "bert", feature = "http"))]
/// L2-normalise in place (a zero vector stays zero).
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod clear_text_tests {
    use super::sends_clear_text_off_this_machine as remote_http;

    #[test]
    fn only_plain_http_to_another_host_counts() {
        for local in [
            "http://localhost:11434/v1",
            "http://127.0.0.1:8080/v1",
            "http://127.3.4.5/v1",
            "http://[::1]:8080/v1",
            "https://api.example.com/v1",
            "https://10.0.0.5/v1",
        ] {
            assert!(!remote_http(local), "{local}");
        }
        for remote in [
            "http://10.0.0.5:11434/v1",
            "http://api.example.com/v1",
            "http://localhost.example.com/v1",
            "http://user@evil.example/v1",
            "http://[2001:db8::1]/v1",
        ] {
            assert!(remote_http(remote), "{remote}");
        }
    }
}
