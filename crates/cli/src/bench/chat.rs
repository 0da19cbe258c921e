//! The chat workload behind `cloudops-storage bench`: fill a fresh store and time each call.
//!
//! Timings are measured here and reported, never asserted: tests check behaviour, this
//! module measures speed.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::target::BenchStore;
use anyhow::Result;
use cloudops_storage_service::StorageService;
use cloudops_storage_service::{ConfigKey, StorageConfig};
use cloudops_storage_service::{HistoryRange, NewMessage, Role};

/// The engine's folder under the data dir (collections and journal; not keys or backups).
const ENGINE_DIR: &str = "qdrant";

/// Bytes allocated on disk by the files under `dir` (the engine's sparse, preallocated files
/// count only for what they occupy); 0 when it cannot be read.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_size(&entry.path()),
            Ok(_) => entry
                .metadata()
                .map_or(0, |m| cloudops_storage_service::platform::allocated_bytes(&m)),
            Err(_) => 0,
        })
        .sum()
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct ChatBenchOptions {
    /// Messages to append in total.
    pub messages: usize,
    /// Messages per conversation (conversations = messages / this).
    pub messages_per_conversation: usize,
    /// Conversations per user.
    pub conversations_per_user: usize,
    /// Timed samples of each read.
    pub read_samples: usize,
    /// Also time the upload of the backup to this S3 target.
    pub s3: Option<cloudops_storage_service::S3Config>,
    /// Where the store lives (embedded, or a server).
    pub store: BenchStore,
    /// Daily backups simulated into the folder bucket (0: only the first two), each after 1%
    /// more messages; all kept.
    pub daily_backups: usize,
}

impl Default for ChatBenchOptions {
    fn default() -> Self {
        ChatBenchOptions {
            messages: 100_000,
            messages_per_conversation: 20,
            conversations_per_user: 50,
            read_samples: 2_000,
            s3: None,
            store: BenchStore::from_config(&StorageConfig::default()),
            daily_backups: 0,
        }
    }
}

/// Append 1% of `messages` (at least one) to random conversations: a day's churn between
/// two backups. `shift` varies the words from one day to the next.
async fn append_one_percent(
    service: &StorageService,
    contexts: &[String],
    rng: &mut impl Rng,
    messages: usize,
    shift: usize,
) -> Result<()> {
    for i in 0..(messages / 100).max(1) {
        let ctx = &contexts[rng.gen_range(0..contexts.len())];
        let content = (0..40)
            .map(|w| WORDS[(shift + i * 11 + w * 5) % WORDS.len()])
            .collect::<Vec<_>>()
            .join(" ");
        service.chat.append(ctx, NewMessage::new(Role::User, content)).await?;
    }
    Ok(())
}

/// The bucket after simulated daily backups (1% more messages a day, every backup kept).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DailyBackups {
    /// Backups uploaded.
    pub backups: usize,
    /// Bytes the bucket folder holds after them.
    pub bucket_bytes: u64,
    /// Bytes their uploads sent.
    pub uploaded_bytes: u64,
    /// Bytes the same backups take as full archives (what a non-incremental bucket keeps).
    pub full_archives_bytes: u64,
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Latency {
    /// Samples taken.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Slowest sample.
    pub max_ms: f64,
}

impl Latency {
    /// Summarise raw samples.
    pub(crate) fn from_samples(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let n = samples.len().max(1);
        let at = |q: f64| {
            samples
                .get(((n as f64 * q) as usize).min(n - 1))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / n as f64 * 1e3;
        Latency {
            samples: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            mean_ms: mean,
            max_ms: samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        }
    }
}

/// What the chat bench measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatBenchReport {
    /// Where the store lived (`embedded`, or the server and its replication).
    pub store: String,
    /// Messages stored.
    pub messages: usize,
    /// Conversations created.
    pub conversations: usize,
    /// Users.
    pub users: usize,
    /// `append` latency (sealing, message upsert, conversation update).
    pub append: Latency,
    /// Appends per second over the whole fill.
    pub append_per_second: f64,
    /// `get_history(Last(5))` latency, unsealing included.
    pub last5: Latency,
    /// `list_conversations(user, limit 20)` latency.
    pub list_conversations: Latency,
    /// Time to reopen the filled store.
    pub reopen_ms: f64,
    /// Bytes the collections occupy on disk after the fill and a flush (embedded only: a
    /// server's files are not this process's to measure).
    pub store_bytes: Option<u64>,
    /// Store size on disk after the restore from the backup and a reopen: the engine's old
    /// WAL segments are neither in a backup nor kept past an open.
    pub store_bytes_after_reopen: Option<u64>,
    /// `backup.create_snapshot()` end to end (snapshot, tar, zstd, encryption, manifest).
    pub backup_ms: f64,
    /// How long writers were paused during that backup.
    pub backup_writer_pause_ms: f64,
    /// Size of the encrypted archive.
    pub backup_archive_bytes: u64,
    /// Upload of that archive to S3, when a target was given.
    pub upload_ms: Option<f64>,
    /// Incremental upload of that backup into an empty folder laid out as a bucket: the first
    /// backup's upload (every chunk new).
    pub incremental_first: cloudops_storage_service::UploadReport,
    /// Time of that first incremental upload, ms.
    pub incremental_first_ms: f64,
    /// Then 1% more messages, another backup, and its incremental upload into the same folder.
    pub incremental_second: cloudops_storage_service::UploadReport,
    /// Time of the second incremental upload, ms.
    pub incremental_second_ms: f64,
    /// With daily backups simulated: the bucket after them, against full archives.
    pub daily_backups: Option<DailyBackups>,
    /// `backup::restore` of that archive (checksum, decrypt, unpack, open and count, swap).
    pub restore_ms: f64,
    /// Resident memory after the fill, bytes.
    pub rss_after_fill_bytes: Option<u64>,
    /// Of that, anonymous memory (heap and engine structures), bytes.
    pub rss_anon_after_fill_bytes: Option<u64>,
    /// Of that, file-backed pages (the engine's memory-mapped files), bytes.
    pub rss_file_after_fill_bytes: Option<u64>,
    /// Resident memory after the timed reads, bytes.
    pub rss_after_reads_bytes: Option<u64>,
    /// Time of `StorageService::optimize` on the filled store.
    pub optimize_ms: f64,
    /// Resident memory after optimising, bytes.
    pub rss_after_optimize_bytes: Option<u64>,
    /// `get_history(Last(5))` latency on the optimised store.
    pub last5_after_optimize: Latency,
    /// `append` latency of 1,000 more messages on the optimised store.
    pub append_after_optimize: Latency,
    /// Resident memory after the first service shut down, bytes.
    pub rss_after_shutdown_bytes: Option<u64>,
    /// `get_history(Last(5))` latency on the store reopened after the restore (cold).
    pub last5_after_reopen: Latency,
    /// Resident memory while serving those reads (the first service shut down and its freed
    /// heap returned to the system first), bytes.
    pub rss_serving_after_reopen_bytes: Option<u64>,
    /// Of that, anonymous memory, bytes.
    pub rss_anon_serving_after_reopen_bytes: Option<u64>,
    /// Of that, file-backed pages (mapped files, reclaimable), bytes.
    pub rss_file_serving_after_reopen_bytes: Option<u64>,
    /// Resident memory at the end (store reopened and closed), bytes.
    pub rss_bytes: Option<u64>,
    /// Peak resident memory, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// The engine's own floor on the same points (embedded stores; see `floor`), measured
    /// after everything above.
    pub floor: Option<super::floor::EngineFloor>,
}

/// Run the chat workload in `dir` (a fresh, empty folder). `progress` is called with
/// (done, total) during the fill.
///
/// # Errors
/// Any storage error.
pub(crate) async fn run_chat_bench(
    dir: &Path,
    options: &ChatBenchOptions,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<ChatBenchReport> {
    // Append latency is measured without a background embedder competing for the CPU;
    // `bench --search` measures the search side.
    let mut config = keyword_only_config(dir, &options.store, "chat")?;
    config.backup.s3 = options.s3.clone();
    let service = StorageService::open(config.clone()).await?;
    let per_conv = options.messages_per_conversation.max(1);
    let conversations = options.messages.div_ceil(per_conv).max(1);
    let users = conversations.div_ceil(options.conversations_per_user.max(1)).max(1);
    let mut contexts = Vec::with_capacity(conversations);
    for c in 0..conversations {
        let user = format!("user-{}", c % users);
        let ctx = service
            .chat
            .create_conversation(
                &user,
                &format!("Conversation {c} about EC2 and RDS"),
                serde_json::json!({"bench": true}),
            )
            .await?;
        contexts.push(ctx);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut append = Vec::with_capacity(options.messages);
    let fill_start = Instant::now();
    for i in 0..options.messages {
        let ctx = &contexts[i % conversations];
        let role = if i % 2 == 0 { Role::User } else { Role::Assistant };
        let words = rng.gen_range(20..60);
        let content = (0..words)
            .map(|w| WORDS[(i * 31 + w * 7) % WORDS.len()])
            .collect::<Vec<_>>()
            .join(" ");
        let t = Instant::now();
        service.chat.append(ctx, NewMessage::new(role, content)).await?;
        append.push(t.elapsed());
        if i % 1000 == 0 {
            progress("appending", i, options.messages);
        }
    }
    let fill = fill_start.elapsed();
    progress("appending", options.messages, options.messages);
    let rss_after_fill = memory().0;
    let (rss_anon_after_fill, rss_file_after_fill) = rss_split();
    // Reads on a settled store (the fill's last background compaction done), as the engine
    // floor's are.
    service.flush().await?;

    let last5 = time_last5(&service, &contexts, &mut rng, options.read_samples).await?;
    let mut list = Vec::with_capacity(options.read_samples);
    for _ in 0..options.read_samples {
        let user = format!("user-{}", rng.gen_range(0..users));
        let t = Instant::now();
        service.chat.list_conversations(&user, None, 20, None).await?;
        list.push(t.elapsed());
    }
    let rss_after_reads = memory().0;
    let t = Instant::now();
    service.optimize().await?;
    let optimize_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss_after_optimize = memory().0;
    let last5_optimized = time_last5(&service, &contexts, &mut rng, options.read_samples).await?;
    let mut append_optimized = Vec::with_capacity(1000);
    for i in 0..1000 {
        let ctx = &contexts[rng.gen_range(0..conversations)];
        let content = (0..40)
            .map(|w| WORDS[(i * 13 + w * 7) % WORDS.len()])
            .collect::<Vec<_>>()
            .join(" ");
        let t = Instant::now();
        service.chat.append(ctx, NewMessage::new(Role::User, content)).await?;
        append_optimized.push(t.elapsed());
    }
    let t = Instant::now();
    let backup = service.backup.create_snapshot().await?;
    let backup_ms = t.elapsed().as_secs_f64() * 1e3;
    let upload_ms = match &options.s3 {
        Some(_) => {
            let t = Instant::now();
            service.backup.upload(&backup).await?;
            Some(t.elapsed().as_secs_f64() * 1e3)
        }
        None => None,
    };
    // Incremental uploads into a folder standing in for the bucket: the first backup, then
    // one more after 1% more messages.
    let bucket = dir.join("bucket");
    let t = Instant::now();
    let incremental_first = service.backup.upload_to_folder(&bucket, &backup).await?;
    let incremental_first_ms = t.elapsed().as_secs_f64() * 1e3;
    append_one_percent(&service, &contexts, &mut rng, options.messages, 0).await?;
    let next = service.backup.create_snapshot().await?;
    let t = Instant::now();
    let incremental_second = service.backup.upload_to_folder(&bucket, &next).await?;
    let incremental_second_ms = t.elapsed().as_secs_f64() * 1e3;
    let daily_backups = match options.daily_backups {
        0 => None,
        days => {
            let mut full_archives_bytes = backup.archive_bytes + next.archive_bytes;
            let mut uploaded_bytes = incremental_first.uploaded_bytes + incremental_second.uploaded_bytes;
            for day in 3..=days {
                progress("daily backups", day, days);
                append_one_percent(&service, &contexts, &mut rng, options.messages, day * 7).await?;
                let daily = service.backup.create_snapshot().await?;
                uploaded_bytes += service.backup.upload_to_folder(&bucket, &daily).await?.uploaded_bytes;
                full_archives_bytes += daily.archive_bytes;
                // Only the bucket is measured: the local copy of a simulated day goes.
                for ext in ["cosb", "json"] {
                    std::fs::remove_file(service.backup.dir().join(format!("{}.{ext}", daily.name)))?;
                }
            }
            Some(DailyBackups {
                backups: days.max(2),
                bucket_bytes: dir_size(&bucket),
                uploaded_bytes,
                full_archives_bytes,
            })
        }
    };
    service.shutdown().await?;
    drop(service);
    release_freed_heap();
    let rss_after_shutdown = memory().0;
    let store_bytes = (!options.store.is_remote()).then(|| dir_size(&dir.join("data").join(ENGINE_DIR)));
    let t = Instant::now();
    StorageService::restore_backup(
        &config,
        &cloudops_storage_service::RestoreOptions {
            target: cloudops_storage_service::RestoreTarget::Named(backup.name.clone()),
            ..Default::default()
        },
        &cloudops_storage_service::no_progress,
    )
    .await?;
    let restore_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let reopened = StorageService::open(config).await?;
    let reopen_ms = t.elapsed().as_secs_f64() * 1e3;
    let last5_reopened = time_last5(&reopened, &contexts, &mut rng, options.read_samples).await?;
    let rss_serving_after_reopen = memory().0;
    let (rss_anon_serving_after_reopen, rss_file_serving_after_reopen) = rss_split();
    reopened.shutdown().await?;
    let store_bytes_after_reopen = (!options.store.is_remote()).then(|| dir_size(&dir.join("data").join(ENGINE_DIR)));
    let (rss, peak) = memory();
    let floor = if options.store.is_remote() {
        None
    } else {
        Some(
            super::floor::measure(
                &dir.join("data"),
                &dir.join("floor"),
                options.read_samples,
                |done, total| progress("engine floor", done, total),
            )
            .await?,
        )
    };
    Ok(ChatBenchReport {
        store: options.store.describe(),
        messages: options.messages,
        conversations,
        users,
        append: Latency::from_samples(append),
        append_per_second: options.messages as f64 / fill.as_secs_f64().max(1e-9),
        last5,
        list_conversations: Latency::from_samples(list),
        reopen_ms,
        store_bytes,
        store_bytes_after_reopen,
        backup_ms,
        backup_writer_pause_ms: backup.writer_pause_ms,
        backup_archive_bytes: backup.archive_bytes,
        upload_ms,
        incremental_first,
        incremental_first_ms,
        incremental_second,
        incremental_second_ms,
        daily_backups,
        restore_ms,
        rss_after_fill_bytes: rss_after_fill,
        rss_anon_after_fill_bytes: rss_anon_after_fill,
        rss_file_after_fill_bytes: rss_file_after_fill,
        rss_after_reads_bytes: rss_after_reads,
        rss_after_shutdown_bytes: rss_after_shutdown,
        optimize_ms,
        rss_after_optimize_bytes: rss_after_optimize,
        last5_after_optimize: last5_optimized,
        append_after_optimize: Latency::from_samples(append_optimized),
        last5_after_reopen: last5_reopened,
        rss_serving_after_reopen_bytes: rss_serving_after_reopen,
        rss_anon_serving_after_reopen_bytes: rss_anon_serving_after_reopen,
        rss_file_serving_after_reopen_bytes: rss_file_serving_after_reopen,
        rss_bytes: rss,
        peak_rss_bytes: peak,
        floor,
    })
}

/// A workload's store `name` (data dir `dir/data`, key `dir/bench.key`, collections where
/// `store` says), without an embedding model.
///
/// # Errors
/// Configuration errors.
pub(crate) fn keyword_only_config(dir: &Path, store: &BenchStore, name: &str) -> Result<StorageConfig> {
    let mut config = StorageConfig::builder()
        .with_data_dir(dir.join("data"))
        .with_config(ConfigKey::KeySource, "file")
        .with_config(ConfigKey::KeyFile, dir.join("bench.key").display().to_string())
        .with_config(ConfigKey::EmbeddingProvider, "none")
        .build()?;
    store.apply(&mut config, name);
    Ok(config)
}

/// `get_history(Last(5))` latency of `samples` conversations picked at random.
async fn time_last5(
    service: &StorageService,
    contexts: &[String],
    rng: &mut rand::rngs::StdRng,
    samples: usize,
) -> Result<Latency> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let ctx = &contexts[rng.gen_range(0..contexts.len())];
        let t = Instant::now();
        let got = service.chat.get_history(ctx, HistoryRange::Last(5)).await?;
        times.push(t.elapsed());
        debug_assert!(got.len() <= 5);
    }
    Ok(Latency::from_samples(times))
}

/// (VmRSS, VmHWM) of this process in bytes, from `/proc/self/status`.
pub(crate) fn memory() -> (Option<u64>, Option<u64>) {
    (status_field("VmRSS:"), status_field("VmHWM:"))
}

/// Hand the heap freed so far back to the system (glibc keeps it otherwise), so that what a
/// later service holds is measured rather than an earlier one's leftovers.
pub(crate) fn release_freed_heap() {
    cloudops_storage_service::platform::release_freed_heap();
}

/// (RssAnon, RssFile) of this process in bytes.
pub(crate) fn rss_split() -> (Option<u64>, Option<u64>) {
    (status_field("RssAnon:"), status_field("RssFile:"))
}

fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Vocabulary of the generated messages.
pub(crate) const WORDS: &[&str] = &[
    "instance",
    "bucket",
    "lambda",
    "timeout",
    "the",
    "production",
    "database",
    "latency",
    "cost",
    "region",
    "us-east-1",
    "scaling",
    "policy",
    "role",
    "permission",
    "denied",
    "snapshot",
    "volume",
    "subnet",
    "vpc",
    "alarm",
    "cpu",
    "memory",
    "restart",
    "deploy",
    "stack",
    "cloudformation",
    "error",
    "throttling",
    "quota",
    "why",
    "is",
    "my",
    "how",
    "do",
    "i",
    "reduce",
    "increase",
    "check",
    "logs",
];
