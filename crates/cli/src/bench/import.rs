//! The import workload behind `cloudops-storage bench --import`: write a chat-data folder as
//! the Node.js module did, import it, and measure the speed and memory of the import and of
//! the background embedding that follows it.
//!
//! Timings are measured here and reported, never asserted.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::chat::{keyword_only_config, memory, WORDS};
use anyhow::{Context as _, Result};
use cloudops_storage_service::EmbeddingProvider;
use cloudops_storage_service::StorageService;

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct ImportBenchOptions {
    /// Messages in the folder.
    pub messages: usize,
    /// Messages per context file.
    pub messages_per_file: usize,
    /// Open the store with this model (the import must not wait for it).
    pub model_dir: Option<PathBuf>,
    /// With a model: how long to let the background indexer embed after the import.
    pub embed_window: Duration,
    /// Where the store lives (embedded, or a server).
    pub store: super::target::BenchStore,
}

/// What the import workload measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ImportBenchReport {
    /// Messages imported.
    pub messages: u64,
    /// Context files imported.
    pub files: u64,
    /// The embedding model the store was open with (`None`: keyword only).
    pub model: Option<String>,
    /// Wall time of the import, seconds.
    pub import_seconds: f64,
    /// Messages imported per second.
    pub messages_per_second: f64,
    /// Peak RSS of the process during the import.
    pub import_peak_rss_bytes: Option<u64>,
    /// Messages without a dense vector when the import returned.
    pub pending_after_import: u64,
    /// Messages the background indexer embedded in the window after the import.
    pub embedded_in_window: u64,
    /// Length of that window, seconds.
    pub embed_window_seconds: f64,
    /// Background embedding rate in that window, messages per second.
    pub embedded_per_second: Option<f64>,
    /// Peak RSS of the process while the indexer embedded.
    pub embed_peak_rss_bytes: Option<u64>,
}

/// Run the import workload in `dir` (a fresh, empty folder); `progress(done, total)` follows
/// the files.
///
/// # Errors
/// Any storage error, and I/O errors writing the folder.
pub(crate) async fn run_import_bench(
    dir: &Path,
    options: &ImportBenchOptions,
    progress: impl Fn(usize, usize) + Send + Sync,
) -> Result<ImportBenchReport> {
    let files = write_chat_data(&dir.join("chat-data"), options)?;
    let mut config = keyword_only_config(dir, &options.store, "import")?;
    if let Some(model) = &options.model_dir {
        config.embedding.provider = EmbeddingProvider::Bert;
        config.embedding.model_dir = Some(model.clone());
    }
    let service = StorageService::open(config).await?;
    reset_peak_rss();
    let start = Instant::now();
    let report = service
        .chat
        .import_node_dir(&dir.join("chat-data"), None, &|p| {
            progress(p.done as usize, p.total as usize)
        })
        .await?;
    let import = start.elapsed();
    let import_peak = memory().1;
    let pending_after_import = service.chat.pending_embeddings().await?;

    let mut embedded_in_window = 0;
    let mut window = Duration::ZERO;
    let mut embed_peak = None;
    if service.chat.semantic_enabled() && pending_after_import > 0 {
        reset_peak_rss();
        let start = Instant::now();
        let waiting = service.chat.wait_for_index();
        // Either every message is embedded or the window ends first.
        let _ = tokio::time::timeout(options.embed_window, waiting).await;
        window = start.elapsed();
        embedded_in_window = pending_after_import.saturating_sub(service.chat.pending_embeddings().await?);
        embed_peak = memory().1;
    }
    let model = service.chat.embedding_model().map(String::from);
    service.shutdown().await?;
    Ok(ImportBenchReport {
        messages: report.messages,
        files: files as u64,
        model,
        import_seconds: import.as_secs_f64(),
        messages_per_second: report.messages as f64 / import.as_secs_f64().max(1e-9),
        import_peak_rss_bytes: import_peak,
        pending_after_import,
        embedded_in_window,
        embed_window_seconds: window.as_secs_f64(),
        embedded_per_second: (window > Duration::ZERO).then(|| embedded_in_window as f64 / window.as_secs_f64()),
        embed_peak_rss_bytes: embed_peak,
    })
}

/// Write `contexts/{userId}-{contextId}.json` files in the old module's own layout
/// (user-extended `context_id`, dashed bare ids, a millisecond `timestamp`); returns how many.
fn write_chat_data(root: &Path, options: &ImportBenchOptions) -> Result<usize> {
    let contexts = root.join("contexts");
    std::fs::create_dir_all(&contexts).with_context(|| format!("creating {}", contexts.display()))?;
    let per_file = options.messages_per_file.max(1);
    let files = options.messages.div_ceil(per_file).max(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut written = 0;
    for f in 0..files {
        let n = per_file.min(options.messages - written);
        let user = format!("user-{}", f % 50);
        let bare = format!("{}-{:013x}", 1_795_000_000_000_u64 + f as u64 * 60_000, f * 7919);
        let start = 1_795_000_000 + f as i64 * 60;
        let messages: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                let words = rng.gen_range(20..60);
                let text = (0..words)
                    .map(|w| WORDS[(f * 131 + i * 31 + w * 7) % WORDS.len()])
                    .collect::<Vec<_>>()
                    .join(" ");
                serde_json::json!({"r": i % 2, "c": text})
            })
            .collect();
        let body = serde_json::json!({
            "agent_type": "aws",
            "chat_title": format!("Conversation {f}"),
            "context_id": format!("{user}-{bare}"),
            "timestamp": (start + 600) * 1000,
            "final_conversation_context": {"i": bare, "m": messages, "t": start, "l": start + 600},
        });
        let path = contexts.join(format!("{user}-{bare}.json"));
        let mut out = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        out.write_all(body.to_string().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        written += n;
    }
    Ok(files)
}

/// Reset the process's peak RSS (`VmHWM`) so the next reading covers only what follows.
fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::debug!(error = %e, "peak RSS not reset; it covers the whole process");
    }
}
