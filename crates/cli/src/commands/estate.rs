//! `estate import|search|get|stats`.

use cloudops_storage_service::ImportOptions;
use cloudops_storage_service::{AWSResource, FileReport, ListingSync, ResourceFilter, ResourceHit, StatsBy};
use cloudops_storage_service::{StorageConfig, StorageService};
use serde_json::json;

use crate::args::EstateCommand;
use crate::output::{self, Output};

pub(crate) async fn run(cmd: &EstateCommand, config: StorageConfig, out: Output) -> anyhow::Result<()> {
    let service = StorageService::open(config).await?;
    let result = execute(cmd, &service, out).await;
    service.shutdown().await?;
    result
}

async fn execute(cmd: &EstateCommand, service: &StorageService, out: Output) -> anyhow::Result<()> {
    let estate = &service.estate;
    match cmd {
        EstateCommand::Import {
            files,
            account_id,
            account_name,
            region,
            sync,
        } => {
            let options = ImportOptions {
                account_id: account_id.clone(),
                account_name: account_name.clone(),
                region: region.clone(),
                sync: *sync,
            };
            let bar = out.progress(if *sync {
                "syncing resources"
            } else {
                "importing resources"
            });
            let report = estate.import_files(files, &options, &|p| bar.report(p)).await?;
            drop(bar);
            out.emit(&report, |r| {
                for f in &r.files {
                    print_file(f);
                }
                for s in &r.syncs {
                    print_sync(s);
                }
            })?;
            let failed = report.failed();
            anyhow::ensure!(
                failed == 0,
                "{failed} of {} file(s) changed nothing (see above)",
                report.files.len()
            );
            Ok(())
        }
        EstateCommand::Search {
            query,
            mode,
            limit,
            include_deleted,
        } => {
            let filter = ResourceFilter {
                include_deleted: *include_deleted,
                ..ResourceFilter::default()
            };
            let mode = mode.parse().map_err(anyhow::Error::msg)?;
            let hits = estate.search_in_mode(query, &filter, *limit, mode).await?;
            out.emit(&hits, |h| print_hits(h))
        }
        EstateCommand::Get { key_or_arn } => {
            let r = estate.get_resource(key_or_arn).await?;
            out.emit(&r, print_resource)
        }
        EstateCommand::Stats { by } => {
            let all = ResourceFilter::default();
            let fields: Vec<StatsBy> = match by.as_deref() {
                None => StatsBy::OVERVIEW.to_vec(),
                Some(f) => vec![f.parse().map_err(|e| anyhow::anyhow!("--by {e}"))?],
            };
            let total = estate.count(&all).await?;
            let mut table = serde_json::Map::new();
            for by in &fields {
                let rows = estate.stats(by, &all).await?;
                table.insert(by.name(), json!(rows.into_iter().collect::<Vec<_>>()));
            }
            out.emit(&json!({ "total": total, "by": table }), |_| {
                println!("{total} live resource(s)");
                for (name, rows) in &table {
                    let rows = rows
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|row| vec![row[0].as_str().unwrap_or("").to_string(), row[1].to_string()]);
                    println!("\n{}", output::table(&[name.as_str(), "COUNT"], rows));
                }
            })
        }
    }
}

fn print_file(r: &FileReport) {
    let format = r.format.map_or("unknown", |f| f.source_name());
    match &r.error {
        Some(e) => println!("{}: {format}: CHANGED NOTHING: {e}", r.path.display()),
        None if r.in_sync => println!("{}: {format}: {} resource(s) read", r.path.display(), r.resources),
        None => println!(
            "{}: {format}: {} resource(s): {} added, {} updated, {} unchanged, {} tombstoned",
            r.path.display(),
            r.resources,
            r.added,
            r.updated,
            r.unchanged,
            r.tombstoned
        ),
    }
    for issue in &r.issues {
        println!("  skipped {}: {}: {}", r.path.display(), issue.path, issue.reason);
    }
}

fn print_sync(s: &ListingSync) {
    let regions = s
        .scope
        .regions
        .as_ref()
        .map_or("all regions".to_string(), |r| r.join(","));
    let types = s
        .scope
        .resource_types
        .as_ref()
        .map_or("all types".to_string(), |t| t.join(","));
    println!(
        "sync of {types} in {} / {regions} ({} file(s)): {} added, {} updated, {} unchanged, {} tombstoned",
        s.scope.account_id,
        s.files.len(),
        s.report.added,
        s.report.updated,
        s.report.unchanged,
        s.report.tombstoned
    );
}

fn print_hits(hits: &[ResourceHit]) {
    if hits.is_empty() {
        println!("no matching resources");
        return;
    }
    let rows = hits.iter().map(|h| {
        let r = &h.resource;
        vec![
            r.resource_type.clone(),
            r.account_id.clone(),
            r.region.clone(),
            r.state.clone().unwrap_or_else(|| "-".into()),
            r.name.clone().unwrap_or_else(|| r.identifier.clone()),
        ]
    });
    println!(
        "{}",
        output::table(&["TYPE", "ACCOUNT", "REGION", "STATE", "NAME / IDENTIFIER"], rows)
    );
}

fn print_resource(r: &AWSResource) {
    println!("{} {}", r.resource_type, r.identifier);
    println!("  arn        {}", r.arn.as_deref().unwrap_or("-"));
    println!("  name       {}", r.name.as_deref().unwrap_or("-"));
    println!(
        "  account    {} {}",
        r.account_id,
        r.account_name.as_deref().unwrap_or("")
    );
    println!("  region     {}", r.region);
    println!("  state      {}", r.state.as_deref().unwrap_or("-"));
    if let Some(tags) = &r.tags {
        let list: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("  tags       {}", list.join(", "));
    }
    match &r.iam {
        Some(iam) => {
            println!("  allowed    {}", iam.allowed_actions.join(", "));
            println!("  denied     {}", iam.denied_actions.join(", "));
            if let Some(user) = &iam.user_context.username {
                println!("  as user    {user}");
            }
        }
        None => println!("  iam        (unknown)"),
    }
    if let Some(c) = &r.constraints {
        println!("  constraints {}", serde_json::to_string(c).unwrap_or_default());
    }
    println!("  sources    {}", r.sources.join(", "));
}
