//! An OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Ollama, vLLM, LocalAI, ...).
//!
//! Requests time out, transient failures (connection errors, 429, 5xx) are retried with
//! exponential backoff, and a dead endpoint is reported with its URL and the last reason.
//! The API key, when set, only travels in the `Authorization` header and is never logged.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{normalize, EmbedError, Embedder};

/// Attempts per request (1 + retries).
const ATTEMPTS: u32 = 4;
/// First backoff; doubles per retry.
const BACKOFF: Duration = Duration::from_millis(200);
/// Whole-request timeout.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Texts per request.
const BATCH: usize = 64;

/// Embeds through an HTTP endpoint.
pub struct HttpEmbedder {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<String>,
    dim: usize,
    model_id: String,
}

impl std::fmt::Debug for HttpEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEmbedder")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

impl HttpEmbedder {
    /// An embedder for `model` at `url` (the base URL, e.g. `http://localhost:11434/v1`, or the
    /// full `/embeddings` URL). Without `dim`, one probe request learns it. Message text goes
    /// to `url` as is: the configuration refuses plain `http://` to another machine unless
    /// `embedding.allow_insecure_http` says so, but a caller building this directly decides.
    ///
    /// # Errors
    /// [`EmbedError::Endpoint`] when the probe fails; [`EmbedError::Model`] for a bad URL.
    pub async fn connect(
        url: String,
        model: String,
        api_key: Option<String>,
        dim: Option<usize>,
    ) -> Result<Self, EmbedError> {
        let url = if url.trim_end_matches('/').ends_with("/embeddings") {
            url
        } else {
            format!("{}/embeddings", url.trim_end_matches('/'))
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(EmbedError::Model {
                path: url,
                reason: "[embedding] url must start with http:// or https://".into(),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| EmbedError::Model {
                path: url.clone(),
                reason: e.to_string(),
            })?;
        let mut embedder = HttpEmbedder {
            client,
            model_id: format!("openai/{model}"),
            url,
            model,
            api_key,
            dim: dim.unwrap_or(0),
        };
        if dim.is_none() {
            let probe = embedder.request(&["dimension probe".to_string()]).await?;
            embedder.dim = probe.first().map_or(0, Vec::len);
        }
        if embedder.dim == 0 {
            return Err(EmbedError::Endpoint {
                url: embedder.url,
                attempts: 1,
                reason: "the endpoint returned an empty vector".into(),
            });
        }
        Ok(embedder)
    }

    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = json!({ "model": self.model, "input": texts });
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 2)).await;
            }
            let mut req = self.client.post(&self.url).json(&body);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = describe(&e);
                    tracing::debug!(attempt, reason = %last, "embedding request failed");
                    continue;
                }
            };
            let status = resp.status();
            if status.is_success() {
                let parsed: Response = resp
                    .json()
                    .await
                    .map_err(|e| self.endpoint(attempt, format!("bad response: {e}")))?;
                return self.collect(parsed, texts.len(), attempt);
            }
            last = format!("HTTP {status}");
            if !(status.as_u16() == 429 || status.is_server_error()) {
                return Err(self.endpoint(attempt, last));
            }
        }
        Err(self.endpoint(ATTEMPTS, last))
    }

    fn collect(&self, parsed: Response, expected: usize, attempt: u32) -> Result<Vec<Vec<f32>>, EmbedError> {
        if parsed.data.len() != expected {
            return Err(self.endpoint(
                attempt,
                format!("asked for {expected} vectors, got {}", parsed.data.len()),
            ));
        }
        let mut out = vec![Vec::new(); expected];
        for (pos, item) in parsed.data.into_iter().enumerate() {
            let i = item.index.unwrap_or(pos);
            let slot = out
                .get_mut(i)
                .ok_or_else(|| self.endpoint(attempt, format!("response index {i} out of range")))?;
            *slot = item.embedding;
            normalize(slot);
        }
        Ok(out)
    }

    fn endpoint(&self, attempts: u32, reason: String) -> EmbedError {
        EmbedError::Endpoint {
            url: self.url.clone(),
            attempts,
            reason,
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        e.to_string()
    }
}

#[async_trait::async_trait]
impl Embedder for HttpEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let vectors = self.request(chunk).await?;
            if let Some(bad) = vectors.iter().find(|v| v.len() != self.dim) {
                return Err(self.endpoint(1, format!("got a {}-d vector, expected {}", bad.len(), self.dim)));
            }
            out.extend(vectors);
        }
        Ok(out)
    }
}
