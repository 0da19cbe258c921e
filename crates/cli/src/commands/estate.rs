//! `estate import|search|get|stats`.

use std::path::PathBuf;

use cloudops_storage_service::estate::import::{parse, sync_scope, ImportIssue, ImportOptions, SourceFormat};
use cloudops_storage_service::estate::{AWSResource, ResourceFilter, ResourceHit, StatsBy};
use cloudops_storage_service::{StorageConfig, StorageService};
use serde::Serialize;
use serde_json::json;

use crate::args::EstateCommand;
use crate::output::Output;

/// Resources written per progress step.
const STEP: usize = 1000;

/// What happened to one file.
#[derive(Debug, Serialize)]
struct FileReport {
    path: PathBuf,
    format: Option<SourceFormat>,
    resources: usize,
    added: u64,
    updated: u64,
    unchanged: u64,
    tombstoned: u64,
    issues: Vec<ImportIssue>,
    /// Why the file changed nothing (unreadable, unknown format, or refused for --sync).
    error: Option<String>,
}

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
            };
            let mut reports = Vec::new();
            for path in files {
                reports.push(import_file(service, path, &options, *sync, out).await?);
            }
            let failed = reports.iter().filter(|r| r.error.is_some()).count();
            out.emit(&json!({ "files": reports }), |_| {
                for r in &reports {
                    print_file(r);
                }
            })?;
            anyhow::ensure!(
                failed == 0,
                "{failed} of {} file(s) changed nothing (see above)",
                reports.len()
            );
            Ok(())
        }
        EstateCommand::Search {
            query,
            limit,
            include_deleted,
        } => {
            let filter = ResourceFilter {
                include_deleted: *include_deleted,
                ..ResourceFilter::default()
            };
            let hits = estate.search(query, &filter, *limit).await?;
            out.emit(&hits, |h| print_hits(h))
        }
        EstateCommand::Get { key_or_arn } => {
            let r = estate.get_resource(key_or_arn).await?;
            out.emit(&r, print_resource)
        }
        EstateCommand::Stats { by } => {
            let all = ResourceFilter::default();
            let fields: Vec<(String, StatsBy)> = match by.as_deref() {
                None => vec![
                    ("service".into(), StatsBy::Service),
                    ("type".into(), StatsBy::ResourceType),
                    ("region".into(), StatsBy::Region),
                    ("account".into(), StatsBy::Account),
                    ("state".into(), StatsBy::State),
                ],
                Some(f) => vec![(f.to_string(), stats_by(f)?)],
            };
            let total = estate.count(&all).await?;
            let mut table = serde_json::Map::new();
            for (name, by) in &fields {
                let rows = estate.stats(by, &all).await?;
                table.insert(name.clone(), json!(rows.into_iter().collect::<Vec<_>>()));
            }
            out.emit(&json!({ "total": total, "by": table }), |_| {
                println!("{total} live resource(s)");
                for (name, rows) in &table {
                    println!("\n{name}:");
                    for row in rows.as_array().into_iter().flatten() {
                        println!("  {:<40} {:>8}", row[0].as_str().unwrap_or(""), row[1]);
                    }
                }
            })
        }
    }
}

fn stats_by(field: &str) -> anyhow::Result<StatsBy> {
    Ok(match field {
        "service" => StatsBy::Service,
        "type" | "resourcetype" | "resource_type" => StatsBy::ResourceType,
        "region" => StatsBy::Region,
        "account" | "account_id" => StatsBy::Account,
        "state" => StatsBy::State,
        other => match other.strip_prefix("tag:") {
            Some(key) if !key.is_empty() => StatsBy::Tag(key.to_string()),
            _ => anyhow::bail!("--by {other}: use service, type, region, account, state or tag:KEY"),
        },
    })
}

async fn import_file(
    service: &StorageService,
    path: &std::path::Path,
    options: &ImportOptions,
    sync: bool,
    out: Output,
) -> anyhow::Result<FileReport> {
    let mut report = FileReport {
        path: path.to_path_buf(),
        format: None,
        resources: 0,
        added: 0,
        updated: 0,
        unchanged: 0,
        tombstoned: 0,
        issues: Vec::new(),
        error: None,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.error = Some(format!("unreadable: {e}"));
            return Ok(report);
        }
    };
    let parsed = match parse(&text, options) {
        Ok(p) => p,
        Err(issue) => {
            report.error = Some(format!("{}: {}", issue.path, issue.reason));
            return Ok(report);
        }
    };
    report.format = Some(parsed.format);
    report.resources = parsed.resources.len();
    report.issues.clone_from(&parsed.issues);
    if sync {
        let scope = match sync_scope(&parsed, options) {
            Ok(scope) => scope,
            Err(reason) => {
                report.error = Some(reason);
                return Ok(report);
            }
        };
        if !parsed.issues.is_empty() {
            report.error = Some(format!(
                "--sync: {} bad record(s); nothing changed",
                parsed.issues.len()
            ));
            return Ok(report);
        }
        let r = service.estate.sync(&scope, parsed.resources).await?;
        (report.added, report.updated, report.unchanged, report.tombstoned) =
            (r.added, r.updated, r.unchanged, r.tombstoned);
        return Ok(report);
    }
    let bar = out.progress("importing resources");
    let total = parsed.resources.len();
    let mut done = 0;
    let mut resources: Vec<AWSResource> = parsed.resources;
    while !resources.is_empty() {
        let rest = resources.split_off(resources.len().min(STEP));
        let n = resources.len();
        let r = service
            .estate
            .bulk_upsert(std::mem::replace(&mut resources, rest))
            .await?;
        report.added += r.added;
        report.updated += r.updated;
        report.unchanged += r.unchanged;
        done += n;
        bar.update(done, total);
    }
    Ok(report)
}

fn print_file(r: &FileReport) {
    let format = r.format.map_or("unknown", |f| f.source_name());
    match &r.error {
        Some(e) => println!("{}: {format}: CHANGED NOTHING: {e}", r.path.display()),
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

fn print_hits(hits: &[ResourceHit]) {
    if hits.is_empty() {
        println!("no matching resources");
        return;
    }
    println!(
        "{:<18} {:<12} {:<14} {:<10} NAME / IDENTIFIER",
        "TYPE", "ACCOUNT", "REGION", "STATE"
    );
    for h in hits {
        let r = &h.resource;
        println!(
            "{:<18} {:<12} {:<14} {:<10} {}",
            r.resource_type,
            r.account_id,
            r.region,
            r.state.as_deref().unwrap_or("-"),
            r.name.as_deref().unwrap_or(&r.identifier)
        );
    }
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
