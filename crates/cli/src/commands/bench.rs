//! `bench`: the chat workload on a fresh store in a temporary folder.

use cloudops_storage_service::bench::{run_chat_bench, ChatBenchOptions, ChatBenchReport, Latency};

use crate::args::BenchArgs;
use crate::output::{self, Output};

pub(crate) async fn run(args: &BenchArgs, out: Output) -> anyhow::Result<()> {
    anyhow::ensure!(args.messages > 0, "--messages must be at least 1");
    let dir = tempfile::tempdir()?;
    let options = ChatBenchOptions {
        messages: args.messages,
        messages_per_conversation: args.per_conversation.max(1),
        read_samples: args.samples.max(1),
        ..ChatBenchOptions::default()
    };
    let progress = out.progress("appending");
    let report = run_chat_bench(dir.path(), &options, |done, total| {
        progress.update(done, total)
    })
    .await?;
    out.emit(&report, print_report)
}

fn print_report(r: &ChatBenchReport) {
    println!(
        "chat bench: {} messages in {} conversations of {} users (encryption on)",
        r.messages, r.conversations, r.users
    );
    println!(
        "{:<26} {:>10} {:>10} {:>10}",
        "OPERATION", "p50 ms", "p99 ms", "mean ms"
    );
    let row = |name: &str, l: &Latency| {
        println!(
            "{name:<26} {:>10.3} {:>10.3} {:>10.3}",
            l.p50_ms, l.p99_ms, l.mean_ms
        )
    };
    row("append", &r.append);
    row("last 5 messages", &r.last5);
    row("list conversations (20)", &r.list_conversations);
    println!(
        "append throughput          {:.0} msg/s",
        r.append_per_second
    );
    println!("reopen                     {:.1} ms", r.reopen_ms);
    println!(
        "store size on disk         {}",
        output::bytes(r.store_bytes)
    );
    if let (Some(rss), Some(peak)) = (r.rss_bytes, r.peak_rss_bytes) {
        println!(
            "process RSS                {} (peak {})",
            output::bytes(rss),
            output::bytes(peak)
        );
    }
}
