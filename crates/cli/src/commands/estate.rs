//! `estate import|search|get|stats`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cloudops_storage_service::estate::import::{
    incomplete_listing, parse, sync_scope_of, ImportIssue, ImportOptions, ParsedFile, SourceFormat,
};
use cloudops_storage_service::estate::{AWSResource, ResourceFilter, ResourceHit, StatsBy, SyncReport, SyncScope};
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
    /// Read for `--sync`: the counts are those of its listing (`syncs`), not of the file.
    #[serde(skip)]
    in_sync: bool,
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
            let (reports, syncs) = if *sync {
                import_sync(service, files, &options, out).await?
            } else {
                let mut reports = Vec::new();
                for path in files {
                    reports.push(import_file(service, path, &options, out).await?);
                }
                (reports, Vec::new())
            };
            let failed = reports.iter().filter(|r| r.error.is_some()).count();
            out.emit(&json!({ "files": reports, "syncs": syncs }), |_| {
                for r in &reports {
                    print_file(r);
                }
                for s in &syncs {
                    print_sync(s);
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

/// A file read and parsed, or the report saying why it cannot be imported.
fn read_file(path: &Path, options: &ImportOptions) -> (FileReport, Option<ParsedFile>) {
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
        in_sync: false,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.error = Some(format!("unreadable: {e}"));
            return (report, None);
        }
    };
    match parse(&text, options) {
        Ok(parsed) => {
            report.format = Some(parsed.format);
            report.resources = parsed.resources.len();
            report.issues.clone_from(&parsed.issues);
            (report, Some(parsed))
        }
        Err(issue) => {
            report.error = Some(format!("{}: {}", issue.path, issue.reason));
            (report, None)
        }
    }
}

/// Import one file without sync: its good records are upserted, bad ones reported.
async fn import_file(
    service: &StorageService,
    path: &Path,
    options: &ImportOptions,
    out: Output,
) -> anyhow::Result<FileReport> {
    let (mut report, parsed) = read_file(path, options);
    let Some(parsed) = parsed else {
        return Ok(report);
    };
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

/// What one `--sync` listing did: the files (pages) it was read from, its scope and counts.
#[derive(Debug, Serialize)]
struct SyncOutcome {
    files: Vec<PathBuf>,
    scope: SyncScope,
    #[serde(flatten)]
    report: SyncReport,
}

/// `import --sync`: every file is read first, and if any is unreadable, of an unknown
/// format or holds a bad record, nothing changes at all (a listing with a missing or
/// broken page would tombstone live resources). Files of the same format, account and
/// region(s) are pages of one listing and are synced together.
async fn import_sync(
    service: &StorageService,
    files: &[PathBuf],
    options: &ImportOptions,
    out: Output,
) -> anyhow::Result<(Vec<FileReport>, Vec<SyncOutcome>)> {
    let mut reports = Vec::new();
    let mut parsed = Vec::new();
    for path in files {
        let (mut report, file) = read_file(path, options);
        report.in_sync = true;
        if let Some(f) = &file {
            if let Some(reason) = incomplete_listing(f.format) {
                report.error = Some(reason);
            } else if !f.issues.is_empty() {
                report.error = Some(format!("--sync: {} bad record(s)", report.issues.len()));
            }
        }
        reports.push(report);
        parsed.push(file);
    }
    if reports.iter().any(|r| r.error.is_some()) {
        for r in reports.iter_mut().filter(|r| r.error.is_none()) {
            r.error = Some("another file of this --sync cannot be used (see its line)".into());
        }
        return Ok((reports, Vec::new()));
    }
    // Pages of one listing share format, account(s) and region(s).
    let mut listings: BTreeMap<(String, BTreeSet<String>, BTreeSet<String>), Vec<usize>> = BTreeMap::new();
    for (i, file) in parsed.iter().enumerate() {
        let Some(file) = file else { continue };
        let key = (
            file.format.source_name().to_string(),
            file.resources.iter().map(|r| r.account_id.clone()).collect(),
            file.resources.iter().map(|r| r.region.clone()).collect(),
        );
        listings.entry(key).or_default().push(i);
    }
    let mut syncs = Vec::new();
    for pages in listings.values() {
        let files: Vec<&ParsedFile> = pages.iter().filter_map(|&i| parsed[i].as_ref()).collect();
        let scope = match sync_scope_of(&files, options) {
            Ok(scope) => scope,
            Err(reason) => {
                for &i in pages {
                    reports[i].error = Some(reason.clone());
                }
                continue;
            }
        };
        let resources: Vec<AWSResource> = pages
            .iter()
            .filter_map(|&i| parsed[i].take())
            .flat_map(|f| f.resources)
            .collect();
        let bar = out.progress("syncing resources");
        let report = service
            .estate
            .sync_with_progress(&scope, resources, &|p| bar.update(p.done as usize, p.total as usize))
            .await?;
        syncs.push(SyncOutcome {
            files: pages.iter().map(|&i| reports[i].path.clone()).collect(),
            scope,
            report,
        });
    }
    Ok((reports, syncs))
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

fn print_sync(s: &SyncOutcome) {
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
