//! `backup now|list|verify|restore|prune`.

use cloudops_storage_service::{Manifest, RestoreOptions, RestoreTarget};
use cloudops_storage_service::{StorageConfig, StorageService};

use crate::args::BackupCommand;
use crate::output::{self, Output};

pub(crate) async fn run(cmd: &BackupCommand, config: StorageConfig, out: Output) -> anyhow::Result<()> {
    if let BackupCommand::Restore { at, name, from_s3, .. } = cmd {
        // Restore works on a closed store: it takes the data-dir lock itself.
        let target = match (at, name) {
            (Some(at), _) => RestoreTarget::At(parse_time(at)?),
            (_, Some(name)) => RestoreTarget::Named(name.clone()),
            _ => RestoreTarget::Latest,
        };
        let options = RestoreOptions {
            target,
            from_s3: *from_s3,
        };
        let bar = out.progress("restoring");
        let report = StorageService::restore_backup(&config, &options, &|p| bar.report(p)).await;
        drop(bar);
        let report = report?;
        return out.emit(&report, |r| {
            println!(
                "restored {} ({} points) in {:.0} ms",
                r.backup.name,
                r.backup.points(),
                r.elapsed_ms
            );
            if let Some(previous) = &r.previous_data {
                println!(
                    "the replaced data is kept in {} until the next backup",
                    previous.display()
                );
            }
        });
    }
    let service = StorageService::open(config).await?;
    let result = execute(cmd, &service, out).await;
    service.shutdown().await?;
    result
}

async fn execute(cmd: &BackupCommand, service: &StorageService, out: Output) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::Now { upload } => {
            let bar = out.progress("backing up");
            let m = service.backup.backup_now(*upload, &|p| bar.report(p)).await;
            drop(bar);
            let m = m?;
            out.emit(&m, |m| {
                println!(
                    "backup {}: {} points, {} archive ({} data), writers paused {:.0} ms",
                    m.name,
                    m.points(),
                    output::bytes(m.archive_bytes),
                    output::bytes(m.data_bytes),
                    m.writer_pause_ms
                );
                println!("in {}", service.backup.dir().display());
                if let (true, Some(remote)) = (*upload, service.backup.remote()) {
                    println!("uploaded to {remote}");
                }
            })
        }
        BackupCommand::List { remote } => {
            let (all, place) = if *remote {
                (service.backup.list_remote().await?, "s3")
            } else {
                (service.backup.list()?, "local")
            };
            out.emit(&all, |all| print_list(all, place))
        }
        BackupCommand::Daemon => {
            let interval = service.config().backup.interval();
            service.start_auto_backup().await;
            eprintln!(
                "backing up every {} min{}; Ctrl-C to stop",
                interval.as_secs() / 60,
                service
                    .backup
                    .remote()
                    .map(|r| format!(", uploading to {r}"))
                    .unwrap_or_default()
            );
            tokio::signal::ctrl_c().await?;
            service.stop_auto_backup().await;
            let status = service.backup.status();
            out.emit(&status, |s| {
                println!("stopped; last backup: {}", s.last_backup.as_deref().unwrap_or("none"));
            })
        }
        BackupCommand::Verify { name } => {
            let m = service.backup.verify(name.as_deref()).await?;
            out.emit(&m, |m| {
                println!("backup {} is restorable ({} points)", m.name, m.points())
            })
        }
        BackupCommand::Prune { dry_run } => {
            let report = service.backup.prune(*dry_run).await?;
            out.emit(&report, |r| {
                let verb = if r.dry_run { "would delete" } else { "deleted" };
                println!("{verb} {} local backup(s), kept {}", r.removed.len(), r.kept.len());
                for name in &r.removed {
                    println!("  {name}");
                }
                if !r.removed_remote.is_empty() {
                    println!("{verb} {} remote backup(s)", r.removed_remote.len());
                }
            })
        }
        BackupCommand::Restore { .. } => unreachable!("handled before the store is opened"),
    }
}

fn print_list(all: &[Manifest], place: &str) {
    if all.is_empty() {
        println!("(no {place} backups)");
        return;
    }
    let rows = all.iter().map(|m| {
        vec![
            m.name.clone(),
            output::time(m.created_at_ms),
            output::bytes(m.archive_bytes),
            m.points().to_string(),
            place.to_string(),
            m.verified_at_ms.map_or("never".to_string(), output::time),
        ]
    });
    println!(
        "{}",
        output::table(&["NAME", "CREATED", "SIZE", "POINTS", "WHERE", "LAST VERIFIED"], rows)
    );
}

/// Unix milliseconds, or `YYYY-MM-DDTHH:MM:SS[Z]` (UTC).
fn parse_time(text: &str) -> anyhow::Result<i64> {
    output::parse_time(text)
        .ok_or_else(|| anyhow::anyhow!("--at {text:?}: expected unix milliseconds or YYYY-MM-DDTHH:MM:SSZ (UTC)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2023-13-01T00:00:00Z").is_err());
    }
}
