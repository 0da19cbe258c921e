//! `EstateStorage::import_files`: AWS CLI output files into the estate, with a report per
//! file. Without `sync`, each file's good records are upserted and bad ones reported. With
//! `sync`, every file is read first and nothing changes when any one is unusable (a listing
//! with a missing or broken page would tombstone live resources); files of the same format,
//! account(s) and region(s) are pages of one listing and are synced together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::import::{incomplete_listing, parse, sync_scope_of, ImportIssue, ImportOptions, ParsedFile, SourceFormat};
use super::model::AWSResource;
use super::storage::{EstateStorage, SyncReport, SyncScope};
use crate::blocking::run_blocking;
use crate::error::Result;
use crate::progress::{report, Phase, ProgressFn};

/// Resources written per store call (and per progress report) without `sync`.
const STEP: usize = 1000;

/// What happened to one file of [`EstateStorage::import_files`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct FileReport {
    /// The file as given.
    pub path: PathBuf,
    /// The AWS CLI command it is the output of; `None` when unreadable or unknown.
    pub format: Option<SourceFormat>,
    /// Good resources read from it.
    pub resources: usize,
    /// Resources added (without `sync`; a sync's counts are in its [`ListingSync`]).
    pub added: u64,
    /// Resources updated.
    pub updated: u64,
    /// Resources that were already stored as read.
    pub unchanged: u64,
    /// Always 0 for a file; tombstones belong to a [`ListingSync`].
    pub tombstoned: u64,
    /// Records skipped, with their JSON path and reason.
    pub issues: Vec<ImportIssue>,
    /// Why the file changed nothing (unreadable, unknown format, or refused for `sync`).
    pub error: Option<String>,
    /// Read for `sync`: the counts are those of its listing, not of the file.
    #[serde(skip)]
    pub in_sync: bool,
}

/// What one listing of a `sync` import did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct ListingSync {
    /// The files (pages) the listing was read from.
    pub files: Vec<PathBuf>,
    /// What the listing covers: resources in scope that it lacks were tombstoned.
    pub scope: SyncScope,
    /// Counts.
    #[serde(flatten)]
    pub report: SyncReport,
}

/// The result of [`EstateStorage::import_files`]. JSON: `{"files": [...], "syncs": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct ImportReport {
    /// One report per file, in the order given.
    pub files: Vec<FileReport>,
    /// One entry per listing synced (empty without `sync`).
    pub syncs: Vec<ListingSync>,
}

impl ImportReport {
    /// Files that changed nothing (see [`FileReport::error`]).
    pub fn failed(&self) -> usize {
        self.files.iter().filter(|f| f.error.is_some()).count()
    }
}

impl EstateStorage {
    /// Import AWS CLI output files (`ec2 describe-instances`, `rds describe-db-instances`, `s3api list-buckets`, `lambda list-functions`, `resourcegroupstaggingapi get-resources`, `resource-explorer-2 search`, or our JSON / JSON Lines; see [`SourceFormat`]). A file that cannot be
    /// used is reported, not an error; with `options.sync`, one unusable file refuses the
    /// whole import. Progress: [`Phase::ImportResources`] per file without sync,
    /// [`Phase::SyncResources`] per listing with it.
    ///
    /// # Errors
    /// Store, crypto and embedding errors while writing (files already written stay).
    pub async fn import_files(
        &self,
        paths: &[PathBuf],
        options: &ImportOptions,
        progress: ProgressFn<'_>,
    ) -> Result<ImportReport> {
        let mut read = Vec::with_capacity(paths.len());
        for path in paths {
            let (path, options) = (path.clone(), options.clone());
            read.push(run_blocking(move || Ok::<_, crate::StorageError>(read_file(&path, &options))).await?);
        }
        if options.sync {
            self.sync_files(read, options, progress).await
        } else {
            let mut files = Vec::with_capacity(read.len());
            for (file, parsed) in read {
                files.push(self.upsert_file(file, parsed, progress).await?);
            }
            Ok(ImportReport {
                files,
                syncs: Vec::new(),
            })
        }
    }

    /// One file without sync: its good records are upserted.
    async fn upsert_file(
        &self,
        mut file: FileReport,
        parsed: Option<ParsedFile>,
        progress: ProgressFn<'_>,
    ) -> Result<FileReport> {
        let Some(parsed) = parsed else {
            return Ok(file);
        };
        let total = parsed.resources.len() as u64;
        let mut done = 0;
        let mut resources: Vec<AWSResource> = parsed.resources;
        report(progress, Phase::ImportResources, 0, total);
        while !resources.is_empty() {
            let rest = resources.split_off(resources.len().min(STEP));
            let batch = std::mem::replace(&mut resources, rest);
            done += batch.len() as u64;
            let r = self.bulk_upsert(batch).await?;
            file.added += r.added;
            file.updated += r.updated;
            file.unchanged += r.unchanged;
            report(progress, Phase::ImportResources, done, total);
        }
        Ok(file)
    }

    async fn sync_files(
        &self,
        read: Vec<(FileReport, Option<ParsedFile>)>,
        options: &ImportOptions,
        progress: ProgressFn<'_>,
    ) -> Result<ImportReport> {
        let (mut files, mut parsed): (Vec<FileReport>, Vec<Option<ParsedFile>>) = read.into_iter().unzip();
        for (file, p) in files.iter_mut().zip(&parsed) {
            file.in_sync = true;
            if let Some(p) = p {
                if let Some(reason) = incomplete_listing(p.format) {
                    file.error = Some(reason);
                } else if !p.issues.is_empty() {
                    file.error = Some(format!("--sync: {} bad record(s)", p.issues.len()));
                }
            }
        }
        if files.iter().any(|f| f.error.is_some()) {
            for f in files.iter_mut().filter(|f| f.error.is_none()) {
                f.error = Some("another file of this --sync cannot be used (see its line)".into());
            }
            return Ok(ImportReport {
                files,
                syncs: Vec::new(),
            });
        }
        let mut syncs = Vec::new();
        for pages in &listings(&parsed) {
            let listing: Vec<&ParsedFile> = pages.iter().filter_map(|&i| parsed[i].as_ref()).collect();
            let scope = match sync_scope_of(&listing, options) {
                Ok(scope) => scope,
                Err(reason) => {
                    for &i in pages {
                        files[i].error = Some(reason.clone());
                    }
                    continue;
                }
            };
            let resources: Vec<AWSResource> = pages
                .iter()
                .filter_map(|&i| parsed[i].take())
                .flat_map(|f| f.resources)
                .collect();
            let report = self.sync_with_progress(&scope, resources, progress).await?;
            syncs.push(ListingSync {
                files: pages.iter().map(|&i| files[i].path.clone()).collect(),
                scope,
                report,
            });
        }
        Ok(ImportReport { files, syncs })
    }
}

/// Format, accounts and regions of a file: equal for the pages of one listing.
type ListingKey<'a> = (&'a str, BTreeSet<&'a str>, BTreeSet<&'a str>);

/// Indexes of the files of each listing: pages of one listing share format, account(s) and
/// region(s).
fn listings(parsed: &[Option<ParsedFile>]) -> Vec<Vec<usize>> {
    let mut listings: BTreeMap<ListingKey<'_>, Vec<usize>> = BTreeMap::new();
    for (i, file) in parsed.iter().enumerate() {
        let Some(file) = file else { continue };
        let key = (
            file.format.source_name(),
            file.resources.iter().map(|r| r.account_id.as_str()).collect(),
            file.resources.iter().map(|r| r.region.as_str()).collect(),
        );
        listings.entry(key).or_default().push(i);
    }
    listings.into_values().collect()
}

/// A file read and parsed, or the report saying why it cannot be imported.
/// Largest AWS CLI output file imported (about a million resources).
const MAX_IMPORT_FILE_BYTES: u64 = 1024 * 1024 * 1024;

fn read_file(path: &Path, options: &ImportOptions) -> (FileReport, Option<ParsedFile>) {
    let mut file = FileReport {
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
    let text = match crate::input_file::read_bounded(path, MAX_IMPORT_FILE_BYTES)
        .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string()))
    {
        Ok(t) => t,
        Err(reason) => {
            file.error = Some(reason);
            return (file, None);
        }
    };
    match parse(&text, options) {
        Ok(parsed) => {
            file.format = Some(parsed.format);
            file.resources = parsed.resources.len();
            file.issues.clone_from(&parsed.issues);
            (file, Some(parsed))
        }
        Err(issue) => {
            file.error = Some(format!("{}: {}", issue.path, issue.reason));
            (file, None)
        }
    }
}
