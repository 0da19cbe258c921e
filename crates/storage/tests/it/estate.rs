//! The AWS estate store: merge-on-upsert, filters, the query language, sync with tombstones,
//! stats, and what reaches the disk.

use std::collections::BTreeMap;

use cloudops_storage_service::{AWSResource, IAMPermissions, ResourceFilter, StatsBy, SyncScope, UserContext};
use cloudops_storage_service::{ErrorKind, StorageService};

use crate::common::{files_containing, test_model_dir, TestStore};

const ACCOUNT: &str = "123456789012";

fn tags(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn ec2(id: &str, region: &str, state: &str, tag_pairs: &[(&str, &str)]) -> AWSResource {
    AWSResource {
        resource_type: "ec2:instance".into(),
        identifier: id.into(),
        account_id: ACCOUNT.into(),
        region: region.into(),
        service: "ec2".into(),
        arn: Some(format!("arn:aws:ec2:{region}:{ACCOUNT}:instance/{id}")),
        name: Some(format!("{id}-name")),
        state: Some(state.into()),
        tags: tags(tag_pairs),
        sources: vec!["ec2:describe-instances".into()],
        ..AWSResource::default()
    }
}

fn rds(id: &str, region: &str, tag_pairs: &[(&str, &str)]) -> AWSResource {
    AWSResource {
        resource_type: "rds:db".into(),
        identifier: id.into(),
        account_id: ACCOUNT.into(),
        region: region.into(),
        service: "rds".into(),
        arn: Some(format!("arn:aws:rds:{region}:{ACCOUNT}:db:{id}")),
        name: Some(id.into()),
        state: Some("available".into()),
        tags: tags(tag_pairs),
        metadata: Some(serde_json::json!({"engine": "postgres", "instance_class": "db.r6g.large"})),
        ..AWSResource::default()
    }
}

#[tokio::test]
async fn upsert_is_idempotent_and_two_sources_make_one_record() {
    let t = TestStore::new();
    let s = t.open().await;
    let e = &s.estate;
    let r = e
        .upsert_resource(ec2("i-0abc123", "us-east-1", "running", &[("env", "prod")]))
        .await
        .unwrap();
    assert_eq!((r.added, r.updated, r.unchanged), (1, 0, 0));
    let again = e
        .upsert_resource(ec2("i-0abc123", "us-east-1", "running", &[("env", "prod")]))
        .await
        .unwrap();
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 1));
    let stopped = e
        .upsert_resource(ec2("i-0abc123", "us-east-1", "stopped", &[("env", "prod")]))
        .await
        .unwrap();
    assert_eq!(stopped.updated, 1);
    assert_eq!(e.count(&ResourceFilter::default()).await.unwrap(), 1);
    let got = e
        .get_resource(&format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0abc123"))
        .await
        .unwrap();
    assert_eq!(got.state.as_deref(), Some("stopped"));
    let by_path = e
        .get_resource(&format!("{ACCOUNT}/us-east-1/ec2:instance/i-0abc123"))
        .await
        .unwrap();
    assert_eq!(by_path, got);

    // A bucket from a tag listing (tags, no state) and from list-buckets (no tags).
    let from_tags = AWSResource {
        resource_type: "s3:bucket".into(),
        identifier: "logs-prod".into(),
        account_id: ACCOUNT.into(),
        region: "us-east-1".into(),
        arn: Some("arn:aws:s3:::logs-prod".into()),
        tags: tags(&[("env", "prod")]),
        sources: vec!["tagging:get-resources".into()],
        ..AWSResource::default()
    };
    let from_list = AWSResource {
        tags: None,
        state: Some("available".into()),
        sources: vec!["s3api:list-buckets".into()],
        ..from_tags.clone()
    };
    e.bulk_upsert(vec![from_tags]).await.unwrap();
    e.bulk_upsert(vec![from_list]).await.unwrap();
    let bucket = e.get_resource("arn:aws:s3:::logs-prod").await.unwrap();
    assert_eq!(
        bucket.tags.unwrap()["env"],
        "prod",
        "the listing without tags kept them"
    );
    assert_eq!(bucket.state.as_deref(), Some("available"));
    assert_eq!(bucket.service, "s3", "service derived from the type");
    assert_eq!(bucket.sources, vec!["tagging:get-resources", "s3api:list-buckets"]);
    assert_eq!(e.count(&ResourceFilter::default()).await.unwrap(), 2);

    assert!(e.delete_resource("arn:aws:s3:::logs-prod").await.unwrap());
    assert!(
        !e.delete_resource("arn:aws:s3:::logs-prod").await.unwrap(),
        "idempotent"
    );
    let err = e.get_resource("arn:aws:s3:::logs-prod").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = e.upsert_resource(AWSResource::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn bulk_of_a_thousand_with_filters_query_syntax_and_stats() {
    let t = TestStore::new();
    let s = t.open().await;
    let e = &s.estate;
    let regions = ["us-east-1", "us-west-2", "eu-west-1"];
    let mut batch = Vec::new();
    for i in 0..1000 {
        let region = regions[i % 3];
        let env = if i % 4 == 0 { "prod" } else { "dev" };
        let mut r = if i % 10 == 0 {
            rds(&format!("db-{i}"), region, &[("env", env), ("team", "data")])
        } else {
            let state = if i % 2 == 0 { "running" } else { "stopped" };
            ec2(&format!("i-{i:05}"), region, state, &[("env", env)])
        };
        if i % 50 == 1 {
            r.tags = Some(BTreeMap::new());
        }
        batch.push(r);
    }
    let report = e.bulk_upsert(batch).await.unwrap();
    assert_eq!(report.added, 1000);
    let all = ResourceFilter::default();
    assert_eq!(e.count(&all).await.unwrap(), 1000);
    let f = |rt: Option<&str>, region: Option<&str>, state: Option<&str>| ResourceFilter {
        resource_type: rt.map(String::from),
        region: region.map(String::from),
        state: state.map(String::from),
        ..ResourceFilter::default()
    };
    assert_eq!(e.count(&f(Some("rds:db"), None, None)).await.unwrap(), 100);
    assert_eq!(
        e.count(&f(Some("ec2:instance"), Some("us-east-1"), Some("running")))
            .await
            .unwrap(),
        133
    );
    assert_eq!(e.get_by_region("eu-west-1").await.unwrap().len(), 333);
    assert_eq!(e.get_by_type("rds:db").await.unwrap().len(), 100);
    assert_eq!(e.get_by_account(ACCOUNT).await.unwrap().len(), 1000);
    let tagged = ResourceFilter {
        tags: vec![("env".into(), "prod".into())],
        ..ResourceFilter::default()
    };
    assert_eq!(e.count(&tagged).await.unwrap(), 250);

    let n = |q: &str| {
        let e = e.clone();
        let q = q.to_string();
        async move { e.search(&q, &ResourceFilter::default(), 10_000).await.unwrap().len() }
    };
    assert_eq!(n("region:us-west-2").await, 333);
    assert_eq!(n("service:rds").await, 100);
    assert_eq!(n("resourcetype:rds:db region:us-east-1").await, 34);
    assert_eq!(n(&format!("account:{ACCOUNT}")).await, 1000);
    assert_eq!(n("state:running resourcetype:ec2:instance").await, 400);
    assert_eq!(n("tag:env=prod").await, 250);
    assert_eq!(n("tag:team").await, 100);
    assert_eq!(n("tag:none").await, 20);
    assert_eq!(n("-region:us-east-1").await, 666);
    assert_eq!(n("region:us-east-1,eu-west-1").await, 667);
    assert_eq!(n("region:us-*").await, 667);
    assert_eq!(n("tag:env=pr*").await, 250);
    assert_eq!(n("-tag:env=d* resourcetype:rds:db").await, 50);
    assert_eq!(n("region:ap-*").await, 0, "a prefix matching nothing");
    let err = e.search("region:", &all, 10).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("character 0") && err.to_string().contains("region:"),
        "{err}"
    );

    let by_service = e.stats(&StatsBy::Service, &all).await.unwrap();
    assert_eq!(by_service, vec![("ec2".to_string(), 900), ("rds".to_string(), 100)]);
    let by_state = e.stats(&StatsBy::State, &all).await.unwrap();
    assert_eq!(
        by_state,
        vec![
            ("stopped".to_string(), 500),
            ("running".to_string(), 400),
            ("available".to_string(), 100)
        ]
    );
    let by_env = e.stats(&StatsBy::Tag("env".into()), &all).await.unwrap();
    assert_eq!(by_env, vec![("dev".to_string(), 730), ("prod".to_string(), 250)]);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn sync_tombstones_only_in_scope_and_purges_later() {
    let t = TestStore::new();
    let s = t.open().await;
    let e = &s.estate;
    e.bulk_upsert(vec![
        ec2("i-1", "us-east-1", "running", &[]),
        ec2("i-2", "us-east-1", "running", &[]),
        ec2("i-3", "us-west-2", "running", &[]),
        rds("db-1", "us-east-1", &[]),
    ])
    .await
    .unwrap();
    let scope = SyncScope {
        account_id: ACCOUNT.into(),
        regions: Some(vec!["us-east-1".into()]),
        resource_types: Some(vec!["ec2:instance".into()]),
    };
    let listing = || {
        vec![
            ec2("i-1", "us-east-1", "stopped", &[]),
            ec2("i-4", "us-east-1", "running", &[]),
        ]
    };
    // i-2 is gone, i-1 changed, i-4 is new; i-3 (other region) and db-1 (other type) are out of scope.
    let report = e.sync(&scope, listing()).await.unwrap();
    assert_eq!(
        (report.added, report.updated, report.unchanged, report.tombstoned),
        (1, 1, 0, 1)
    );
    let gone = e
        .get_resource(&format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-2"))
        .await
        .unwrap();
    assert_eq!(gone.state.as_deref(), Some("deleted"));
    assert!(gone.deleted_at.is_some());
    assert_eq!(
        e.count(&ResourceFilter::default()).await.unwrap(),
        4,
        "tombstones are hidden"
    );
    let with_deleted = ResourceFilter {
        include_deleted: true,
        ..ResourceFilter::default()
    };
    assert_eq!(e.count(&with_deleted).await.unwrap(), 5);
    let live = e.search("i-2", &ResourceFilter::default(), 10).await.unwrap();
    assert!(live.iter().all(|h| h.resource.identifier != "i-2"));
    let all = e.search("i-2", &with_deleted, 10).await.unwrap();
    assert!(all.iter().any(|h| h.resource.identifier == "i-2"));

    // The same listing again: nothing changes.
    let again = e.sync(&scope, listing()).await.unwrap();
    assert_eq!(
        (again.added, again.updated, again.unchanged, again.tombstoned),
        (0, 0, 2, 0)
    );
    // A resource outside the scope is refused before anything is written.
    let err = e
        .sync(&scope, vec![ec2("i-9", "eu-west-1", "running", &[])])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.count(&with_deleted).await.unwrap(), 5);
    // Coming back revives it.
    e.upsert_resource(ec2("i-2", "us-east-1", "running", &[]))
        .await
        .unwrap();
    assert_eq!(e.count(&ResourceFilter::default()).await.unwrap(), 5);
    // Purge: nothing is older than a day; a negative retention takes every tombstone.
    e.sync(&scope, vec![ec2("i-1", "us-east-1", "stopped", &[])])
        .await
        .unwrap();
    assert_eq!(e.purge_tombstones(86_400_000).await.unwrap(), 0);
    assert_eq!(e.purge_tombstones(-1000).await.unwrap(), 2);
    assert_eq!(e.count(&with_deleted).await.unwrap(), 3);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn nothing_identifying_reaches_the_disk_yet_tag_filters_and_facets_work() {
    let t = TestStore::new();
    let s = t.open().await;
    let mut r = rds(
        "pg-secret-marker-db",
        "us-east-1",
        &[("owner", "marker-owner-alice"), ("env", "prod")],
    );
    r.iam = Some(IAMPermissions {
        allowed_actions: vec!["rds:MarkerRebootDBInstance".into()],
        denied_actions: vec!["rds:MarkerDeleteDBInstance".into()],
        user_context: UserContext {
            username: Some("marker-user".into()),
            role_arn: None,
            session_expires: None,
        },
    });
    s.estate.upsert_resource(r).await.unwrap();
    let hits = s
        .estate
        .search("tag:owner=marker-owner*", &ResourceFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "prefix on a tag value through the sealed dictionary");
    let iam = hits[0].resource.iam.as_ref().unwrap();
    assert_eq!(iam.allowed_actions[0], "rds:MarkerRebootDBInstance");
    let owners = s
        .estate
        .stats(&StatsBy::Tag("owner".into()), &ResourceFilter::default())
        .await
        .unwrap();
    assert_eq!(owners, vec![("marker-owner-alice".to_string(), 1)]);
    s.shutdown().await.unwrap();
    // The dictionary survives a restart (sealed in store_meta).
    let s = t.open().await;
    let again = s
        .estate
        .search("tag:owner=marker*", &ResourceFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    s.flush().await.unwrap();
    for marker in [
        "pg-secret-marker-db",
        "marker-owner-alice",
        "MarkerRebootDBInstance",
        "MarkerDeleteDBInstance",
        "marker-user",
        "db.r6g.large",
    ] {
        for dir in crate::common::stored_bytes_dirs(&t).unwrap_or_default() {
            let found = files_containing(&dir, marker.as_bytes());
            assert!(found.is_empty(), "{marker} in clear in {found:?}");
        }
    }
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_database_finds_the_rds_instance_tagged_production() {
    let Some(model) = test_model_dir() else { return };
    let t = TestStore::new();
    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    s.estate
        .bulk_upsert(vec![
            rds("orders-pg", "us-east-1", &[("env", "production")]),
            ec2(
                "i-web1",
                "us-east-1",
                "running",
                &[("env", "production"), ("role", "web")],
            ),
            ec2("i-batch", "us-east-1", "running", &[("env", "staging")]),
            rds("analytics-pg", "us-east-1", &[("env", "staging")]),
        ])
        .await
        .unwrap();
    let hits = s
        .estate
        .search("production database", &ResourceFilter::default(), 3)
        .await
        .unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.resource.identifier.as_str()).collect();
    assert_eq!(ids[0], "orders-pg", "{ids:?}");
    let filtered = s
        .estate
        .search(
            "database region:us-east-1 -tag:env=staging",
            &ResourceFilter::default(),
            10,
        )
        .await
        .unwrap();
    assert!(!filtered.is_empty());
    assert!(filtered
        .iter()
        .all(|h| h.resource.tags.as_ref().unwrap()["env"] != "staging"));
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_imported_without_a_model_are_embedded_by_reindex() {
    let Some(model) = test_model_dir() else { return };
    let t = TestStore::new();
    let s = t.open().await;
    s.estate
        .bulk_upsert(vec![
            rds("orders-pg", "us-east-1", &[("env", "production")]),
            ec2("i-web1", "us-east-1", "running", &[("env", "production")]),
        ])
        .await
        .unwrap();
    s.shutdown().await.unwrap();

    let s = StorageService::open_for_reindex(t.config_with_model(&model))
        .await
        .unwrap();
    assert_eq!(s.estate.unembedded().await.unwrap(), 2);
    // No keyword of either resource: only a dense vector can find something.
    let none = ResourceFilter::default();
    assert!(s
        .estate
        .search("somewhere to keep rows", &none, 5)
        .await
        .unwrap()
        .is_empty());
    let report = s.reindex(&|_| {}).await.unwrap();
    assert_eq!(report.resources_embedded, 2);
    assert_eq!(s.estate.unembedded().await.unwrap(), 0);
    let hits = s.estate.search("somewhere to keep rows", &none, 5).await.unwrap();
    assert_eq!(hits.len(), 2, "dense vectors were written");
    assert_eq!(
        s.reindex(&|_| {}).await.unwrap().resources_embedded,
        0,
        "resumable, nothing left"
    );
    s.shutdown().await.unwrap();
}
