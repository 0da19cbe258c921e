//! AWS CLI readers on realistic fixtures (tests/fixtures/aws/): formats, bad records and sync
//! scopes. Their import into a real store is tested in `tests/it/estate_import.rs`.

use super::{parse, sync_scope_of, ImportOptions, ParsedFile, SourceFormat, SyncScope};

fn sync_scope(parsed: &ParsedFile, options: &ImportOptions) -> Result<SyncScope, String> {
    sync_scope_of(&[parsed], options)
}

const ACCOUNT: &str = "123456789012";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/aws/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn opts() -> ImportOptions {
    ImportOptions {
        account_id: Some(ACCOUNT.into()),
        account_name: Some("acme-prod".into()),
        region: None,
        sync: false,
    }
}

#[test]
fn every_format_is_detected_and_read() {
    let ec2 = parse(&fixture("ec2-describe-instances.json"), &ImportOptions::default()).unwrap();
    assert_eq!(ec2.format, SourceFormat::Ec2DescribeInstances);
    assert_eq!(ec2.resources.len(), 2);
    assert_eq!(ec2.issues.len(), 1);
    assert_eq!(ec2.issues[0].path, "$.Reservations[0].Instances[2]");
    assert!(ec2.issues[0].reason.contains("InstanceId"));
    let web = &ec2.resources[0];
    // The ARN we build equals the one the tagging API prints.
    assert_eq!(
        web.arn.as_deref(),
        Some("arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234567890def")
    );
    assert_eq!(
        (web.region.as_str(), web.state.as_deref(), web.name.as_deref()),
        ("us-east-1", Some("running"), Some("web-prod-1"))
    );
    assert_eq!(web.metadata.as_ref().unwrap()["instance_type"], "m5.large");
    assert_eq!(web.metadata.as_ref().unwrap()["launch_time_ms"], 1_714_641_331_000i64);
    assert_eq!(
        ec2.resources[1].tags.as_ref().map(|t| t.len()),
        Some(0),
        "no Tags key: an empty tag set"
    );

    let tagging = parse(&fixture("tagging-get-resources.json"), &ImportOptions::default()).unwrap();
    assert_eq!(tagging.format, SourceFormat::TaggingGetResources);
    assert_eq!(
        tagging.resources.len(),
        2,
        "the bucket ARN names no account and none was given"
    );
    assert_eq!(tagging.issues.len(), 2);
    assert!(tagging
        .issues
        .iter()
        .any(|i| i.path == "$.ResourceTagMappingList[1]" && i.reason.contains("--account-id")));
    assert!(tagging
        .issues
        .iter()
        .any(|i| i.path == "$.ResourceTagMappingList[3]" && i.reason.contains("not an ARN")));
    let tagging = parse(&fixture("tagging-get-resources.json"), &opts()).unwrap();
    assert_eq!(tagging.resources.len(), 3);
    let bucket = tagging
        .resources
        .iter()
        .find(|r| r.resource_type == "s3:bucket")
        .unwrap();
    assert_eq!(
        (bucket.region.as_str(), bucket.account_id.as_str()),
        ("global", ACCOUNT)
    );
    assert_eq!(bucket.account_name.as_deref(), Some("acme-prod"));

    let rds = parse(&fixture("rds-describe-db-instances.json"), &ImportOptions::default()).unwrap();
    let db = &rds.resources[0];
    assert_eq!(
        (db.resource_type.as_str(), db.identifier.as_str(), db.state.as_deref()),
        ("rds:db", "orders-pg", Some("available"))
    );
    assert_eq!(
        db.constraints.as_ref().unwrap().can_delete,
        Some(false),
        "deletion protection"
    );
    assert_eq!(db.metadata.as_ref().unwrap()["created_ms"], 1_676_369_472_345i64);

    let s3 = parse(&fixture("s3api-list-buckets.json"), &opts()).unwrap();
    assert_eq!(s3.format, SourceFormat::S3ListBuckets);
    assert_eq!(s3.resources[0].arn.as_deref(), Some("arn:aws:s3:::acme-logs-prod"));
    assert_eq!(s3.resources[1].region, "eu-west-1");
    assert!(
        s3.resources.iter().all(|r| r.tags.is_none()),
        "bucket lists carry no tags"
    );
    let err = parse(&fixture("s3api-list-buckets.json"), &ImportOptions::default()).unwrap();
    assert!(err.issues[0].reason.contains("--account-id"));

    let lambda = parse(&fixture("lambda-list-functions.json"), &ImportOptions::default()).unwrap();
    let f = &lambda.resources[0];
    assert_eq!(
        (f.resource_type.as_str(), f.identifier.as_str()),
        ("lambda:function", "ingest-events")
    );
    assert_eq!(f.metadata.as_ref().unwrap()["last_modified_ms"], 1_717_237_230_000i64);

    let explorer = parse(&fixture("resource-explorer-search.json"), &ImportOptions::default()).unwrap();
    assert_eq!(explorer.format, SourceFormat::ResourceExplorer);
    let table = &explorer.resources[0];
    assert_eq!(
        (table.region.as_str(), table.resource_type.as_str()),
        ("cn-north-1", "dynamodb:table")
    );
    assert_eq!(table.tags.as_ref().unwrap()["env"], "production");
    assert_eq!(explorer.resources[1].region, "global");

    let native = parse(&fixture("native.jsonl"), &ImportOptions::default()).unwrap();
    assert_eq!(native.format, SourceFormat::Native);
    assert_eq!(native.resources.len(), 1);
    assert_eq!(native.issues[0].path, "line 3");

    // The file's own keys are not echoed (an error may reach a page that named the file).
    let unknown = parse(
        r#"{"Stacks": [], "aws_secret_access_key": "x"}"#,
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert!(
        unknown.reason.contains("unknown format")
            && !unknown.reason.contains("Stacks")
            && !unknown.reason.contains("aws_secret"),
        "{}",
        unknown.reason
    );
    let garbage = parse("{ not json", &ImportOptions::default()).unwrap_err();
    assert!(garbage.reason.contains("not JSON"));
}

#[test]
fn sync_is_only_for_complete_listings_with_a_clear_scope() {
    let tagging = parse(&fixture("tagging-get-resources.json"), &opts()).unwrap();
    let err = sync_scope(&tagging, &opts()).unwrap_err();
    assert!(err.contains("complete listing"), "{err}");
    let explorer = parse(&fixture("resource-explorer-search.json"), &opts()).unwrap();
    assert!(sync_scope(&explorer, &opts()).is_err());
    // The fixture is a page that says more follow (NextToken): alone it cannot drive a sync,
    // with its last page it can.
    let ec2 = parse(&fixture("ec2-describe-instances.json"), &opts()).unwrap();
    assert!(ec2.more_pages);
    let err = sync_scope(&ec2, &opts()).unwrap_err();
    assert!(err.contains("next-page token"), "{err}");
    let last_page = parse(
        &serde_json::json!({"Reservations": [{"OwnerId": ACCOUNT, "Instances": [{
            "InstanceId": "i-0last", "Placement": {"AvailabilityZone": "us-east-1c"},
            "State": {"Name": "running"}}]}]})
        .to_string(),
        &opts(),
    )
    .unwrap();
    assert!(!last_page.more_pages);
    let scope = sync_scope_of(&[&ec2, &last_page], &opts()).unwrap();
    assert_eq!(scope.account_id, ACCOUNT);
    assert_eq!(scope.regions, Some(vec!["us-east-1".to_string()]));
    assert_eq!(scope.resource_types, Some(vec!["ec2:instance".to_string()]));
    let s3 = parse(&fixture("s3api-list-buckets.json"), &opts()).unwrap();
    assert_eq!(
        sync_scope(&s3, &opts()).unwrap().regions,
        None,
        "list-buckets is global"
    );
    let other_region = ImportOptions {
        region: Some("eu-west-1".into()),
        ..opts()
    };
    assert!(sync_scope(&last_page, &other_region)
        .unwrap_err()
        .contains("outside --region"));
    let mixed = sync_scope_of(&[&last_page, &s3], &opts()).unwrap_err();
    assert!(mixed.contains("one format"), "{mixed}");
}
