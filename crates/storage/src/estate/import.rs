//! Readers of real AWS CLI JSON output, auto-detected by shape:
//! `resourcegroupstaggingapi get-resources`, `resource-explorer-2 search` / `list-resources`,
//! `ec2 describe-instances`, `rds describe-db-instances`, `s3api list-buckets`,
//! `lambda list-functions`, and our own JSON array / JSON Lines of [`AWSResource`].
//!
//! Account, region, service and type come from ARNs where present; ARNs the readers build
//! (EC2 instances) equal the ones other sources print. Bad records are reported with their
//! JSON path and skipped; an unknown shape is an error for the whole file.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::arn::Arn;
use super::model::{AWSResource, GLOBAL_REGION};
use super::storage::SyncScope;

/// The AWS CLI command (or our format) a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// `aws resourcegroupstaggingapi get-resources`
    TaggingGetResources,
    /// `aws resource-explorer-2 search` or `list-resources`
    ResourceExplorer,
    /// `aws ec2 describe-instances`
    Ec2DescribeInstances,
    /// `aws rds describe-db-instances`
    RdsDescribeDbInstances,
    /// `aws s3api list-buckets`
    S3ListBuckets,
    /// `aws lambda list-functions`
    LambdaListFunctions,
    /// Our own JSON array or JSON Lines of resources.
    Native,
}

impl SourceFormat {
    /// The name recorded in `sources`.
    pub fn source_name(self) -> &'static str {
        match self {
            SourceFormat::TaggingGetResources => "tagging:get-resources",
            SourceFormat::ResourceExplorer => "resource-explorer-2",
            SourceFormat::Ec2DescribeInstances => "ec2:describe-instances",
            SourceFormat::RdsDescribeDbInstances => "rds:describe-db-instances",
            SourceFormat::S3ListBuckets => "s3api:list-buckets",
            SourceFormat::LambdaListFunctions => "lambda:list-functions",
            SourceFormat::Native => "native",
        }
    }

    /// The resource type a complete listing of this command covers; `None` when the output
    /// is not a complete listing (tag listings and Resource Explorer omit untagged or
    /// unindexed resources), so it cannot drive a sync.
    pub fn complete_listing(self) -> Option<&'static str> {
        match self {
            SourceFormat::Ec2DescribeInstances => Some("ec2:instance"),
            SourceFormat::RdsDescribeDbInstances => Some("rds:db"),
            SourceFormat::S3ListBuckets => Some("s3:bucket"),
            SourceFormat::LambdaListFunctions => Some("lambda:function"),
            _ => None,
        }
    }
}

/// Values the files do not carry, and whether the files are complete listings to sync.
/// From JSON, omitted fields are `null`/`false`; unknown fields are an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct ImportOptions {
    /// Account of resources whose source has no ARN or owner (S3 buckets).
    pub account_id: Option<String>,
    /// Account name to record.
    pub account_name: Option<String>,
    /// Region of the listing (regional commands print no region for their resources).
    pub region: Option<String>,
    /// [`super::EstateStorage::import_files`]: the files are complete listings; resources
    /// in their scope that they lack are tombstoned (parsing ignores this).
    pub sync: bool,
}

/// One problem in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct ImportIssue {
    /// JSON path of the bad record (`$.Reservations[0].Instances[1]`).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// A file read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ParsedFile {
    /// Detected format.
    pub format: SourceFormat,
    /// Good resources.
    pub resources: Vec<AWSResource>,
    /// Skipped records.
    pub issues: Vec<ImportIssue>,
    /// The output carries a next-page token (`NextToken`, `Marker`, …): it is one page of a
    /// longer listing (the AWS CLI prints one when `--max-items` cut the listing short).
    pub more_pages: bool,
}

/// Top-level keys through which the AWS CLI hands out the next page.
const PAGE_TOKEN_KEYS: [&str; 6] = [
    "NextToken",
    "NextMarker",
    "Marker",
    "PaginationToken",
    "ContinuationToken",
    "NextContinuationToken",
];

/// Read one file's text.
///
/// # Errors
/// An [`ImportIssue`] at `$` when the text is neither JSON nor JSON Lines, or its shape is
/// none of the known outputs.
pub(crate) fn parse(text: &str, options: &ImportOptions) -> Result<ParsedFile, ImportIssue> {
    let top = |reason: String| ImportIssue {
        path: "$".into(),
        reason,
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(first) => return parse_json_lines(text).ok_or_else(|| top(format!("not JSON or JSON Lines: {first}"))),
    };
    let mut out = match &value {
        Value::Object(o) if o.contains_key("ResourceTagMappingList") => read_tagging(o, options),
        Value::Object(o) if o.contains_key("Reservations") => read_ec2(o, options),
        Value::Object(o) if o.contains_key("DBInstances") => read_rds(o, options),
        Value::Object(o) if o.contains_key("Buckets") => read_s3(o, options),
        Value::Object(o) if o.contains_key("Functions") => read_lambda(o, options),
        Value::Object(o) if o.get("Resources").and_then(Value::as_array).is_some() => read_explorer(o, options),
        Value::Object(o) if o.get("resources").and_then(Value::as_array).is_some() => read_native(
            o.get("resources")
                .into_iter()
                .flat_map(|v| v.as_array().into_iter().flatten()),
            "$.resources",
        ),
        Value::Array(items) => read_native(items.iter(), "$"),
        Value::Object(o) if o.contains_key("resource_type") => read_native(std::iter::once(&value), "$"),
        // The file's own keys are not echoed: an error may reach a page that named a file.
        Value::Object(_) => {
            return Err(top(
                "unknown format: expected the JSON output of get-resources, resource-explorer-2 search/list-resources, ec2 describe-instances, rds describe-db-instances, s3api list-buckets, lambda list-functions, or AWSResource JSON".into(),
            ));
        }
        _ => {
            return Err(top(
                "unknown format: the top level is neither an object nor an array".into()
            ))
        }
    };
    out.more_pages = match &value {
        Value::Object(o) => PAGE_TOKEN_KEYS
            .iter()
            .any(|k| o.get(*k).and_then(Value::as_str).is_some_and(|t| !t.is_empty())),
        _ => false,
    };
    for r in &mut out.resources {
        if r.account_name.is_none() {
            r.account_name.clone_from(&options.account_name);
        }
        let source = out.format.source_name().to_string();
        if !r.sources.contains(&source) && out.format != SourceFormat::Native {
            r.sources.push(source);
        }
    }
    Ok(out)
}

/// JSON Lines of resources; `None` when a line is not JSON (or there are none).
fn parse_json_lines(text: &str) -> Option<ParsedFile> {
    let mut values = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if !line.trim().is_empty() {
            values.push((n + 1, serde_json::from_str::<Value>(line).ok()?));
        }
    }
    if values.is_empty() {
        return None;
    }
    let mut parsed = read_native(values.iter().map(|(_, v)| v), "$");
    for issue in &mut parsed.issues {
        // `$[i]` → `line N` (1-based, counting blank lines).
        let index: Option<usize> = issue.path.trim_start_matches("$[").trim_end_matches(']').parse().ok();
        if let Some((line, _)) = index.and_then(|i| values.get(i)) {
            issue.path = format!("line {line}");
        }
    }
    Some(parsed)
}

fn read_native<'a>(items: impl Iterator<Item = &'a Value>, base: &str) -> ParsedFile {
    let mut out = ParsedFile {
        format: SourceFormat::Native,
        resources: Vec::new(),
        issues: Vec::new(),
        more_pages: false,
    };
    for (i, item) in items.enumerate() {
        let path = format!("{base}[{i}]");
        match serde_json::from_value::<AWSResource>(item.clone()) {
            Ok(r)
                if r.resource_type.is_empty()
                    || r.identifier.is_empty()
                    || r.account_id.is_empty()
                    || r.region.is_empty() =>
            {
                out.issues.push(ImportIssue {
                    path,
                    reason: "resource_type, identifier, account_id and region are required".into(),
                });
            }
            Ok(r) => out.resources.push(r),
            Err(e) => out.issues.push(ImportIssue {
                path,
                reason: format!("not an AWSResource: {e}"),
            }),
        }
    }
    out
}

/// A resource filled in from its ARN (account, region, service, type, identifier).
fn from_arn(arn: &str, options: &ImportOptions) -> Result<AWSResource, String> {
    let parsed = Arn::parse(arn).map_err(|e| e.to_string())?;
    let account_id = parsed
        .account_id
        .clone()
        .filter(|a| a != "aws")
        .or_else(|| options.account_id.clone())
        .ok_or_else(|| format!("{arn} names no account: pass --account-id"))?;
    Ok(AWSResource {
        resource_type: parsed.resource_type.clone(),
        identifier: parsed.identifier.clone(),
        account_id,
        region: parsed.region.clone().unwrap_or_else(|| GLOBAL_REGION.to_string()),
        service: parsed.service.clone(),
        arn: Some(arn.to_string()),
        ..AWSResource::default()
    })
}

/// `[{Key, Value}]` → map (empty list → empty map).
fn tag_list(v: Option<&Value>) -> Result<Option<BTreeMap<String, String>>, String> {
    let Some(v) = v else { return Ok(None) };
    let list = v.as_array().ok_or("Tags is not a list")?;
    let mut tags = BTreeMap::new();
    for t in list {
        let k = t.get("Key").and_then(Value::as_str).ok_or("a tag has no Key")?;
        let v = t.get("Value").and_then(Value::as_str).unwrap_or_default();
        tags.insert(k.to_string(), v.to_string());
    }
    Ok(Some(tags))
}

fn s<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str)
}

/// Unix ms of the timestamp forms the AWS CLI prints: `2024-01-02T03:04:05Z`,
/// `…+00:00`, `…​.000+0000`, with or without fractions.
pub(crate) fn parse_aws_time(text: &str) -> Option<i64> {
    let t = text.trim();
    let (main, offset_minutes) = if let Some(stripped) = t.strip_suffix('Z') {
        (stripped, 0)
    } else {
        let sign_at = t.rfind(['+', '-']).filter(|&i| i > 10)?;
        let (main, off) = t.split_at(sign_at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let digits: String = off[1..].chars().filter(char::is_ascii_digit).collect();
        if digits.len() != 4 {
            return None;
        }
        let h: i64 = digits[..2].parse().ok()?;
        let m: i64 = digits[2..].parse().ok()?;
        (main, sign * (h * 60 + m))
    };
    let (secs_part, frac) = match main.split_once('.') {
        Some((a, b)) => (a, b),
        None => (main, ""),
    };
    let base = crate::clock::parse_utc(&format!("{secs_part}Z"))?;
    let frac_ms: i64 = match frac.len() {
        0 => 0,
        n => frac.chars().take(3).collect::<String>().parse::<i64>().ok()? * 10i64.pow(3 - n.min(3) as u32),
    };
    Some(base + frac_ms - offset_minutes * 60_000)
}

fn with_time(meta: &mut Map<String, Value>, key: &str, raw: Option<&str>) {
    if let Some(raw) = raw {
        meta.insert(key.into(), json!(raw));
        if let Some(ms) = parse_aws_time(raw) {
            meta.insert(format!("{key}_ms"), json!(ms));
        }
    }
}

fn read_tagging(o: &Map<String, Value>, options: &ImportOptions) -> ParsedFile {
    read_list(o, "ResourceTagMappingList", SourceFormat::TaggingGetResources, |item| {
        let arn = s(item, "ResourceARN").ok_or("no ResourceARN")?;
        let mut r = from_arn(arn, options)?;
        r.tags = tag_list(item.get("Tags"))?.or_else(|| Some(BTreeMap::new()));
        r.name = r.tags.as_ref().and_then(|t| t.get("Name").cloned());
        Ok::<_, String>(r)
    })
}

fn read_explorer(o: &Map<String, Value>, options: &ImportOptions) -> ParsedFile {
    read_list(o, "Resources", SourceFormat::ResourceExplorer, |item| {
        let arn = s(item, "Arn").ok_or("no Arn")?;
        let mut r = from_arn(arn, options)?;
        if let Some(t) = s(item, "ResourceType") {
            r.resource_type = t.to_string();
        }
        if let Some(region) = s(item, "Region").filter(|r| !r.is_empty()) {
            r.region = region.to_string();
        }
        if let Some(acct) = s(item, "OwningAccountId") {
            r.account_id = acct.to_string();
        }
        if let Some(svc) = s(item, "Service") {
            r.service = svc.to_string();
        }
        for prop in item.get("Properties").and_then(Value::as_array).into_iter().flatten() {
            if s(prop, "Name") == Some("tags") {
                r.tags = tag_list(prop.get("Data"))?;
            }
        }
        r.name = r.tags.as_ref().and_then(|t| t.get("Name").cloned());
        let mut meta = Map::new();
        with_time(&mut meta, "last_reported_at", s(item, "LastReportedAt"));
        r.metadata = (!meta.is_empty()).then_some(Value::Object(meta));
        Ok::<_, String>(r)
    })
}

fn read_ec2(o: &Map<String, Value>, options: &ImportOptions) -> ParsedFile {
    let mut out = ParsedFile {
        format: SourceFormat::Ec2DescribeInstances,
        resources: Vec::new(),
        issues: Vec::new(),
        more_pages: false,
    };
    let reservations = o
        .get("Reservations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (ri, reservation) in reservations.iter().enumerate() {
        let owner = s(reservation, "OwnerId")
            .map(String::from)
            .or_else(|| options.account_id.clone());
        let instances = reservation
            .get("Instances")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (ii, inst) in instances.iter().enumerate() {
            let path = format!("$.Reservations[{ri}].Instances[{ii}]");
            let result = (|| {
                let id = s(inst, "InstanceId").ok_or("no InstanceId")?;
                let account = owner
                    .clone()
                    .ok_or("no OwnerId on the reservation: pass --account-id")?;
                let az = inst.get("Placement").and_then(|p| s(p, "AvailabilityZone"));
                let region = az
                    .map(|z| z.trim_end_matches(|c: char| c.is_ascii_alphabetic()).to_string())
                    .filter(|r| !r.is_empty())
                    .or_else(|| options.region.clone())
                    .ok_or("no Placement.AvailabilityZone: pass --region")?;
                let arn = Arn::build(
                    Arn::partition_of_region(&region),
                    "ec2",
                    &region,
                    &account,
                    &format!("instance/{id}"),
                );
                let tags = tag_list(inst.get("Tags"))?.or_else(|| Some(BTreeMap::new()));
                let mut meta = Map::new();
                for key in [
                    "InstanceType",
                    "PrivateIpAddress",
                    "PublicIpAddress",
                    "VpcId",
                    "SubnetId",
                    "ImageId",
                    "Platform",
                ] {
                    if let Some(v) = s(inst, key) {
                        meta.insert(snake(key), json!(v));
                    }
                }
                if let Some(z) = az {
                    meta.insert("availability_zone".into(), json!(z));
                }
                with_time(&mut meta, "launch_time", s(inst, "LaunchTime"));
                Ok::<_, String>(AWSResource {
                    resource_type: "ec2:instance".into(),
                    identifier: id.into(),
                    account_id: account,
                    region,
                    service: "ec2".into(),
                    arn: Some(arn),
                    name: tags.as_ref().and_then(|t| t.get("Name").cloned()),
                    state: inst.get("State").and_then(|st| s(st, "Name")).map(String::from),
                    tags,
                    metadata: Some(Value::Object(meta)),
                    ..AWSResource::default()
                })
            })();
            push(&mut out, path, result);
        }
    }
    out
}

fn read_rds(o: &Map<String, Value>, options: &ImportOptions) -> ParsedFile {
    read_list(o, "DBInstances", SourceFormat::RdsDescribeDbInstances, |db| {
        let arn = s(db, "DBInstanceArn").ok_or("no DBInstanceArn")?;
        let mut r = from_arn(arn, options)?;
        if let Some(id) = s(db, "DBInstanceIdentifier") {
            r.identifier = id.to_string();
        }
        r.name = Some(r.identifier.clone());
        r.state = s(db, "DBInstanceStatus").map(String::from);
        r.tags = tag_list(db.get("TagList"))?;
        let mut meta = Map::new();
        for key in [
            "Engine",
            "EngineVersion",
            "DBInstanceClass",
            "AvailabilityZone",
            "StorageType",
        ] {
            if let Some(v) = s(db, key) {
                meta.insert(snake(key), json!(v));
            }
        }
        for key in [
            "MultiAZ",
            "StorageEncrypted",
            "DeletionProtection",
            "PubliclyAccessible",
        ] {
            if let Some(v) = db.get(key).and_then(Value::as_bool) {
                meta.insert(snake(key), json!(v));
            }
        }
        if let Some(endpoint) = db.get("Endpoint").and_then(|e| s(e, "Address")) {
            meta.insert("endpoint".into(), json!(endpoint));
        }
        with_time(&mut meta, "created", s(db, "InstanceCreateTime"));
        if let Some(protected) = db.get("DeletionProtection").and_then(Value::as_bool) {
            r.constraints = Some(super::model::ResourceConstraints {
                can_delete: Some(!protected),
                ..Default::default()
            });
        }
        r.metadata = Some(Value::Object(meta));
        Ok::<_, String>(r)
    })
}

fn read_s3(o: &Map<String, Value>, options: &ImportOptions) -> ParsedFile {
    read_list(o, "Buckets", SourceFormat::S3ListBuckets, |b| {
        let name = s(b, "Name").ok_or("no Name")?;
        let account = options
            .account_id
            .clone()
            .ok_or("s3api list-buckets prints no account id: pass --account-id")?;
        let region = s(b, "BucketRegion")
            .map(String::from)
            .or_else(|| options.region.clone())
            .unwrap_or_else(|| GLOBAL_REGION.to_string());
        let partition = Arn::partition_of_region(&region);
        let mut meta = Map::new();
        with_time(&mut meta, "created", s(b, "CreationDate"));
        Ok::<_, String>(AWSResource {
            resource_type: "s3:bucket".into(),
            identifier: name.into(),
            account_id: account,
            region,
            service: "s3".into(),
            arn: Some(format!("arn:{partition}:s3:::{name}")),
            name: Some(name.into()),
            metadata: Some(Value::Object(meta)),
            ..AWSResource::default()
        })
    })
}

fn read_lambda(o: &Map<String, Value>, options: &ImportOptions) -> ParsedFile {
    read_list(o, "Functions", SourceFormat::LambdaListFunctions, |f| {
        let arn = s(f, "FunctionArn").ok_or("no FunctionArn")?;
        let mut r = from_arn(arn, options)?;
        r.name = s(f, "FunctionName").map(String::from);
        r.state = s(f, "State").map(|st| st.to_lowercase());
        let mut meta = Map::new();
        for key in ["Runtime", "Handler", "Description", "PackageType"] {
            if let Some(v) = s(f, key) {
                meta.insert(snake(key), json!(v));
            }
        }
        for key in ["MemorySize", "Timeout", "CodeSize"] {
            if let Some(v) = f.get(key).and_then(Value::as_i64) {
                meta.insert(snake(key), json!(v));
            }
        }
        with_time(&mut meta, "last_modified", s(f, "LastModified"));
        r.metadata = Some(Value::Object(meta));
        Ok::<_, String>(r)
    })
}

/// Read every item of the top-level list `key` with `read`; failures become issues at
/// `$.key[i]`.
fn read_list(
    o: &Map<String, Value>,
    key: &str,
    format: SourceFormat,
    read: impl Fn(&Value) -> Result<AWSResource, String>,
) -> ParsedFile {
    let mut out = ParsedFile {
        format,
        resources: Vec::new(),
        issues: Vec::new(),
        more_pages: false,
    };
    for (i, item) in o.get(key).and_then(Value::as_array).into_iter().flatten().enumerate() {
        push(&mut out, format!("$.{key}[{i}]"), read(item));
    }
    out
}

fn push(out: &mut ParsedFile, path: String, result: Result<AWSResource, String>) {
    match result {
        Ok(r) => out.resources.push(r),
        Err(reason) => out.issues.push(ImportIssue { path, reason }),
    }
}

/// `InstanceType` → `instance_type`.
fn snake(key: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
        let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
        if c.is_ascii_uppercase() && i > 0 && (prev_lower || next_lower) {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Why output of `format` can never drive a sync (`None` for complete listings).
pub(crate) fn incomplete_listing(format: SourceFormat) -> Option<String> {
    format.complete_listing().is_none().then(|| {
        format!(
            "--sync needs a complete listing; {} output omits untagged or unindexed resources, so resources missing from it may still exist (import it without --sync)",
            format.source_name()
        )
    })
}

/// The scope of a complete listing given as pages (the files of one `estate import --sync`
/// that hold the same listing). At least one page must be the last (no next-page token);
/// that every page is present is the caller's word, as the tokens are opaque.
///
/// # Errors
/// As [`sync_scope`]; also pages of different formats, or only pages that say more follow.
pub(crate) fn sync_scope_of(pages: &[&ParsedFile], options: &ImportOptions) -> Result<SyncScope, String> {
    let Some(first) = pages.first() else {
        return Err("no listing given".into());
    };
    let format = first.format;
    if let Some(other) = pages.iter().find(|p| p.format != format) {
        return Err(format!(
            "pages of one listing must have one format; got {} and {}",
            format.source_name(),
            other.format.source_name()
        ));
    }
    if let Some(reason) = incomplete_listing(format) {
        return Err(reason);
    }
    let resource_type = format.complete_listing().unwrap_or_default();
    if pages.iter().all(|p| p.more_pages) {
        return Err(format!(
            "--sync needs a complete listing; this {} output is a page that says more follow (it carries a next-page token), and resources on the other pages would be tombstoned: pass every page to one `estate import --sync`, or run the AWS CLI without --max-items (it fetches every page itself)",
            format.source_name()
        ));
    }
    let resources: Vec<&AWSResource> = pages.iter().flat_map(|p| p.resources.iter()).collect();
    let accounts: BTreeSet<&str> = resources.iter().map(|r| r.account_id.as_str()).collect();
    let account_id = match (accounts.len(), &options.account_id) {
        (0, Some(a)) => a.clone(),
        (0, None) => return Err("the listing is empty: pass --account-id (and --region) to say what it covers".into()),
        (1, given) => {
            let found = accounts.iter().next().copied().unwrap_or_default().to_string();
            if given.as_ref().is_some_and(|g| *g != found) {
                return Err(format!(
                    "the listing is of account {found}, not --account-id {}",
                    given.as_deref().unwrap_or_default()
                ));
            }
            found
        }
        _ => return Err("the listing mixes accounts; sync one account at a time".into()),
    };
    let regions = if format == SourceFormat::S3ListBuckets {
        None // a global listing
    } else {
        let seen: BTreeSet<String> = resources.iter().map(|r| r.region.clone()).collect();
        match (&options.region, seen.len()) {
            (Some(r), _) if seen.iter().all(|s| s == r) => Some(vec![r.clone()]),
            (Some(r), _) => return Err(format!("the listing holds resources outside --region {r}")),
            (None, 1) => Some(seen.into_iter().collect()),
            (None, 0) => return Err("the listing is empty: pass --region to say which region it covers".into()),
            (None, _) => return Err("the listing spans several regions: pass --region or split it".into()),
        }
    };
    Ok(SyncScope {
        account_id,
        regions,
        resource_types: Some(vec![resource_type.to_string()]),
    })
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod fixture_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_cli_timestamps() {
        let z = parse_aws_time("2024-03-01T12:00:00Z").unwrap();
        assert_eq!(parse_aws_time("2024-03-01T12:00:00+00:00"), Some(z));
        assert_eq!(parse_aws_time("2024-03-01T12:00:00.000+0000"), Some(z));
        assert_eq!(parse_aws_time("2024-03-01T13:00:00.250+0100"), Some(z + 250));
        assert_eq!(parse_aws_time("2024-03-01T07:00:00-05:00"), Some(z));
        assert_eq!(parse_aws_time("yesterday"), None);
    }

    #[test]
    fn snake_case_keys() {
        assert_eq!(snake("InstanceType"), "instance_type");
        assert_eq!(snake("DBInstanceClass"), "db_instance_class");
        assert_eq!(snake("MultiAZ"), "multi_az");
    }
}
