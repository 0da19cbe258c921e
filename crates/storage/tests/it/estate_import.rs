//! AWS CLI output imported into a real store (the readers' own tests are beside them, in
//! `src/estate/import_tests.rs`).

use std::path::PathBuf;

use cloudops_storage_service::{no_progress, ImportOptions, ResourceFilter};

use crate::common::TestStore;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(format!("{}/tests/fixtures/aws/{name}", env!("CARGO_MANIFEST_DIR")))
}

fn opts() -> ImportOptions {
    ImportOptions {
        account_id: Some("123456789012".into()),
        account_name: Some("acme-prod".into()),
        ..ImportOptions::default()
    }
}

#[tokio::test]
async fn the_same_resource_from_two_sources_is_one_record() {
    let t = TestStore::new();
    let s = t.open().await;
    let files = [
        "ec2-describe-instances.json",
        "tagging-get-resources.json",
        "rds-describe-db-instances.json",
        "s3api-list-buckets.json",
        "lambda-list-functions.json",
        "resource-explorer-search.json",
    ]
    .map(fixture);
    let report = s.estate.import_files(&files, &opts(), &no_progress).await.unwrap();
    assert_eq!(report.failed(), 0, "{report:?}");
    // Distinct resources: two instances, two buckets, one database, one function, one table,
    // one role; the instance, bucket and database seen twice are one record each.
    assert_eq!(s.estate.count(&ResourceFilter::default()).await.unwrap(), 8);
    let web = s
        .estate
        .get_resource("arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234567890def")
        .await
        .unwrap();
    assert_eq!(
        web.state.as_deref(),
        Some("running"),
        "the tag listing has no state and kept it"
    );
    let tags = web.tags.unwrap();
    assert_eq!(
        (tags["owner"].as_str(), tags["env"].as_str()),
        ("platform", "production")
    );
    assert_eq!(web.sources, vec!["ec2:describe-instances", "tagging:get-resources"]);
    let bucket = s.estate.get_resource("arn:aws:s3:::acme-logs-prod").await.unwrap();
    assert_eq!(
        bucket.tags.unwrap()["env"],
        "production",
        "list-buckets (no tags) kept the tag listing's tags"
    );
    let db = s
        .estate
        .get_resource("arn:aws:rds:us-east-1:123456789012:db:orders-pg")
        .await
        .unwrap();
    assert_eq!(
        db.tags.unwrap()["team"],
        "payments",
        "rds (later) set the tags the tag listing had as empty"
    );
    s.shutdown().await.unwrap();
}
