//! Import of the Node.js module's chat-data folder.

use cloudops_storage_service::chat::{HistoryRange, Role, SearchMode, SearchOptions};
use cloudops_storage_service::migrate::node::import_dir;

use crate::common::TestStore;

fn node_file(context_id: &str, title: &str, messages: &[(u8, &str)], t: i64) -> String {
    let m: Vec<serde_json::Value> = messages
        .iter()
        .map(|(r, c)| serde_json::json!({"r": r, "c": c}))
        .collect();
    serde_json::json!({
        "agent_type": "cloudops",
        "chat_title": title,
        "context_id": context_id,
        "final_conversation_context": {"i": context_id, "m": m, "t": t, "l": t + 600},
        "processing_results": {"clean_response": "x", "clean_response_length": 1}
    })
    .to_string()
}

fn chat_data(dir: &std::path::Path) -> std::path::PathBuf {
    let contexts = dir.join("chat-data/contexts");
    std::fs::create_dir_all(&contexts).unwrap();
    let write = |name: &str, body: String| std::fs::write(contexts.join(name), body).unwrap();
    write(
        "alice-ctx_1700000000_a1.json",
        node_file(
            "ctx_1700000000_a1",
            "EC2 costs",
            &[
                (0, "Why is EC2 expensive?"),
                (1, "Idle m5 instances."),
                (0, "Stop them"),
                (1, "Stopped i-0abc123."),
            ],
            1_700_000_000,
        ),
    );
    write(
        "alice-ctx_1700000500_b2.json",
        node_file(
            "ctx_1700000500_b2",
            "RDS",
            &[(0, "Fail over pg-instance-main1"), (1, "Done.")],
            1_700_000_500,
        ),
    );
    write(
        "bob-smith-ctx_1700000900_c3.json",
        node_file(
            "ctx_1700000900_c3",
            "Lambda",
            &[(0, "Lambda timeouts?"), (1, "Raise the timeout.")],
            1_700_000_900,
        ),
    );
    write(
        "alice-broken.json",
        "{\"context_id\": \"broken\", \"final_conversation_context\": ".into(),
    );
    // Valid JSON with a bad message at the end: nothing of it may be imported.
    write(
        "alice-ctx_half.json",
        r#"{"context_id":"ctx_half","chat_title":"half","final_conversation_context":{"m":[{"r":0,"c":"first"},{"r":5,"c":"bad role"}],"t":1,"l":2}}"#.into(),
    );
    std::fs::write(contexts.join("notes.txt"), "not a context").unwrap();
    dir.join("chat-data")
}

#[tokio::test]
async fn node_chat_data_imports_once_in_order_and_skips_bad_files() {
    let t = TestStore::new();
    let src = chat_data(t.dir.path());
    let s = t.open().await;
    let calls = std::sync::Mutex::new(Vec::new());
    let report = import_dir(&s.chat, &src, None, &|done, total| {
        calls.lock().unwrap().push((done, total))
    })
    .await
    .unwrap();
    assert_eq!((report.imported, report.skipped, report.messages), (3, 0, 8));
    assert_eq!(report.failed.len(), 2, "{:?}", report.failed);
    let reasons: Vec<String> = report
        .failed
        .iter()
        .map(|f| format!("{}: {}", f.path.display(), f.reason))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("alice-broken.json") && r.contains("not valid JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("alice-ctx_half.json") && r.contains("m[1].r")),
        "{reasons:?}"
    );
    assert_eq!(
        calls.lock().unwrap().last(),
        Some(&(5, 5)),
        "progress over the five .json files"
    );

    let alice = s.chat.get_all_contexts("alice").await.unwrap();
    assert_eq!(alice.len(), 2, "the half-valid file left nothing");
    let ec2 = s.chat.get_conversation("ctx_1700000000_a1").await.unwrap();
    assert_eq!(ec2.title, "EC2 costs");
    assert_eq!(ec2.created_at, 1_700_000_000_000);
    assert_eq!(ec2.updated_at, 1_700_000_600_000);
    assert_eq!(ec2.message_count, 4);
    assert_eq!(ec2.metadata["agent_type"], "cloudops");
    assert_eq!(ec2.metadata["processing_results"]["clean_response_length"], 1);
    let history = s
        .chat
        .get_history("ctx_1700000000_a1", HistoryRange::All)
        .await
        .unwrap();
    let got: Vec<(u64, Role, &str)> = history
        .iter()
        .map(|m| (m.message_index, m.role, m.content.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Role::User, "Why is EC2 expensive?"),
            (1, Role::Assistant, "Idle m5 instances."),
            (2, Role::User, "Stop them"),
            (3, Role::Assistant, "Stopped i-0abc123."),
        ]
    );
    assert!(history.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    assert_eq!(
        s.chat.get_all_contexts("bob-smith").await.unwrap().len(),
        1,
        "user ids may contain '-'"
    );
    assert!(s.chat.get_history("ctx_half", HistoryRange::All).await.is_err());

    // Imported messages are searchable at once (keyword vectors are written with them).
    let r = s
        .chat
        .search_conversations(
            "alice",
            "i-0abc123",
            &SearchOptions {
                mode: SearchMode::Keyword,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.conversations[0].context_id, "ctx_1700000000_a1");

    // Appends continue after the imported messages.
    let m = s
        .chat
        .append(
            "ctx_1700000500_b2",
            cloudops_storage_service::chat::NewMessage::new(Role::User, "thanks"),
        )
        .await
        .unwrap();
    assert_eq!(m.message_index, 2);

    // A second run adds nothing.
    let again = import_dir(&s.chat, &src, None, &|_, _| {}).await.unwrap();
    assert_eq!((again.imported, again.skipped, again.messages), (0, 3, 0));
    assert_eq!(
        s.chat
            .get_history("ctx_1700000000_a1", HistoryRange::All)
            .await
            .unwrap()
            .len(),
        4
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn user_override_applies_to_every_file() {
    let t = TestStore::new();
    let src = chat_data(t.dir.path());
    let s = t.open().await;
    let report = import_dir(&s.chat, &src.join("contexts"), Some("carol"), &|_, _| {})
        .await
        .unwrap();
    // With --user, the broken file still fails; the others (3 + none half-imported) go to carol.
    assert_eq!(report.imported, 3);
    assert_eq!(s.chat.get_all_contexts("carol").await.unwrap().len(), 3);
    assert!(s.chat.get_all_contexts("alice").await.unwrap().is_empty());
    s.shutdown().await.unwrap();
}
