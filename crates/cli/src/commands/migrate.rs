//! `migrate node` and `reindex`: bulk work with progress bars.

use std::path::Path;

use cloudops_storage_service::{
    ConfigKey, NodeImportReport, StorageConfig, StorageService, StoreConfig, CONFIG_FILE_NAME,
};

use crate::args::MigrateCommand;
use crate::output::Output;

pub(crate) async fn run(
    cmd: &MigrateCommand,
    config: StorageConfig,
    config_file: Option<&Path>,
    out: Output,
) -> anyhow::Result<()> {
    let (chat_data_dir, user, wait) = match cmd {
        MigrateCommand::Node {
            chat_data_dir,
            user,
            wait,
        } => (chat_data_dir, user, wait),
        MigrateCommand::Store {
            to,
            to_url,
            to_prefix,
            to_replication_factor,
        } => {
            let mut target = config.clone();
            target.set(ConfigKey::StoreMode, to)?;
            if let Some(url) = to_url {
                target.set(ConfigKey::StoreUrl, url)?;
            }
            if let Some(prefix) = to_prefix {
                target.set(ConfigKey::StoreCollectionPrefix, prefix)?;
            }
            if let Some(n) = to_replication_factor {
                target.set(ConfigKey::StoreReplicationFactor, &n.to_string())?;
            }
            let file = config_file.map_or_else(|| config.data_dir.join(CONFIG_FILE_NAME), Path::to_path_buf);
            return migrate_store(&config, target.store, &file, out).await;
        }
    };
    let service = StorageService::open(config).await?;
    let result = async {
        let files = out.progress("importing files");
        let report = service
            .chat
            .import_node_dir(chat_data_dir, user.as_deref(), &|p| files.report(p))
            .await?;
        let pending = service.chat.pending_embeddings().await?;
        if pending > 0 && *wait {
            let bar = out.progress("embedding messages");
            let waiting = service.chat.wait_for_index();
            tokio::pin!(waiting);
            loop {
                tokio::select! {
                    done = &mut waiting => { done?; break; }
                    () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {
                        let left = service.chat.pending_embeddings().await.unwrap_or(0);
                        bar.update((pending.saturating_sub(left)) as usize, pending as usize);
                    }
                }
            }
            bar.update(pending as usize, pending as usize);
        }
        let pending = service.chat.pending_embeddings().await?;
        anyhow::Ok(MigrateReport { report, pending })
    }
    .await;
    service.shutdown().await?;
    let report = result?;
    out.emit(&report, |m| {
        let r = &m.report;
        println!(
            "imported {} conversation(s) with {} message(s); skipped {} already present; {} failed; {} raw stream file(s) ignored",
            r.imported,
            r.messages,
            r.skipped,
            r.failed.len(),
            r.ignored
        );
        for f in &r.failed {
            println!("  failed: {}: {}", f.path.display(), f.reason);
        }
        if m.pending > 0 {
            println!(
                "{} message(s) wait for semantic indexing: keyword search finds them now; they are embedded in \
                 the background whenever the store is open with a model (or now: migrate node --wait, or reindex)",
                m.pending
            );
        }
    })?;
    Ok(())
}

/// What `migrate node` prints: the import report and the messages still to embed.
#[derive(serde::Serialize)]
struct MigrateReport {
    #[serde(flatten)]
    report: NodeImportReport,
    /// Messages without a dense vector when the command ended.
    pending: u64,
}

pub(crate) async fn reindex(config: StorageConfig, out: Output) -> anyhow::Result<()> {
    let service = StorageService::open_for_reindex(config).await?;
    let bar = out.progress("re-embedding messages, then resources");
    let result = service
        .reindex(&|p| bar.update(p.done as usize, p.total as usize))
        .await;
    service.shutdown().await?;
    let report = result?;
    out.emit(&report, |r| {
        let previous = r.previous.as_ref().map_or("none", |p| p.model_id.as_str());
        println!(
            "re-embedded {} message(s) and {} resource(s): {} -> {} ({}-d)",
            r.embedded, r.resources_embedded, previous, r.current.model_id, r.current.dim
        );
    })?;
    Ok(())
}

async fn migrate_store(config: &StorageConfig, to: StoreConfig, file: &Path, out: Output) -> anyhow::Result<()> {
    let bar = out.progress("copying points");
    let report =
        StorageService::migrate_store(config, to, file, &|p| bar.update(p.done as usize, p.total as usize)).await?;
    out.emit(&report, |r| {
        println!(
            "{} -> {}: {} collection(s), {} point(s) copied{}; counts equal on both sides, {} message(s) unsealed and compared",
            r.from,
            r.to,
            r.collections.len(),
            r.copied,
            if r.resumed { " (resumed)" } else { "" },
            r.sampled
        );
        for c in &r.collections {
            println!("  {:<24} {:>10} points", c.name, c.points);
        }
        println!(
            "{} now names the new store ([store]); the old one was left as it was",
            r.config_file.display()
        );
    })?;
    Ok(())
}
