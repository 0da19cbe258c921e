//! Opening, health and crash safety.

use std::io::BufRead as _;
use std::process::{Command, Stdio};

use cloudops_storage_service::{ErrorKind, StorageConfig, StorageService};
use cloudops_storage_service::{HistoryRange, NewMessage, Role};
use serde_json::json;

use crate::common::TestStore;

const CHILD_DIR_VAR: &str = "CLOUDOPS_CRASH_CHILD_DIR";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_store_is_not_created_without_permission() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nothing-here");
    let mut config = StorageConfig::builder()
        .with_config(cloudops_storage_service::ConfigKey::EmbeddingProvider, "none")
        .with_data_dir(&data)
        .with_create_if_missing(false)
        .build()
        .unwrap();
    config.keys.source = cloudops_storage_service::KeySourceKind::File;
    let err = StorageService::open(config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotInitialized);
    assert!(err.to_string().contains("cloudops-storage init"));
    assert!(!data.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_keys_json_is_missing_is_refused_not_given_new_keys() {
    let t = TestStore::new();
    let s = t.open().await;
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "kept")).await.unwrap();
    s.shutdown().await.unwrap();
    let keys = t.data_dir().join("keys.json");
    let saved = std::fs::read(&keys).unwrap();
    std::fs::remove_file(&keys).unwrap();

    // The app's default (create_if_missing) must not paper over the loss with new keys.
    let err = StorageService::open(t.config()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Crypto, "{err}");
    assert!(
        err.to_string().contains("keys.json") && err.to_string().contains("refusing"),
        "{err}"
    );
    assert!(!keys.exists(), "new keys were written");

    // Put back, everything reads again.
    std::fs::write(&keys, saved).unwrap();
    let s = t.open().await;
    assert_eq!(
        s.chat.get_history(&ctx, HistoryRange::All).await.unwrap()[0].content,
        "kept"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_collections_keys_and_disk() {
    let t = TestStore::new();
    let s = t.open().await;
    let ctx = s.chat.create_conversation("u", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "x")).await.unwrap();
    let h = s.health().await.unwrap();
    assert!(h.store_reachable);
    assert_eq!(h.data_dir, t.data_dir());
    assert_eq!(h.key_source, cloudops_storage_service::KeySourceKind::File);
    let names: Vec<_> = h.collections.iter().map(|c| (c.name.as_str(), c.points)).collect();
    assert_eq!(
        names,
        [
            ("aws_estate", 0),
            ("chat_conversations", 1),
            ("chat_messages", 1),
            ("store_meta", 0)
        ]
    );
    assert!(h.disk_free_bytes.unwrap() > 0 && h.data_dir_bytes > 0);
    s.shutdown().await.unwrap();
}

/// Child side of the crash test: appends forever, printing each acknowledged index.
/// Runs only when spawned by `acknowledged_appends_survive_sigkill`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of acknowledged_appends_survive_sigkill"]
async fn crash_child_appends_until_killed() {
    use std::io::Write as _;
    let dir = std::env::var(CHILD_DIR_VAR).expect("spawned by the crash test");
    let config = crate::config_in(std::path::Path::new(&dir));
    let s = StorageService::open(config).await.unwrap();
    let ctx = std::fs::read_to_string(std::path::Path::new(&dir).join("context_id")).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let m = s
            .chat
            .append(&ctx, NewMessage::new(Role::User, format!("crash message {i}")))
            .await
            .unwrap();
        writeln!(out, "ACK {} {}", m.message_index, m.content).unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::config_in(dir.path());
    let ctx = {
        let s = StorageService::open(config.clone()).await.unwrap();
        let ctx = s.chat.create_conversation("u", "crash", json!({})).await.unwrap();
        s.shutdown().await.unwrap();
        ctx
    };
    std::fs::write(dir.path().join("context_id"), &ctx).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lifecycle::crash_child_appends_until_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (index, content) = rest.split_once(' ').unwrap();
            acked.push((index.parse::<u64>().unwrap(), content.to_string()));
            if acked.len() == 300 {
                // SIGKILL: no destructor, no flush.
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), 300, "child stopped early");
    let s = StorageService::open(config)
        .await
        .expect("store opens cleanly after SIGKILL");
    let history = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap();
    for (index, content) in &acked {
        let m = history
            .get(*index as usize)
            .unwrap_or_else(|| panic!("acknowledged message {index} lost"));
        assert_eq!((&m.message_index, &m.content), (index, content));
    }
    assert!(
        history.iter().enumerate().all(|(i, m)| m.message_index == i as u64),
        "no gap after the crash"
    );
    let next = s
        .chat
        .append(&ctx, NewMessage::new(Role::User, "after crash"))
        .await
        .unwrap();
    assert_eq!(next.message_index, history.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_conversation_summary_is_repaired_from_messages() {
    use cloudops_storage_service::store::{EmbeddedStore, Payload, VectorStore};
    let t = TestStore::new();
    let ctx = {
        let s = t.open().await;
        let ctx = s.chat.create_conversation("u", "t", json!({})).await.unwrap();
        s.chat.append(&ctx, NewMessage::new(Role::User, "a")).await.unwrap();
        s.chat.append(&ctx, NewMessage::new(Role::User, "b")).await.unwrap();
        s.shutdown().await.unwrap();
        ctx
    };
    {
        // As after a crash between storing a message and updating its conversation.
        let raw = EmbeddedStore::open(&t.data_dir()).unwrap();
        let mut stale = Payload::new();
        stale.insert("message_count".into(), json!(0));
        stale.insert("updated_at".into(), json!(0));
        raw.set_payload("chat_conversations", vec![uuid::Uuid::parse_str(&ctx).unwrap()], stale)
            .await
            .unwrap();
        raw.flush().await.unwrap();
    }
    let s = t.open().await;
    assert_eq!(s.chat.get_conversation(&ctx).await.unwrap().message_count, 0);
    let next = s.chat.append(&ctx, NewMessage::new(Role::User, "c")).await.unwrap();
    assert_eq!(
        next.message_index, 2,
        "index recovered from the messages, not the stale count"
    );
    let c = s.chat.get_conversation(&ctx).await.unwrap();
    assert_eq!(c.message_count, 3);
    assert_eq!(c.updated_at, next.created_at);
}
