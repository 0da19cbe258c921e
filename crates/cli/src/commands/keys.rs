//! `keys status`, `keys rotate`, `keys recovery-kit` and `keys rekey`.

use std::path::Path;

use anyhow::Context as _;
use cloudops_storage_service::{ConfigKey, DataKeyEpoch, RecoveryKit, StorageConfig, StorageService};

use crate::args::KeysCommand;
use crate::output::{self, Output};

pub(crate) async fn run(cmd: &KeysCommand, config: StorageConfig, out: Output) -> anyhow::Result<()> {
    let mut target = config.clone();
    let service = StorageService::open(config).await?;
    if let KeysCommand::RecoveryKit { out: path } = cmd {
        // The file first: a kit that cannot be handed over must not replace the current one.
        let file = match path.as_deref().map(create_private_file).transpose() {
            Ok(file) => file,
            Err(e) => {
                service.shutdown().await?;
                return Err(e);
            }
        };
        let kit = service.issue_recovery_kit().await;
        service.shutdown().await?;
        let kit = match kit {
            Ok(kit) => kit,
            Err(e) => {
                if let Some(path) = path {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e.into());
            }
        };
        return match (file, path) {
            (Some(file), Some(path)) => write_kit(&kit, file, path, out),
            _ => print_kit(&kit, out),
        };
    }
    if let KeysCommand::Rekey = cmd {
        let bar = out.progress("sealing records again under the active key");
        let result = service.rekey(&|p| bar.update(p.done as usize, p.total as usize)).await;
        service.shutdown().await?;
        let report = result?;
        return out.emit(&report, |r| {
            println!(
                "sealed again under data key {}: {} of {} message(s), {} of {} conversation(s), {} of {} resource(s) (the rest were current)",
                r.active_key_id,
                r.messages.resealed,
                r.messages.scanned,
                r.conversations.resealed,
                r.conversations.scanned,
                r.resources.resealed,
                r.resources.scanned
            );
        });
    }
    let result = match cmd {
        KeysCommand::Status => Ok(service.key_status()),
        KeysCommand::Rotate {
            to,
            to_key_file,
            new_epoch,
        } => {
            if let Some(to) = to {
                target.set(ConfigKey::KeySource, to)?;
            } else {
                target.keys.source = service.key_status().key_source;
            }
            if let Some(file) = to_key_file {
                target.set(ConfigKey::KeyFile, &file.display().to_string())?;
            }
            let epoch = if *new_epoch {
                DataKeyEpoch::New
            } else {
                DataKeyEpoch::Keep
            };
            service.rotate_kek(target.keys, epoch).await
        }
        KeysCommand::RecoveryKit { .. } | KeysCommand::Rekey => unreachable!("handled above"),
    };
    service.shutdown().await?;
    let status = result?;
    out.emit(&status, |s| {
        println!("store id       {}", s.store_id);
        println!("key source     {} ({})", s.key_source, s.key_location);
        println!("active key id  {}", s.active_key_id);
        println!("data keys      {}", s.data_keys);
        println!("created        {}", output::time(s.created_at_ms));
        match s.kek_rotated_at_ms {
            Some(t) => println!("KEK rotated    {}", output::time(t)),
            None => println!("KEK rotated    never"),
        }
        println!("recovery kit   {}", recovery_line(s.recovery_kit_created_at_ms));
    })
}

/// The recovery-kit line of `keys status` and `status`.
pub(crate) fn recovery_line(created_at_ms: Option<i64>) -> String {
    match created_at_ms {
        Some(t) => format!("issued {}", output::time(t)),
        None => "NONE: backups cannot be restored on another machine (run `cloudops-storage keys recovery-kit`)".into(),
    }
}

/// Hand a new kit to its owner on stdout (JSON with --json).
pub(crate) fn print_kit(kit: &RecoveryKit, out: Output) -> anyhow::Result<()> {
    out.emit(kit, |kit| {
        println!("{}", kit.document());
        println!("This is shown once. Write it down or save it now: it is not stored anywhere.");
    })
}

/// Write a new kit into `file` (created by [`create_private_file`]).
fn write_kit(kit: &RecoveryKit, mut file: std::fs::File, path: &Path, out: Output) -> anyhow::Result<()> {
    use std::io::Write as _;
    file.write_all(kit.document().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| {
            format!(
                "cannot write the recovery kit to {} (a new kit was issued: run `keys recovery-kit` again)",
                path.display()
            )
        })?;
    let written = serde_json::json!({
        "store_id": kit.store_id,
        "created_at_ms": kit.created_at_ms,
        "file": path,
    });
    out.emit(&written, |_| {
        println!("recovery kit for store {} written to {}", kit.store_id, path.display());
        println!("move it off this machine (print it, or keep it in a password manager), then delete the file");
    })
}

/// A new file readable by its owner only; an existing file is never replaced.
fn create_private_file(path: &Path) -> anyhow::Result<std::fs::File> {
    cloudops_storage_service::platform::private_file_new(path)
        .with_context(|| format!("cannot create the recovery kit file {}", path.display()))
}
