//! Failure paths with injected faults: the real store underneath, one chosen write, flush or
//! snapshot failing (`store::faulty`), and what the user sees afterwards. Each failure is a
//! clear error, the store stays readable, and nothing acknowledged is lost.

use cloudops_storage_service::store::faulty::{Fault, FaultOp};
use cloudops_storage_service::{
    AWSResource, DataKeyEpoch, HistoryRange, NewMessage, ResourceFilter, Role, StorageService, SyncScope,
};
use serde_json::json;

use crate::common::{open_faulty, TestStore};

fn fault(op: FaultOp, collection: &str, skip: usize) -> Fault {
    Fault {
        op,
        collection: Some(collection.into()),
        skip,
    }
}

async fn contents(s: &StorageService, ctx: &str) -> Vec<(u64, String)> {
    s.chat
        .get_history(ctx, HistoryRange::All)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.message_index, m.content))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_loses_nothing_and_leaves_no_gap() {
    let t = TestStore::new();
    let (s, faulty) = open_faulty(&t).await;
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "one")).await.unwrap();
    faulty.fail(fault(FaultOp::Upsert, "chat_messages", 0));
    let err = s
        .chat
        .append(&ctx, NewMessage::new(Role::User, "lost"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(faulty.injected().len(), 1);
    // The failed message was never acknowledged; the next one takes its index.
    let two = s.chat.append(&ctx, NewMessage::new(Role::User, "two")).await.unwrap();
    assert_eq!(two.message_index, 1);
    assert_eq!(contents(&s, &ctx).await, vec![(0, "one".into()), (1, "two".into())]);
    s.shutdown().await.unwrap();
    let s = t.open().await;
    assert_eq!(contents(&s, &ctx).await, vec![(0, "one".into()), (1, "two".into())]);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_summary_update_fails_is_kept_and_the_summary_repaired() {
    let t = TestStore::new();
    let (s, faulty) = open_faulty(&t).await;
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    faulty.fail(fault(FaultOp::SetPayload, "chat_conversations", 0));
    // The message itself is stored: the append is acknowledged.
    let m = s.chat.append(&ctx, NewMessage::new(Role::User, "kept")).await.unwrap();
    assert_eq!(faulty.injected().len(), 1);
    assert_eq!(m.message_index, 0);
    s.shutdown().await.unwrap();
    let s = t.open().await;
    assert_eq!(contents(&s, &ctx).await, vec![(0, "kept".into())]);
    let next = s.chat.append(&ctx, NewMessage::new(Role::User, "next")).await.unwrap();
    assert_eq!(next.message_index, 1, "the count was repaired from the messages");
    assert_eq!(s.chat.get_conversation(&ctx).await.unwrap().message_count, 2);
    s.shutdown().await.unwrap();
}

fn instance(id: &str) -> AWSResource {
    AWSResource {
        resource_type: "ec2:instance".into(),
        identifier: id.into(),
        account_id: "123456789012".into(),
        region: "eu-west-1".into(),
        service: "ec2".into(),
        state: Some("running".into()),
        ..AWSResource::default()
    }
}

async fn live_ids(s: &StorageService) -> Vec<String> {
    let mut ids: Vec<String> = s
        .estate
        .list(&ResourceFilter::default(), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.identifier)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_fails_midway_leaves_a_readable_estate_and_a_retry_converges() {
    let t = TestStore::new();
    let (s, faulty) = open_faulty(&t).await;
    let scope = SyncScope {
        account_id: "123456789012".into(),
        regions: None,
        resource_types: None,
    };
    s.estate.sync(&scope, vec![instance("a"), instance("b")]).await.unwrap();
    for (op, what) in [
        (FaultOp::Upsert, "the upsert"),
        (FaultOp::SetPayload, "the tombstoning"),
    ] {
        faulty.fail(fault(op, "aws_estate", 0));
        let err = s
            .estate
            .sync(&scope, vec![instance("b"), instance("c")])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("injected"), "{what}: {err}");
        // Readable, and "a" (acknowledged by the first sync, not yet gone) is still there.
        let ids = live_ids(&s).await;
        assert!(
            ids.contains(&"a".to_string()) && ids.contains(&"b".to_string()),
            "{what}: {ids:?}"
        );
    }
    assert_eq!(faulty.injected().len(), 2);
    let report = s.estate.sync(&scope, vec![instance("b"), instance("c")]).await.unwrap();
    assert_eq!(report.tombstoned, 1);
    assert_eq!(live_ids(&s).await, vec!["b", "c"]);
    s.shutdown().await.unwrap();
    let s = t.open().await;
    assert_eq!(live_ids(&s).await, vec!["b", "c"]);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_snapshot_leaves_no_backup_files_and_the_next_one_works() {
    let t = TestStore::new();
    let (s, faulty) = open_faulty(&t).await;
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "one")).await.unwrap();
    faulty.fail(Fault {
        op: FaultOp::Snapshot,
        collection: None,
        skip: 0,
    });
    let err = s.backup.create_snapshot().await.unwrap_err();
    assert!(
        err.to_string().contains("injected") || format!("{err:?}").contains("injected"),
        "{err:?}"
    );
    let leftovers: Vec<String> = std::fs::read_dir(t.data_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let backups = std::fs::read_dir(s.backup.dir()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(backups, 0, "a failed backup left files");
    assert!(s.backup.list().unwrap().is_empty());
    // Writes and reads go on, and the next backup succeeds.
    s.chat.append(&ctx, NewMessage::new(Role::User, "two")).await.unwrap();
    let m = s.backup.create_snapshot().await.unwrap();
    assert_eq!(s.backup.list().unwrap()[0].name, m.name);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_is_reported_and_acknowledged_writes_survive_a_reopen() {
    let t = TestStore::new();
    let (s, faulty) = open_faulty(&t).await;
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    s.chat
        .append(&ctx, NewMessage::new(Role::User, "journaled"))
        .await
        .unwrap();
    faulty.fail(Fault {
        op: FaultOp::Flush,
        collection: None,
        skip: 0,
    });
    let err = s.flush().await.unwrap_err();
    assert!(
        err.to_string().contains("injected") || format!("{err:?}").contains("injected"),
        "{err:?}"
    );
    s.shutdown().await.unwrap();
    let s = t.open().await;
    assert_eq!(contents(&s, &ctx).await, vec![(0, "journaled".into())]);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_that_cannot_write_its_key_keeps_the_old_key_working() {
    let t = TestStore::new();
    let s = t.open().await;
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "kept")).await.unwrap();
    // The new key file's folder cannot be created: a regular file stands in its way.
    let blocker = t.dir.path().join("not-a-folder");
    std::fs::write(&blocker, "x").unwrap();
    let mut to = s.config().keys.clone();
    to.file = Some(blocker.join("master.key"));
    let err = s.rotate_kek(to, DataKeyEpoch::Keep).await.unwrap_err();
    assert!(err.to_string().contains("key file"), "{err}");
    s.shutdown().await.unwrap();
    let s = t.open().await;
    assert_eq!(contents(&s, &ctx).await, vec![(0, "kept".into())]);
    assert_eq!(s.key_status().kek_rotated_at_ms, None);
    s.shutdown().await.unwrap();
}
