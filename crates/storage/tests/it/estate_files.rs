//! `EstateStorage::import_files`: per-file reports, refusals of a whole sync, pages of one
//! listing synced together, and progress.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cloudops_storage_service::ImportOptions;
use cloudops_storage_service::ResourceFilter;
use cloudops_storage_service::{no_progress, Phase, Progress};
use serde_json::json;

use crate::common::TestStore;

fn ec2_page(instances: &[(&str, &str)], more: bool) -> String {
    let instances: Vec<_> = instances
        .iter()
        .map(|(id, state)| {
            json!({
                "InstanceId": id,
                "Placement": {"AvailabilityZone": "us-east-1a"},
                "State": {"Name": state},
            })
        })
        .collect();
    let mut page = json!({"Reservations": [{"OwnerId": "123456789012", "Instances": instances}]});
    if more {
        page["NextToken"] = "eyJ0b2tlbiI6IDJ9".into();
    }
    page.to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn all() -> ResourceFilter {
    ResourceFilter::default()
}

#[tokio::test]
async fn without_sync_each_file_is_reported_and_good_records_are_kept() {
    let t = TestStore::new();
    let s = t.open().await;
    let good = write(
        t.dir.path(),
        "good.json",
        &ec2_page(&[("i-01", "running"), ("i-02", "stopped")], false),
    );
    // One good instance and one without an id.
    let partly = write(
        t.dir.path(),
        "partly.json",
        r#"{"Reservations": [{"OwnerId": "123456789012", "Instances": [{"InstanceId": "i-03", "Placement": {"AvailabilityZone": "us-east-1b"}}, {"State": {"Name": "running"}}]}]}"#,
    );
    let unknown = write(t.dir.path(), "unknown.json", r#"{"Widgets": []}"#);
    let missing = t.dir.path().join("missing.json");
    let seen = Mutex::new(Vec::<Progress>::new());
    let report = s
        .estate
        .import_files(
            &[good.clone(), partly.clone(), unknown.clone(), missing.clone()],
            &ImportOptions::default(),
            &|p| seen.lock().unwrap().push(p),
        )
        .await
        .unwrap();
    assert_eq!(report.files.len(), 4);
    assert!(report.syncs.is_empty());
    assert_eq!(report.failed(), 2, "{report:?}");
    let [g, p, u, m] = &report.files[..] else { panic!() };
    assert_eq!(
        (g.path.as_path(), g.resources, g.added, g.error.as_deref()),
        (good.as_path(), 2, 2, None)
    );
    assert_eq!((p.resources, p.added, p.issues.len()), (1, 1, 1), "{p:?}");
    assert!(p.issues[0].path.contains("Instances[1]"), "{:?}", p.issues);
    assert!(
        u.error.as_deref().is_some_and(|e| e.contains("unknown format")),
        "{u:?}"
    );
    assert!(m.error.as_deref().is_some_and(|e| e.starts_with("unreadable")), "{m:?}");
    assert_eq!(s.estate.count(&all()).await.unwrap(), 3);

    let seen = seen.into_inner().unwrap();
    assert!(seen
        .iter()
        .all(|p| p.phase == Phase::ImportResources && p.done <= p.total));
    assert_eq!(seen.last().map(|p| (p.done, p.total)), Some((1, 1)), "{seen:?}");

    // Importing again adds nothing.
    let again = s
        .estate
        .import_files(&[good], &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    assert_eq!((again.files[0].added, again.files[0].unchanged), (0, 2));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_sync_takes_every_page_and_one_bad_file_refuses_it_all() {
    let t = TestStore::new();
    let s = t.open().await;
    let sync = ImportOptions {
        sync: true,
        ..ImportOptions::default()
    };
    let first = write(t.dir.path(), "p1.json", &ec2_page(&[("i-0a", "running")], true));
    let last = write(t.dir.path(), "p2.json", &ec2_page(&[("i-0b", "stopped")], false));

    // A page that says more follow cannot be a listing on its own.
    let alone = s
        .estate
        .import_files(std::slice::from_ref(&first), &sync, &no_progress)
        .await
        .unwrap();
    assert_eq!(alone.failed(), 1);
    assert!(alone.files[0].error.as_deref().unwrap().contains("next-page token"));
    assert_eq!(s.estate.count(&all()).await.unwrap(), 0);

    // Both pages: one listing, synced together.
    let seen = Mutex::new(Vec::<Progress>::new());
    let both = s
        .estate
        .import_files(&[first, last.clone()], &sync, &|p| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    assert_eq!(both.failed(), 0, "{both:?}");
    assert_eq!(both.syncs.len(), 1);
    assert_eq!(both.syncs[0].files.len(), 2);
    assert_eq!((both.syncs[0].report.added, both.syncs[0].report.tombstoned), (2, 0));
    assert_eq!(
        both.syncs[0].scope.regions.as_deref(),
        Some(&["us-east-1".to_string()][..])
    );
    assert!(seen.lock().unwrap().iter().any(|p| p.phase == Phase::SyncResources));

    // A file with a bad record refuses the whole sync: nothing is tombstoned.
    let only_b = write(t.dir.path(), "only-b.json", &ec2_page(&[("i-0b", "stopped")], false));
    let broken = write(
        t.dir.path(),
        "broken.json",
        r#"{"Reservations": [{"OwnerId": "123456789012", "Instances": [{"State": {"Name": "running"}}]}]}"#,
    );
    let refused = s
        .estate
        .import_files(&[only_b.clone(), broken], &sync, &no_progress)
        .await
        .unwrap();
    assert_eq!(refused.failed(), 2, "{refused:?}");
    assert!(refused.syncs.is_empty());
    assert!(refused.files[0].error.as_deref().unwrap().contains("another file"));
    assert!(refused.files[1].error.as_deref().unwrap().contains("bad record"));
    assert_eq!(
        s.estate.count(&all()).await.unwrap(),
        2,
        "the refused sync changed something"
    );

    // Tag listings are not complete listings: refused for a sync.
    let tags = PathBuf::from(format!(
        "{}/tests/fixtures/aws/tagging-get-resources.json",
        env!("CARGO_MANIFEST_DIR")
    ));
    let incomplete = s.estate.import_files(&[tags], &sync, &no_progress).await.unwrap();
    assert!(incomplete.files[0]
        .error
        .as_deref()
        .unwrap()
        .contains("complete listing"));

    // The next listing lacks i-0a: tombstoned.
    let next = s.estate.import_files(&[only_b], &sync, &no_progress).await.unwrap();
    assert_eq!(
        (next.syncs[0].report.tombstoned, next.syncs[0].report.unchanged),
        (1, 1)
    );
    assert_eq!(s.estate.count(&all()).await.unwrap(), 1);
    s.shutdown().await.unwrap();
}

#[test]
fn import_options_deserialise_with_defaults() {
    let o: ImportOptions = serde_json::from_str(r#"{"sync": true}"#).unwrap();
    assert_eq!(
        o,
        ImportOptions {
            sync: true,
            ..ImportOptions::default()
        }
    );
    assert!(serde_json::from_str::<ImportOptions>(r#"{"synk": true}"#).is_err());
}
