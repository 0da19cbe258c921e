//! `backup now|list|verify|restore|prune`.

use std::path::Path;

use anyhow::Context as _;
use cloudops_storage_service::{ErrorKind, Manifest, RecoveryKey, RestoreOptions, RestoreTarget};
use cloudops_storage_service::{StorageConfig, StorageError, StorageService};

use crate::args::BackupCommand;
use crate::output::{self, Output};

pub(crate) async fn run(cmd: &BackupCommand, config: StorageConfig, out: Output) -> anyhow::Result<()> {
    if let BackupCommand::Restore {
        at,
        name,
        from_s3,
        recovery_key_file,
        recovery_key,
        store_id,
        no_journal,
        accept_gap,
        ..
    } = cmd
    {
        // Restore works on a closed store: it takes the data-dir lock itself.
        let target = match (at, name) {
            (Some(at), _) => RestoreTarget::At(parse_time(at)?),
            (_, Some(name)) => RestoreTarget::Named(name.clone()),
            _ => RestoreTarget::Latest,
        };
        let recovery_key = match (recovery_key_file, recovery_key) {
            (Some(file), _) => Some(read_recovery_key_file(file)?),
            (None, Some(_)) => Some(read_recovery_key_stdin()?),
            (None, None) => None,
        };
        let options = RestoreOptions {
            target,
            from_s3: *from_s3,
            recovery_key,
            store_id: store_id.as_deref().map(parse_store_id).transpose()?,
            skip_journal: *no_journal,
            accept_gap: *accept_gap,
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
            if let Some(journal) = &r.journal {
                match journal.last_record_ms {
                    Some(at) => println!(
                        "replayed {} write(s) shipped after it, up to {}",
                        journal.records,
                        output::time(at)
                    ),
                    None => println!("no write was shipped after it"),
                }
                if let Some(missing) = journal.missing_seq {
                    println!("the bucket misses shipped write {missing}: later writes could not be replayed");
                }
            }
            for warning in &r.warnings {
                println!("WARNING (accepted with --accept-gap): {warning}");
            }
            if let Some(previous) = &r.previous_data {
                println!(
                    "the replaced data is kept in {} until the next backup",
                    previous.display()
                );
            }
            if let Some(keys) = &r.keys {
                println!(
                    "store {} now opens with this machine's key source: {} ({})",
                    keys.store_id, keys.key_source, keys.key_location
                );
                if keys.recovery_kit_created_at_ms.is_some() {
                    println!("the recovery kit you used keeps working for this store");
                }
            }
        });
    }
    if let BackupCommand::List { remote: true, store_id } = cmd {
        // On a new machine there is no store yet: list the bucket without one.
        let store_id = store_id.as_deref().map(parse_store_id).transpose()?;
        match StorageService::open(config.clone()).await {
            Ok(service) => {
                let all = service.backup.list_remote().await;
                service.shutdown().await?;
                return out.emit(&all?, |all| print_list(all, "s3"));
            }
            Err(e) if e.kind() == ErrorKind::NotInitialized => {
                let all = StorageService::list_remote_backups(&config, store_id).await?;
                return out.emit(&all, |all| {
                    print_list(all, "s3");
                    for id in all
                        .iter()
                        .map(|m| m.store_id)
                        .collect::<std::collections::BTreeSet<_>>()
                    {
                        println!("store {id}");
                    }
                    println!(
                        "(no store here: listed as the bucket holds them; a restore authenticates the backup it opens)"
                    );
                });
            }
            Err(e) => return Err(e.into()),
        }
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
            let done = service.backup.backup_now_reporting(*upload, &|p| bar.report(p)).await;
            drop(bar);
            let (m, sent) = done?;
            let shown = BackupNow {
                backup: &m,
                upload: sent.as_ref(),
            };
            out.emit(&shown, |shown| {
                let m = shown.backup;
                println!(
                    "backup {}: {} points, {} archive ({} data), writers paused {:.0} ms",
                    m.name,
                    m.points(),
                    output::bytes(m.archive_bytes),
                    output::bytes(m.data_bytes),
                    m.writer_pause_ms
                );
                println!("in {}", service.backup.dir().display());
                if let (Some(sent), Some(remote)) = (shown.upload, service.backup.remote()) {
                    println!(
                        "uploaded to {remote}: {} of {} chunks new, {} sent",
                        sent.new_chunks,
                        sent.chunks,
                        output::bytes(sent.uploaded_bytes)
                    );
                }
            })
        }
        BackupCommand::Ship => {
            let report = service.backup.ship_journal().await?;
            out.emit(&report, |r| match (&r.generation, r.last_record_ms) {
                (None, _) => {
                    println!("this store does not ship its journal (needs [backup.s3] and the embedded store)")
                }
                (Some(_), None) => println!("nothing to ship: every write is in the bucket"),
                (Some(_), Some(last)) => println!(
                    "shipped {} write(s) in {} object(s), {}; the last written {}",
                    r.records,
                    r.objects,
                    output::bytes(r.bytes),
                    output::time(last)
                ),
            })
        }
        BackupCommand::List { .. } => {
            let all = service.backup.list()?;
            out.emit(&all, |all| print_list(all, "local"))
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
        BackupCommand::Verify { name, remote } => {
            let m = if *remote {
                service.backup.verify_remote(name.as_deref()).await?
            } else {
                service.backup.verify(name.as_deref()).await?
            };
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
                match &r.swept {
                    Some(s) if s.skipped_for_lock => println!("remote chunks: not swept (an upload is running)"),
                    Some(s) => println!(
                        "remote chunks: deleted {} ({}) no backup needs, kept {}",
                        s.deleted_chunks,
                        crate::output::bytes(s.deleted_bytes),
                        s.kept_chunks
                    ),
                    None => {}
                }
                if let Some(j) = &r.swept_journal {
                    println!(
                        "shipped journal: deleted {} object(s) ({}) no backup needs, kept {}",
                        j.deleted_objects,
                        crate::output::bytes(j.deleted_bytes),
                        j.kept_objects
                    );
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

fn parse_store_id(text: &str) -> anyhow::Result<uuid::Uuid> {
    uuid::Uuid::parse_str(text).with_context(|| format!("--store-id {text:?} is not a store id (a UUID)"))
}

/// The recovery key from a kit file (or a file holding just the key).
fn read_recovery_key_file(path: &Path) -> anyhow::Result<RecoveryKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the recovery kit {}", path.display()))?;
    Ok(RecoveryKey::parse(&text).map_err(StorageError::from)?)
}

/// The recovery key typed or piped on stdin (one line, or a whole kit).
fn read_recovery_key_stdin() -> anyhow::Result<RecoveryKey> {
    use std::io::{IsTerminal as _, Read as _};
    if std::io::stdin().is_terminal() {
        eprintln!("recovery key: ");
    }
    let mut text = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .context("cannot read the recovery key from stdin")?;
    Ok(RecoveryKey::parse(&text).map_err(StorageError::from)?)
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

/// `backup now --json`: the backup's manifest, and what the upload sent (with `--upload`).
#[derive(serde::Serialize)]
struct BackupNow<'a> {
    #[serde(flatten)]
    backup: &'a cloudops_storage_service::Manifest,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload: Option<&'a cloudops_storage_service::UploadReport>,
}
