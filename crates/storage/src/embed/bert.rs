//! A local sentence-transformers BERT-family model, run in pure Rust with candle.
//!
//! Loads `config.json`, `tokenizer.json` and `model.safetensors` (plus the optional
//! sentence-transformers files `sentence_bert_config.json` for the max sequence length and
//! `1_Pooling/config.json` for the pooling mode). Texts are sorted by token length and
//! batched so each batch pads only to its own longest text; mean pooling over the attention
//! mask, then L2 normalisation, as sentence-transformers does.
//!
//! The weights (~90 MB, ~190 MB resident once turned into tensors) are loaded by the first
//! text to embed, not when the store opens: a one-shot command that only reads history, or a
//! bulk import that leaves embedding to later, never pays for them. Opening checks the files
//! and computes the model id from the config and the weights' size, head and tail.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

use super::{normalize, EmbedError, Embedder};

/// Texts per forward pass, at most.
const BATCH: usize = 32;
/// Tokens (texts × padded length) per forward pass, at most. Activations grow with it, and
/// attention with the square of the length: 32 texts of 256 tokens held ~1 GB at the peak,
/// so long texts go in smaller batches (32 × 64, 16 × 128, 8 × 256 tokens).
const BATCH_TOKENS: usize = 2048;

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    Cls,
}

struct Model {
    /// The network, loaded at the first use.
    bert: std::sync::Mutex<Option<Arc<BertModel>>>,
    config: Config,
    weights: PathBuf,
    tokenizer: Tokenizer,
    pooling: Pooling,
    device: Device,
}

/// One batch to embed and where its vectors go.
type Job = (
    Vec<String>,
    tokio::sync::oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
);

/// A BERT-family sentence embedder loaded from a model directory.
///
/// Inference runs on one dedicated thread (`bert-embed`), not on tokio's blocking pool: the
/// pool hands successive batches to different threads, each with its own malloc arena, and
/// the freed activations of every arena stayed resident (RSS grew past 600 MiB while an
/// import was embedded). The thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct BertEmbedder {
    model: Arc<Model>,
    jobs: std::sync::mpsc::Sender<Job>,
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

        let weights = dir.join("model.safetensors");
        let model_id = model_id(dim, &config_bytes, &weights).map_err(|e| fail(format!("model.safetensors: {e}")))?;
        let device = Device::Cpu;
        tracing::info!(
            model_id,
            dim,
            max_len,
            "embedding model ready (weights load on first use)"
        );
        let model = Arc::new(Model {
            bert: std::sync::Mutex::new(None),
            config,
            weights,
            tokenizer,
            pooling,
            device,
        });
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let worker = model.clone();
        std::thread::Builder::new()
            .name("bert-embed".into())
            .spawn(move || {
                for (texts, reply) in queue {
                    // The caller may have given up waiting; nothing to do then.
                    let _ = reply.send(worker.embed(&texts, dim));
                }
            })
            .map_err(|e| fail(format!("starting the inference thread: {e}")))?;
        Ok(BertEmbedder {
            model,
            jobs,
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
    /// The network, loading the weights the first time.
    fn bert(&self) -> Result<Arc<BertModel>, EmbedError> {
        let mut slot = self.bert.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bert) = slot.as_ref() {
            return Ok(bert.clone());
        }
        let fail = |reason: String| EmbedError::Model {
            path: self.weights.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(&self.weights).map_err(|e| fail(e.to_string()))?;
        let vb =
            VarBuilder::from_buffered_safetensors(bytes, DType::F32, &self.device).map_err(|e| fail(e.to_string()))?;
        let bert = Arc::new(BertModel::load(vb, &self.config).map_err(|e| fail(e.to_string()))?);
        tracing::info!(path = %self.weights.display(), "embedding model weights loaded");
        *slot = Some(bert.clone());
        Ok(bert)
    }

    fn embed(&self, texts: &[String], dim: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inference = |e: &dyn std::fmt::Display| EmbedError::Inference(e.to_string());
        let bert = self.bert()?;
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| inference(&e))?;
        // Shortest first, so every batch pads only to lengths close to its own.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out = vec![Vec::new(); texts.len()];
        let mut chunks: Vec<&[usize]> = Vec::new();
        let mut start = 0;
        for end in 1..=order.len() {
            let longest = encodings[order[end - 1]].get_ids().len().max(1);
            // Sorted by length: the text at `end - 1` is the longest of the chunk.
            if end - start > BATCH || (end - start) * longest > BATCH_TOKENS && end - start > 1 {
                chunks.push(&order[start..end - 1]);
                start = end - 1;
            }
        }
        if start < order.len() {
            chunks.push(&order[start..]);
        }
        for chunk in chunks {
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
            let vectors = self.forward(&bert, ids, mask, shape).map_err(|e| inference(&e))?;
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

    fn forward(
        &self,
        bert: &BertModel,
        ids: Vec<u32>,
        mask: Vec<u32>,
        shape: (usize, usize),
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let input_ids = Tensor::from_vec(ids, shape, &self.device)?;
        let attention = Tensor::from_vec(mask, shape, &self.device)?;
        let token_types = input_ids.zeros_like()?;
        let hidden = bert.forward(&input_ids, &token_types, Some(&attention))?;
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
        let (reply, vectors) = tokio::sync::oneshot::channel();
        self.jobs
            .send((texts.to_vec(), reply))
            .map_err(|_| EmbedError::Inference("the inference thread has stopped".into()))?;
        vectors
            .await
            .map_err(|_| EmbedError::Inference("the inference thread stopped during a batch".into()))?
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
/// Reads only those parts of the weights file; the safetensors header must parse.
fn model_id(dim: usize, config: &[u8], weights: &Path) -> std::io::Result<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::File::open(weights)?;
    let len = file.metadata()?.len();
    let mut head = vec![0u8; len.min(1 << 20) as usize];
    file.read_exact(&mut head)?;
    let tail_len = len.min(1 << 16);
    let mut tail = vec![0u8; tail_len as usize];
    file.seek(SeekFrom::Start(len - tail_len))?;
    file.read_exact(&mut tail)?;
    check_safetensors_header(&head, len)?;
    let mut h = Sha256::new();
    h.update(config);
    h.update(len.to_le_bytes());
    h.update(&head);
    h.update(&tail);
    let digest = h.finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    Ok(format!("bert/{dim}d@{hex}"))
}

/// A safetensors file starts with a little-endian u64 header length and a JSON header.
fn check_safetensors_header(head: &[u8], file_len: u64) -> std::io::Result<()> {
    let invalid = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a safetensors file: {why}"),
        )
    };
    let n = head
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .ok_or_else(|| invalid("shorter than its header"))?;
    if n == 0 || n.saturating_add(8) > file_len {
        return Err(invalid("the header length is out of range"));
    }
    if let Some(json) = head.get(8..8 + n as usize) {
        serde_json::from_slice::<serde_json::Value>(json).map_err(|_| invalid("the header is not JSON"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_that_are_not_safetensors_fail_at_open_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("model.safetensors");
        let cases: [(&[u8], &str); 3] = [
            (b"short", "shorter than its header"),
            (&[255, 255, 255, 255, 255, 255, 255, 127, b'{'], "out of range"),
            (&[4, 0, 0, 0, 0, 0, 0, 0, b'n', b'o', b'p', b'e', 0], "not JSON"),
        ];
        for (bytes, reason) in cases {
            std::fs::write(&weights, bytes).unwrap();
            let err = model_id(384, b"{}", &weights).unwrap_err();
            assert!(err.to_string().contains(reason), "{err}");
        }
        let header = br#"{"__metadata__":{}}"#;
        let mut good = (header.len() as u64).to_le_bytes().to_vec();
        good.extend_from_slice(header);
        std::fs::write(&weights, &good).unwrap();
        let id = model_id(384, b"{}", &weights).unwrap();
        assert!(id.starts_with("bert/384d@"), "{id}");
        assert_eq!(id, model_id(384, b"{}", &weights).unwrap(), "stable");
        assert_ne!(id, model_id(384, b"{\"x\":1}", &weights).unwrap(), "the config counts");
    }
}
