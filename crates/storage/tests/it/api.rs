//! The public API at an IPC boundary: requests deserialise from JSON with omitted fields,
//! errors serialise to `{ kind, message }`.

use cloudops_storage_service::RestoreTarget;
use cloudops_storage_service::{ArchivedFilter, ContextOptions, HistoryRange, SearchMode, SearchOptions};
use cloudops_storage_service::{ResourceFilter, StatsBy};
use serde_json::json;

use crate::common::TestStore;

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

#[test]
fn requests_deserialise_with_omitted_fields_and_reject_unknown_ones() {
    assert_eq!(from::<SearchOptions>(json!({})), SearchOptions::default());
    let o: SearchOptions = from(json!({"mode": "keyword", "limit": 3, "roles": ["user"], "archived": "only"}));
    assert_eq!(
        (o.mode, o.limit, o.archived),
        (SearchMode::Keyword, 3, ArchivedFilter::Only)
    );
    assert_eq!(o.since, None);
    let err = serde_json::from_value::<SearchOptions>(json!({"limt": 3})).unwrap_err();
    assert!(err.to_string().contains("limt"), "{err}");

    assert_eq!(from::<HistoryRange>(json!("all")), HistoryRange::All);
    assert_eq!(from::<HistoryRange>(json!({"last": 5})), HistoryRange::Last(5));
    assert_eq!(
        from::<HistoryRange>(json!({"before": {"index": 40, "limit": 20}})),
        HistoryRange::Before { index: 40, limit: 20 }
    );

    let c: ContextOptions = from(json!({"max_pairs": 2}));
    assert_eq!(
        (c.max_pairs, c.token_budget),
        (2, ContextOptions::default().token_budget)
    );

    let f: ResourceFilter = from(json!({"region": "us-east-1", "tags": [["env", "prod"]]}));
    assert_eq!(f.region.as_deref(), Some("us-east-1"));
    assert_eq!(f.tags, vec![("env".to_string(), "prod".to_string())]);
    assert!(!f.include_deleted);
    assert_eq!(from::<ResourceFilter>(json!({})), ResourceFilter::default());

    assert_eq!(from::<StatsBy>(json!("service")), StatsBy::Service);
    assert_eq!(from::<StatsBy>(json!({"tag": "env"})), StatsBy::Tag("env".into()));
    assert_eq!(from::<RestoreTarget>(json!("latest")), RestoreTarget::Latest);
    let r: cloudops_storage_service::RestoreOptions = from(json!({"from_s3": true}));
    assert_eq!((r.target, r.from_s3), (RestoreTarget::Latest, true));
    let r: cloudops_storage_service::RestoreOptions = from(json!({"target": {"at": 1764460800000i64}}));
    assert_eq!((r.target, r.from_s3), (RestoreTarget::At(1_764_460_800_000), false));
    assert!(serde_json::from_value::<cloudops_storage_service::RestoreOptions>(json!({"form_s3": true})).is_err());
    // The CLI's `--by` words parse to the same fields, and name themselves back.
    for by in StatsBy::OVERVIEW {
        assert_eq!(by.name().parse::<StatsBy>(), Ok(by.clone()));
    }
    assert_eq!("tag:env".parse::<StatsBy>(), Ok(StatsBy::Tag("env".into())));
    assert_eq!("resource_type".parse::<StatsBy>(), Ok(StatsBy::ResourceType));
    assert!("tag:".parse::<StatsBy>().is_err());
    assert_eq!(from::<RestoreTarget>(json!({"at": 5})), RestoreTarget::At(5));
}

#[tokio::test]
async fn a_library_error_serialises_as_kind_and_message() {
    let t = TestStore::new();
    let s = t.open().await;
    let err = s.chat.get_conversation("no-such-conversation").await.unwrap_err();
    let v = serde_json::to_value(&err).unwrap();
    assert_eq!(v["kind"], "not_found");
    assert!(v["message"].as_str().unwrap().contains("no-such-conversation"), "{v}");
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_service_serves_two_tasks_and_refuses_every_call_after_shutdown() {
    use cloudops_storage_service::ErrorKind;
    use cloudops_storage_service::{NewMessage, Role};
    use std::sync::Arc;

    let t = TestStore::new();
    let s = Arc::new(t.open().await);
    let ctx = s.chat.create_conversation("u", "certs", json!({})).await.unwrap();
    let tasks: Vec<_> = (0..2)
        .map(|task| {
            let (s, ctx) = (s.clone(), ctx.clone());
            tokio::spawn(async move {
                for j in 0..10 {
                    let text = format!("task {task} message {j} about the TLS certificate");
                    s.chat.append(&ctx, NewMessage::new(Role::User, text)).await.unwrap();
                }
                let found = s
                    .chat
                    .search_conversations("u", "certificate", &SearchOptions::default())
                    .await
                    .unwrap();
                found.conversations.len()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 1);
    }
    let history = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap();
    let indexes: Vec<u64> = history.iter().map(|m| m.message_index).collect();
    assert_eq!(indexes, (0..20).collect::<Vec<u64>>(), "gapless across both tasks");

    s.shutdown().await.unwrap();
    s.shutdown().await.unwrap(); // idempotent
    let kind = |e: cloudops_storage_service::StorageError| e.kind();
    let appended = s.chat.append(&ctx, NewMessage::new(Role::User, "late")).await;
    assert_eq!(appended.map(|_| ()).map_err(kind), Err(ErrorKind::ShutDown));
    let read = s.chat.get_history(&ctx, HistoryRange::All).await;
    assert_eq!(read.map(|_| ()).map_err(kind), Err(ErrorKind::ShutDown));
    let searched = s.estate.search("database", &ResourceFilter::default(), 5).await;
    assert_eq!(searched.map(|_| ()).map_err(kind), Err(ErrorKind::ShutDown));
    let backup = s.backup.create_snapshot().await;
    let backup = backup.map_err(cloudops_storage_service::StorageError::from);
    assert_eq!(backup.map(|_| ()).map_err(kind), Err(ErrorKind::ShutDown));
    assert_eq!(s.health().await.map(|_| ()).map_err(kind), Err(ErrorKind::ShutDown));
    let err = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap_err();
    assert_eq!(serde_json::to_value(&err).unwrap()["kind"], "shut_down");

    // The data dir is free again while the old handle still lives, and nothing was lost.
    let again = t.open().await;
    assert_eq!(again.chat.get_history(&ctx, HistoryRange::All).await.unwrap().len(), 20);
    again.shutdown().await.unwrap();
    drop(s);
}

/// Built without `s3`: a configured S3 target is refused at open, naming the feature, and
/// nothing is created.
#[cfg(not(feature = "s3"))]
#[tokio::test]
async fn a_configured_s3_target_without_the_s3_feature_is_a_config_error() {
    let t = TestStore::new();
    let mut config = t.config();
    config.backup.s3 = Some(cloudops_storage_service::S3Config::new("backups"));
    let err = cloudops_storage_service::StorageService::open(config)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), cloudops_storage_service::ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("`s3`"), "{err}");
    assert!(!t.data_dir().exists(), "the refused open created the store");
}

/// Built without `bert`: asking for the local model is refused at open, naming the feature;
/// `auto` falls back to keyword search.
#[cfg(not(feature = "bert"))]
#[tokio::test]
async fn the_local_model_without_the_bert_feature_is_a_config_error_and_auto_is_keyword_only() {
    let t = TestStore::new();
    let mut config = t.config();
    config.embedding.provider = cloudops_storage_service::EmbeddingProvider::Bert;
    let err = cloudops_storage_service::StorageService::open(config.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), cloudops_storage_service::ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("`bert`"), "{err}");
    config.embedding.provider = cloudops_storage_service::EmbeddingProvider::Auto;
    let s = cloudops_storage_service::StorageService::open(config).await.unwrap();
    assert!(s.health().await.unwrap().embedding_model.is_none());
    s.shutdown().await.unwrap();
}
