//! `[embedding]`: which embedder makes dense vectors.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which embedder makes dense vectors (`[embedding] provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingProvider {
    /// `bert` when the model folder holds a model, else `none` (the default).
    #[default]
    Auto,
    /// A local sentence-transformers BERT-family model folder.
    Bert,
    /// An OpenAI-compatible `/v1/embeddings` endpoint.
    OpenAi,
    /// Keyword search only.
    None,
}

impl std::str::FromStr for EmbeddingProvider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(EmbeddingProvider::Auto),
            "bert" => Ok(EmbeddingProvider::Bert),
            "openai" => Ok(EmbeddingProvider::OpenAi),
            "none" => Ok(EmbeddingProvider::None),
            _ => Err("use auto, bert, openai or none".into()),
        }
    }
}

/// Embedding settings (`[embedding]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingConfig {
    /// Which embedder. Default: auto.
    pub provider: EmbeddingProvider,
    /// Model folder for `bert`. Default: [`default_model_dir`] (the platform's cache folder)
    /// (where `scripts/fetch-test-model.sh` puts the test model).
    pub model_dir: Option<PathBuf>,
    /// Endpoint for `openai`, e.g. `http://localhost:11434/v1`.
    pub url: String,
    /// Model name sent to the endpoint.
    pub model: String,
    /// Environment variable holding the endpoint's API key (never stored in the file).
    pub api_key_env: String,
    /// Vector dimension of the endpoint's model; probed with one request when unset.
    pub dim: Option<usize>,
    /// Allow plain `http://` to a host other than this machine (message text then travels
    /// in clear). Default: false; loopback and `https://` need no permission.
    pub allow_insecure_http: bool,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        EmbeddingConfig {
            provider: EmbeddingProvider::Auto,
            model_dir: None,
            url: "http://localhost:11434/v1".into(),
            model: "nomic-embed-text".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            dim: None,
            allow_insecure_http: false,
        }
    }
}

impl EmbeddingConfig {
    /// The model folder in effect.
    pub fn model_dir_or_default(&self) -> PathBuf {
        self.model_dir.clone().unwrap_or_else(default_model_dir)
    }

    /// The API key from `api_key_env`, if set.
    pub fn api_key(&self) -> Option<String> {
        std::env::var(&self.api_key_env).ok().filter(|k| !k.is_empty())
    }
}

/// `$CLOUDOPS_MODEL_CACHE/all-MiniLM-L6-v2`, else `cloudops-storage/models/all-MiniLM-L6-v2` in
/// the platform's cache folder (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on
/// macOS, `%LOCALAPPDATA%` on Windows).
pub fn default_model_dir() -> PathBuf {
    std::env::var_os("CLOUDOPS_MODEL_CACHE")
        .filter(|v| !v.is_empty())
        .map_or_else(
            || crate::platform::cache_home().join("cloudops-storage").join("models"),
            PathBuf::from,
        )
        .join("all-MiniLM-L6-v2")
}
