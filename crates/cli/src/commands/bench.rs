//! `bench`: the chat workload on a fresh store in a temporary folder (or, with `--store
//! remote --url URL`, on that Qdrant server under a prefix of its own, dropped afterwards).

use crate::bench::chat::{run_chat_bench, ChatBenchOptions, ChatBenchReport, Latency};
use crate::bench::durability::{run_sync_bench, SyncBenchReport};
use crate::bench::estate::{run_estate_bench, EstateBenchOptions, EstateBenchReport};
use crate::bench::estate_dense::{run_dense_bench, DenseBenchOptions, DenseBenchReport, DenseShape};
use crate::bench::floor::EngineFloor;
use crate::bench::import::{run_import_bench, ImportBenchOptions, ImportBenchReport};
use crate::bench::search::{run_search_bench, SearchBenchOptions, SearchBenchReport};
use crate::bench::target::BenchStore;
use cloudops_storage_service::StorageConfig;

use crate::args::BenchArgs;
use crate::output::{self, Output};

pub(crate) async fn run(args: &BenchArgs, config: StorageConfig, out: Output) -> anyhow::Result<()> {
    anyhow::ensure!(args.messages > 0, "--messages must be at least 1");
    let store = BenchStore::from_config(&config);
    let (result, stores) = if args.search {
        (search(args, &config, &store, out).await, &["search"][..])
    } else if let (Some(resources), Some(shape)) = (args.resources, args.dense) {
        (
            estate_dense(args, resources, shape, &config, &store, out).await,
            &["dense"][..],
        )
    } else if let Some(resources) = args.resources {
        (
            estate(args, resources, &config, &store, out).await,
            &["keyword", "semantic"][..],
        )
    } else if args.import {
        (import(args, &config, &store, out).await, &["import"][..])
    } else if args.sync {
        anyhow::ensure!(
            !store.is_remote(),
            "--sync measures the embedded store's journal; a Qdrant server decides its own durability"
        );
        (sync(args, &store, out).await, &[][..])
    } else {
        (chat(args, config, &store, out).await, &["chat"][..])
    };
    if args.keep && store.is_remote() {
        eprintln!("collections kept on the server: {}", store.describe());
        return result;
    }
    // The run's collections go even when the workload failed; its error comes first.
    let cleanup = store.cleanup(stores).await;
    result.and(cleanup)
}

async fn chat(args: &BenchArgs, config: StorageConfig, store: &BenchStore, out: Output) -> anyhow::Result<()> {
    let s3 = config.backup.s3;
    let dir = tempfile::tempdir()?;
    let options = ChatBenchOptions {
        messages: args.messages,
        messages_per_conversation: args.per_conversation.max(1),
        read_samples: args.samples.max(1),
        // `[backup.s3]` from CLOUDOPS_BACKUP_S3_* (or --config) also times an upload.
        s3,
        store: store.clone(),
        daily_backups: args.daily_backups,
        ..ChatBenchOptions::default()
    };
    let progress = out.progress("appending");
    let report = run_chat_bench(dir.path(), &options, |phase, done, total| {
        progress.phase(phase, done, total)
    })
    .await?;
    if args.keep {
        let kept = dir.keep();
        eprintln!("store kept in {}", kept.join("data").display());
    }
    out.emit(&report, print_report)
}

fn print_report(r: &ChatBenchReport) {
    println!(
        "chat bench: {} messages in {} conversations of {} users (encryption on), store {}",
        r.messages, r.conversations, r.users, r.store
    );
    latency_table(
        "OPERATION",
        &[
            ("append", &r.append),
            ("last 5 messages", &r.last5),
            ("list conversations (20)", &r.list_conversations),
            ("last 5 after optimize", &r.last5_after_optimize),
            ("append after optimize", &r.append_after_optimize),
            ("last 5 after reopen (cold)", &r.last5_after_reopen),
        ],
    );
    if let Some(f) = &r.floor {
        print_floor(
            f,
            &[
                ("append", &r.append, &f.upsert),
                ("last 5 messages", &r.last5, &f.last5),
            ],
        );
    }
    println!("append throughput          {:.0} msg/s", r.append_per_second);
    println!("optimize                   {:.1} ms", r.optimize_ms);
    println!("reopen                     {:.1} ms", r.reopen_ms);
    if let (Some(bytes), Some(reopened)) = (r.store_bytes, r.store_bytes_after_reopen) {
        println!(
            "store size on disk         {} ({} per message); {} after restore + reopen ({} per message)",
            output::bytes(bytes),
            output::bytes(bytes / r.messages.max(1) as u64),
            output::bytes(reopened),
            output::bytes(reopened / r.messages.max(1) as u64)
        );
    }
    println!(
        "backup                     {:.0} ms (writers paused {:.0} ms), archive {}",
        r.backup_ms,
        r.backup_writer_pause_ms,
        output::bytes(r.backup_archive_bytes)
    );
    if let Some(upload) = r.upload_ms {
        println!("upload to S3               {upload:.0} ms");
    }
    let (a, b) = (&r.incremental_first, &r.incremental_second);
    println!(
        "incremental upload         first {} in {:.0} ms ({} chunks); after 1% more messages {} in {:.0} ms ({} of {} chunks new, {:.1}% of the first)",
        output::bytes(a.uploaded_bytes),
        r.incremental_first_ms,
        a.chunks,
        output::bytes(b.uploaded_bytes),
        r.incremental_second_ms,
        b.new_chunks,
        b.chunks,
        100.0 * b.uploaded_bytes as f64 / a.uploaded_bytes.max(1) as f64
    );
    if let Some(d) = &r.daily_backups {
        println!(
            "{} daily backups           bucket {} (uploads {}); as full archives {} ({:.1}%)",
            d.backups,
            output::bytes(d.bucket_bytes),
            output::bytes(d.uploaded_bytes),
            output::bytes(d.full_archives_bytes),
            100.0 * d.bucket_bytes as f64 / d.full_archives_bytes.max(1) as f64
        );
    }
    println!("restore                    {:.0} ms", r.restore_ms);
    let mb = |v: Option<u64>| v.map_or("n/a".to_string(), output::bytes);
    println!(
        "RSS after fill             {} (anon {}, mapped files {})",
        mb(r.rss_after_fill_bytes),
        mb(r.rss_anon_after_fill_bytes),
        mb(r.rss_file_after_fill_bytes)
    );
    println!(
        "RSS reading, reopened      {} (anon {}, mapped files {})",
        mb(r.rss_serving_after_reopen_bytes),
        mb(r.rss_anon_serving_after_reopen_bytes),
        mb(r.rss_file_serving_after_reopen_bytes)
    );
    println!(
        "RSS after reopen           {} (process peak {})",
        mb(r.rss_bytes),
        mb(r.peak_rss_bytes)
    );
}

/// The engine's floor, and each of our figures over its counterpart (p50 / p50).
fn print_floor(f: &EngineFloor, ours_over_floor: &[(&str, &Latency, &Latency)]) {
    latency_table(
        "ENGINE FLOOR (plain qdrant-edge, same points)",
        &[
            ("upsert", &f.upsert),
            ("last-5 scroll", &f.last5),
            ("keyword query", &f.keyword),
        ],
    );
    for (name, ours, floor) in ours_over_floor {
        println!(
            "{name} over the floor: {:.2}x (p50 {:.3} / {:.3} ms)",
            ours.p50_ms / floor.p50_ms.max(1e-9),
            ours.p50_ms,
            floor.p50_ms
        );
    }
}

async fn sync(args: &BenchArgs, store: &BenchStore, out: Output) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bar = out.progress("sync runs");
    let report = run_sync_bench(dir.path(), args.messages, store, |phase, done, total| {
        bar.phase(phase, done, total)
    })
    .await?;
    out.emit(&report, |r: &SyncBenchReport| {
        println!("durability bench: appends per [store] sync setting, store {}", r.store);
        let rows: Vec<Vec<String>> = r
            .runs
            .iter()
            .map(|run| {
                vec![
                    run.sync.clone(),
                    run.writers.to_string(),
                    run.messages.to_string(),
                    format!("{:.3}", run.append.p50_ms),
                    format!("{:.3}", run.append.p99_ms),
                    format!("{:.1}", run.append.max_ms),
                    format!("{:.0}", run.messages_per_second),
                ]
            })
            .collect();
        println!(
            "{}",
            output::table(
                &["sync", "writers", "messages", "p50 ms", "p99 ms", "max ms", "msg/s"],
                rows
            )
        );
    })
}

/// The model folder for the search and estate workloads, if it holds a model.
fn bench_model(args: &BenchArgs, config: &StorageConfig) -> Option<std::path::PathBuf> {
    let model_dir = args
        .model_dir
        .clone()
        .unwrap_or_else(|| config.embedding.model_dir_or_default());
    if model_dir.join("model.safetensors").is_file() {
        Some(model_dir)
    } else {
        eprintln!(
            "no model in {}: the parts that need it are skipped (run scripts/fetch-test-model.sh)",
            model_dir.display()
        );
        None
    }
}

async fn estate(
    args: &BenchArgs,
    resources: usize,
    config: &StorageConfig,
    store: &BenchStore,
    out: Output,
) -> anyhow::Result<()> {
    anyhow::ensure!(resources >= 1000, "--resources must be at least 1000");
    let dir = tempfile::tempdir()?;
    let options = EstateBenchOptions {
        resources,
        samples: args.samples.clamp(1, 5_000),
        model_dir: bench_model(args, config),
        store: store.clone(),
        resyncs: args.resyncs,
    };
    let bar = out.progress("estate bench");
    let report = run_estate_bench(dir.path(), &options, |done, total| bar.update(done, total)).await?;
    out.emit(&report, print_estate_report)
}

async fn estate_dense(
    args: &BenchArgs,
    resources: usize,
    shape: DenseShape,
    config: &StorageConfig,
    store: &BenchStore,
    out: Output,
) -> anyhow::Result<()> {
    anyhow::ensure!(resources >= 1000, "--resources must be at least 1000");
    let dir = tempfile::tempdir()?;
    let options = DenseBenchOptions {
        resources,
        samples: args.samples.clamp(1, 5_000),
        shape,
        model_dir: bench_model(args, config),
        store: store.clone(),
    };
    let bar = out.progress("estate semantic bench");
    let report = run_dense_bench(dir.path(), &options, |phase, done, total| bar.phase(phase, done, total)).await?;
    out.emit(&report, print_dense_report)
}

fn print_dense_report(r: &DenseBenchReport) {
    println!(
        "estate semantic bench: {} resources, stand-in vectors {:?} (not the model's), store {}",
        r.resources, r.vectors, r.store
    );
    println!("bulk upsert with vectors      {:.0} resources/s", r.ingest_per_second);
    println!("indexing after the last write {:.1} s", r.index_tail_seconds);
    println!("CPU, ingest and indexing      {:.0} s", r.cpu_seconds);
    if let Some(recall) = r.recall_at_10 {
        println!("recall@10 against exact       {recall:.3}");
    }
    if let Some(bytes) = r.store_bytes {
        println!("store on disk                 {:.0} MiB", bytes as f64 / 1048576.0);
    }
    if let Some(bytes) = r.rss_bytes {
        println!("RSS after the searches        {:.0} MiB", bytes as f64 / 1048576.0);
    }
    let mut rows = vec![
        ("semantic top 10", &r.semantic),
        ("semantic + region filter", &r.semantic_region),
        ("hybrid top 10", &r.hybrid),
    ];
    if let (Some(exact), Some(indexed)) = (&r.exact_scan, &r.indexed_query) {
        rows.push(("store query, exact scan", exact));
        rows.push(("store query, indexed", indexed));
    }
    latency_table("OPERATION", &rows);
}

fn print_estate_report(r: &EstateBenchReport) {
    println!(
        "estate bench: {} resources (encryption on), store {}",
        r.resources, r.store
    );
    println!(
        "bulk upsert, keyword only     {:.0} resources/s",
        r.ingest_keyword_only_per_second
    );
    println!(
        "re-import, all unchanged      {:.0} resources/s",
        r.reimport_unchanged_per_second
    );
    if let Some(e) = r.ingest_with_embeddings_per_second {
        println!("bulk upsert, MiniLM vectors   {e:.0} resources/s");
    }
    let mut rows = vec![
        ("filtered search (limit 20)", &r.filtered_search),
        ("filtered search, no match", &r.filtered_search_no_match),
        ("keyword + filters (limit 20)", &r.keyword_search),
        ("count (two fields)", &r.count),
        ("facet by service", &r.facet),
    ];
    if let Some(s) = &r.semantic_search_10k {
        rows.push(("semantic, 10k resources", s));
    }
    latency_table("OPERATION", &rows);
    if let Some(bytes) = r.store_bytes {
        println!("store on disk after the fill  {:.0} MiB", bytes as f64 / 1048576.0);
    }
    for (n, round) in r.resyncs.iter().enumerate() {
        println!(
            "re-sync {:>2}, all changed      {:.0} resources/s, store {:.0} MiB (engine WAL {:.0} MiB)",
            n + 1,
            round.per_second,
            round.store_bytes as f64 / 1048576.0,
            round.engine_wal_bytes as f64 / 1048576.0
        );
    }
    if let Some(bytes) = r.store_bytes_after_reopen {
        println!("store on disk after reopening {:.0} MiB", bytes as f64 / 1048576.0);
    }
}

async fn import(args: &BenchArgs, config: &StorageConfig, store: &BenchStore, out: Output) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = ImportBenchOptions {
        messages: args.messages,
        messages_per_file: args.per_conversation.max(1),
        model_dir: if args.no_model { None } else { bench_model(args, config) },
        embed_window: std::time::Duration::from_secs(args.embed_seconds),
        store: store.clone(),
    };
    let bar = out.progress("importing files");
    let report = run_import_bench(dir.path(), &options, |done, total| bar.update(done, total)).await?;
    out.emit(&report, print_import_report)
}

fn print_import_report(r: &ImportBenchReport) {
    let mb = |v: Option<u64>| v.map_or("n/a".to_string(), output::bytes);
    println!(
        "import bench: {} messages in {} Node.js context files, model: {}",
        r.messages,
        r.files,
        r.model.as_deref().unwrap_or("none (keyword only)")
    );
    println!(
        "import                     {:.1} s, {:.0} messages/s, peak RSS {}",
        r.import_seconds,
        r.messages_per_second,
        mb(r.import_peak_rss_bytes)
    );
    println!("pending embeddings after   {}", r.pending_after_import);
    if let Some(rate) = r.embedded_per_second {
        println!(
            "background embedding       {} in {:.1} s ({rate:.0} messages/s), peak RSS {}",
            r.embedded_in_window,
            r.embed_window_seconds,
            mb(r.embed_peak_rss_bytes)
        );
    }
}

async fn search(args: &BenchArgs, config: &StorageConfig, store: &BenchStore, out: Output) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let model_dir = bench_model(args, config);
    let options = SearchBenchOptions {
        messages: args.messages,
        messages_per_conversation: args.per_conversation.max(1),
        conversations_per_user: (args.per_user / args.per_conversation.max(1)).max(1),
        samples: args.samples.clamp(1, 5_000),
        model_dir,
        store: store.clone(),
    };
    let bar = out.progress("search bench");
    let report = run_search_bench(dir.path(), &options, |phase, done, total| bar.phase(phase, done, total)).await?;
    out.emit(&report, print_search_report)
}

fn print_search_report(r: &SearchBenchReport) {
    println!(
        "search bench: {} messages of {} users ({} each), store {}; stored dense vectors synthetic: {}",
        r.messages,
        r.users,
        r.messages / r.users.max(1),
        r.store,
        r.synthetic_dense_vectors
    );
    if let Some(e) = &r.embedding {
        println!(
            "embedding ({}): {:.0} texts/s at batch 32; one query p50 {:.1} ms p99 {:.1} ms",
            e.model_id, e.texts_per_second_batch32, e.single_query.p50_ms, e.single_query.p99_ms
        );
    }
    println!(
        "fill {:.1} s (append p50 {:.3} ms, p99 {:.3} ms, indexer running); dense vectors complete after {:.1} s",
        r.fill_seconds, r.append.p50_ms, r.append.p99_ms, r.dense_index_seconds
    );
    let mut rows = vec![
        ("keyword", &r.keyword),
        ("semantic (no query embedding)", &r.semantic),
        ("hybrid (no query embedding)", &r.hybrid_without_embedding),
        ("prompt context, 5 pairs (no query embedding)", &r.prompt_context),
    ];
    if let Some(h) = &r.hybrid_with_embedding {
        rows.push(("hybrid + real query embedding", h));
    }
    latency_table("SEARCH (one user)", &rows);
    if let Some(f) = &r.floor {
        print_floor(f, &[("keyword search", &r.keyword, &f.keyword)]);
    }
}

/// A table of latency summaries, one row per operation.
fn latency_table(heading: &str, rows: &[(&str, &Latency)]) {
    let width = rows
        .iter()
        .map(|(n, _)| n.len())
        .chain([heading.len()])
        .max()
        .unwrap_or(0)
        + 2;
    println!(
        "{heading:<width$} {:>9} {:>9} {:>9} {:>9}",
        "p50 ms", "p99 ms", "mean ms", "max ms"
    );
    for (name, l) in rows {
        println!(
            "{name:<width$} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            l.p50_ms, l.p99_ms, l.mean_ms, l.max_ms
        );
    }
}
