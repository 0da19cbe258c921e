//! `bench`: the chat workload on a fresh store in a temporary folder.

use cloudops_storage_service::backup::S3Config;
use cloudops_storage_service::bench::{run_chat_bench, ChatBenchOptions, ChatBenchReport, Latency};

use crate::args::BenchArgs;
use crate::output::{self, Output};

pub(crate) async fn run(args: &BenchArgs, s3: Option<S3Config>, out: Output) -> anyhow::Result<()> {
    anyhow::ensure!(args.messages > 0, "--messages must be at least 1");
    let dir = tempfile::tempdir()?;
    let options = ChatBenchOptions {
        messages: args.messages,
        messages_per_conversation: args.per_conversation.max(1),
        read_samples: args.samples.max(1),
        // `[backup.s3]` from CLOUDOPS_BACKUP_S3_* (or --config) also times an upload.
        s3,
        ..ChatBenchOptions::default()
    };
    let progress = out.progress("appending");
    let report = run_chat_bench(dir.path(), &options, |done, total| progress.update(done, total)).await?;
    if args.keep {
        let kept = dir.keep();
        eprintln!("store kept in {}", kept.join("data").display());
    }
    out.emit(&report, print_report)
}

fn print_report(r: &ChatBenchReport) {
    println!(
        "chat bench: {} messages in {} conversations of {} users (encryption on)",
        r.messages, r.conversations, r.users
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9}",
        "OPERATION", "p50 ms", "p99 ms", "mean ms", "max ms"
    );
    let row = |name: &str, l: &Latency| {
        println!(
            "{name:<26} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            l.p50_ms, l.p99_ms, l.mean_ms, l.max_ms
        )
    };
    row("append", &r.append);
    row("last 5 messages", &r.last5);
    row("list conversations (20)", &r.list_conversations);
    row("last 5 after optimize", &r.last5_after_optimize);
    println!("append throughput          {:.0} msg/s", r.append_per_second);
    println!("optimize                   {:.1} ms", r.optimize_ms);
    println!("reopen                     {:.1} ms", r.reopen_ms);
    println!("store size on disk         {}", output::bytes(r.store_bytes));
    println!(
        "backup                     {:.0} ms (writers paused {:.0} ms), archive {}",
        r.backup_ms,
        r.backup_writer_pause_ms,
        output::bytes(r.backup_archive_bytes)
    );
    if let Some(upload) = r.upload_ms {
        println!("upload to S3               {upload:.0} ms");
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
        "RSS after reopen           {} (process peak {})",
        mb(r.rss_bytes),
        mb(r.peak_rss_bytes)
    );
}
