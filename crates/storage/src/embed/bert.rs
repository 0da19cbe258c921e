//! A local sentence-transformers BERT-family model, run in pure Rust with candle.
//!
//! Loads `config.json`, `tokenizer.json` and `model.safetensors` (plus the optional
//! sentence-transformers files `sentence_bert_config.json` for the max sequence length and
//! `1_Pooling/config.json` for the pooling mode). Texts are sorted by token length and
//! batched so each batch pads only to its own longest text; mean pooling over the attention
//! mask, then L2 normalisation, as sentence-transformers does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

use super::{normalize, EmbedError, Embedder};

/// Texts per forward pass.
const BATCH: usize = 32;

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    Cls,
}

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    pooling: Pooling,
    device: Device,
}

/// A BERT-family sentence embedder loaded from a model directory.
#[derive(Clone)]
pub struct BertEmbedder {
    model: Arc<Model>,
    model_id: String,
    dim: usize,
    dir: PathBuf,
}

impl std::fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("model_id", &self.model_id)
            .field("dim", &self.dim)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl BertEmbedder {
    /// Load the model in `dir`.
    ///
    /// # Errors
    /// [`EmbedError::Model`] naming the missing or unreadable file.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let fail = |reason: String| EmbedError::Model {
            path: dir.display().to_string(),
            reason,
        };
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| fail(format!("{name}: {e}")));
        let config_bytes = read("config.json")?;
        let config: Config = serde_json::from_slice(&config_bytes)
            .map_err(|e| fail(format!("config.json is not a BERT config: {e}")))?;
        let raw: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap_or_default();
        let dim = raw
            .get("hidden_size")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| fail("config.json has no hidden_size".into()))? as usize;
        let max_positions = raw
            .get("max_position_embeddings")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(512) as usize;
        let max_len = std::fs::read(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("max_seq_length").and_then(serde_json::Value::as_u64))
            .map_or(max_positions, |n| (n as usize).min(max_positions));
        let pooling = pooling_mode(dir).map_err(fail)?;

        let mut tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| fail(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| fail(format!("tokenizer truncation: {e}")))?;
        tokenizer.with_padding(None);

        let weights = read("model.safetensors")?;
        let model_id = model_id(dim, &config_bytes, &weights);
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| fail(format!("model.safetensors: {e}")))?;
        let bert = BertModel::load(vb, &config).map_err(|e| fail(format!("model.safetensors: {e}")))?;
        tracing::info!(model_id, dim, max_len, "embedding model loaded");
        Ok(BertEmbedder {
            model: Arc::new(Model {
                bert,
                tokenizer,
                pooling,
                device,
            }),
            model_id,
            dim,
            dir: dir.to_path_buf(),
        })
    }

    /// Embed on the calling thread (blocking; candle uses every core for the matrix work).
    ///
    /// # Errors
    /// [`EmbedError::Inference`] when tokenisation or the forward pass fails.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.model.embed(texts, self.dim)
    }
}

impl Model {
    fn embed(&self, texts: &[String], dim: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inference = |e: &dyn std::fmt::Display| EmbedError::Inference(e.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| inference(&e))?;
        // Shortest first, so every batch pads only to lengths close to its own.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let len = chunk
                .iter()
                .map(|&i| encodings[i].get_ids().len())
                .max()
                .unwrap_or(0)
                .max(1);
            let mut ids = Vec::with_capacity(chunk.len() * len);
            let mut mask = Vec::with_capacity(chunk.len() * len);
            for &i in chunk {
                let e = &encodings[i];
                ids.extend(e.get_ids().iter().copied());
                mask.extend(e.get_attention_mask().iter().copied());
                ids.resize(ids.len() + len - e.get_ids().len(), 0);
                mask.resize(mask.len() + len - e.get_attention_mask().len(), 0);
            }
            let shape = (chunk.len(), len);
            let vectors = self.forward(ids, mask, shape).map_err(|e| inference(&e))?;
            for (&i, v) in chunk.iter().zip(vectors) {
                if v.len() != dim {
                    return Err(EmbedError::Inference(format!(
                        "model gave {} values, expected {dim}",
                        v.len()
                    )));
                }
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn forward(&self, ids: Vec<u32>, mask: Vec<u32>, shape: (usize, usize)) -> candle_core::Result<Vec<Vec<f32>>> {
        let input_ids = Tensor::from_vec(ids, shape, &self.device)?;
        let attention = Tensor::from_vec(mask, shape, &self.device)?;
        let token_types = input_ids.zeros_like()?;
        let hidden = self.bert.forward(&input_ids, &token_types, Some(&attention))?;
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let m = attention.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&m)?.sum(1)?;
                let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
                summed.broadcast_div(&counts)?
            }
        };
        let mut rows: Vec<Vec<f32>> = pooled.to_vec2()?;
        rows.iter_mut().for_each(|r| normalize(r));
        Ok(rows)
    }
}

#[async_trait::async_trait]
impl Embedder for BertEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let model = self.model.clone();
        let texts = texts.to_vec();
        let dim = self.dim;
        tokio::task::spawn_blocking(move || model.embed(&texts, dim))
            .await
            .map_err(|e| EmbedError::Inference(format!("embedding task failed: {e}")))?
    }
}

/// Mean pooling unless `1_Pooling/config.json` asks for the CLS token.
fn pooling_mode(dir: &Path) -> Result<Pooling, String> {
    let Ok(bytes) = std::fs::read(dir.join("1_Pooling").join("config.json")) else {
        return Ok(Pooling::Mean);
    };
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("1_Pooling/config.json is not JSON: {e}"))?;
    let on = |k: &str| v.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
    if on("pooling_mode_mean_tokens") {
        Ok(Pooling::Mean)
    } else if on("pooling_mode_cls_token") {
        Ok(Pooling::Cls)
    } else {
        Err("1_Pooling/config.json asks for a pooling mode other than mean or CLS".into())
    }
}

/// `bert/<dim>d@<12 hex>`: the hash covers the config and the weights' size, header and tail,
/// so a different model gets a different id without hashing 90 MB, and moving the model
/// folder keeps it.
fn model_id(dim: usize, config: &[u8], weights: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(config);
    h.update((weights.len() as u64).to_le_bytes());
    h.update(&weights[..weights.len().min(1 << 20)]);
    h.update(&weights[weights.len().saturating_sub(1 << 16)..]);
    let digest = h.finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("bert/{dim}d@{hex}")
}
