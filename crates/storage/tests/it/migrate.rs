//! Import of the Node.js module's chat-data folder.

use cloudops_storage_service::{HistoryRange, Role, SearchMode, SearchOptions};

use crate::common::{now_ms, TestStore};

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
    let report = s
        .chat
        .import_node_dir(&src, None, &|p| calls.lock().unwrap().push((p.done, p.total)))
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

    let alice = s.chat.all_conversations("alice").await.unwrap();
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
        s.chat.all_conversations("bob-smith").await.unwrap().len(),
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
            cloudops_storage_service::NewMessage::new(Role::User, "thanks"),
        )
        .await
        .unwrap();
    assert_eq!(m.message_index, 2);

    // A second run adds nothing.
    let again = s.chat.import_node_dir(&src, None, &|_| {}).await.unwrap();
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
    let report = s
        .chat
        .import_node_dir(&src.join("contexts"), Some("carol"), &|_| {})
        .await
        .unwrap();
    // With --user, the broken file still fails; the others (3 + none half-imported) go to carol.
    assert_eq!(report.imported, 3);
    assert_eq!(s.chat.all_conversations("carol").await.unwrap().len(), 3);
    assert!(s.chat.all_conversations("alice").await.unwrap().is_empty());
    s.shutdown().await.unwrap();
}

/// A folder as the old module itself wrote it: `context_id` is the user-extended id (the file
/// stem), `i` the bare id with dashes in it, a millisecond `timestamp` at the top level and
/// streaming data under `raw/`; plus one file of the bare layout and one that is ambiguous.
fn old_module_chat_data(dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("chat-data");
    let contexts = root.join("contexts");
    let raw = root.join("raw");
    std::fs::create_dir_all(&contexts).unwrap();
    std::fs::create_dir_all(&raw).unwrap();
    std::fs::create_dir_all(contexts.join("raw")).unwrap();
    let file = |user: &str, bare: &str, title: &str, messages: &[(u8, &str)], t: i64, extended: bool| {
        let m: Vec<serde_json::Value> = messages
            .iter()
            .map(|(r, c)| serde_json::json!({"r": r, "c": c}))
            .collect();
        let full = format!("{user}-{bare}");
        let context_id = if extended { full.clone() } else { bare.to_string() };
        let body = serde_json::json!({
            "agent_type": "aws",
            "chat_title": title,
            "context_id": context_id,
            "timestamp": (t + 700) * 1000 + 123,
            "final_conversation_context": {"i": bare, "m": m, "t": t, "l": t + 600},
            "processing_results": {"clean_response": "x", "clean_response_length": 1}
        });
        std::fs::write(contexts.join(format!("{full}.json")), body.to_string()).unwrap();
        std::fs::write(raw.join(format!("{full}-raw.json")), r#"{"chunks":["streaming data"]}"#).unwrap();
        full
    };
    let now = now_ms() / 1000;
    file(
        "user-7",
        "1795532942000-k3f9x2m8q1z7a",
        "Postgres failover",
        &[
            (0, "How do I fail over the postgres primary pg-main?"),
            (1, "Promote the standby replica with a reboot with failover."),
        ],
        now - 3600,
        true,
    );
    file(
        "user-7",
        "1795533000000-a0b1c2d3e4f5g",
        "S3 lifecycle",
        &[
            (0, "Move old logs in the audit bucket to Glacier"),
            (1, "Add a lifecycle rule that transitions objects after 30 days."),
        ],
        now - 7200,
        true,
    );
    file(
        "user-7",
        "1795533100000-zzzzzzzzzzzzz",
        "Current chat",
        &[(0, "postgres failover again?"), (1, "Yes, see before.")],
        now - 60,
        true,
    );
    // Another writer's bare layout in the same folder.
    file(
        "user-7",
        "1795533200000-bare000000000",
        "Lambda memory",
        &[(0, "Raise the Lambda memory"), (1, "Set it to 1024 MB.")],
        now - 9000,
        false,
    );
    // A streaming file that landed in contexts/ too.
    std::fs::write(
        contexts.join("user-7-1795533300000-rawrawrawrawr-raw.json"),
        "{\"partial\": true",
    )
    .unwrap();
    // Readings that disagree: the name says user-7, the context_id says mallory.
    std::fs::write(
        contexts.join("user-7-mallory-1795533400000-qqqqqqqqqqqqq.json"),
        serde_json::json!({
            "context_id": "mallory-1795533400000-qqqqqqqqqqqqq",
            "final_conversation_context": {"i": "1795533400000-qqqqqqqqqqqqq", "m": [], "t": 1, "l": 2}
        })
        .to_string(),
    )
    .unwrap();
    root
}

#[tokio::test]
async fn the_old_modules_own_layout_imports_and_feeds_the_prompt_context() {
    let t = TestStore::new();
    let src = old_module_chat_data(t.dir.path());
    let s = t.open().await;
    let report = s.chat.import_node_dir(&src, None, &|_| {}).await.unwrap();
    assert_eq!(
        (report.imported, report.messages, report.ignored),
        (4, 8, 1),
        "{report:?}"
    );
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    let failed = &report.failed[0];
    assert!(failed.path.ends_with("user-7-mallory-1795533400000-qqqqqqqqqqqqq.json"));
    assert!(
        failed.reason.contains("says user `user-7`")
            && failed.reason.contains("says `mallory`")
            && failed.reason.contains("--user"),
        "{}",
        failed.reason
    );

    let mut contexts = s.chat.all_conversations("user-7").await.unwrap();
    contexts.sort_by(|a, b| a.context_id.cmp(&b.context_id));
    let ids: Vec<&str> = contexts.iter().map(|c| c.context_id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "1795533200000-bare000000000",
            "user-7-1795532942000-k3f9x2m8q1z7a",
            "user-7-1795533000000-a0b1c2d3e4f5g",
            "user-7-1795533100000-zzzzzzzzzzzzz",
        ]
    );
    let pg = &contexts[1];
    assert_eq!(pg.title, "Postgres failover");
    // t/l are seconds; the millisecond `timestamp` is kept as metadata, not read as seconds.
    assert_eq!(pg.updated_at - pg.created_at, 600_000);
    assert_eq!(
        pg.metadata["timestamp"].as_i64().unwrap(),
        pg.created_at + 700_000 + 123
    );

    // The prompt context for the current chat: pairs from the others, never from itself.
    let context = s
        .chat
        .context_for_prompt(
            "user-7",
            "user-7-1795533100000-zzzzzzzzzzzzz",
            "postgres failover",
            cloudops_storage_service::ContextOptions::default(),
        )
        .await
        .unwrap();
    assert!(!context.pairs.is_empty());
    assert!(context
        .pairs
        .iter()
        .all(|p| p.context_id != "user-7-1795533100000-zzzzzzzzzzzzz"));
    let first = &context.pairs[0];
    assert_eq!(first.context_id, "user-7-1795532942000-k3f9x2m8q1z7a");
    assert_eq!(first.user, "How do I fail over the postgres primary pg-main?");
    assert_eq!(
        first.assistant,
        "Promote the standby replica with a reboot with failover."
    );
    assert!(!context.fallback, "a relevant pair was found");
    assert!(context.render().contains("pg-main"));

    // Idempotent in this layout too.
    let again = s.chat.import_node_dir(&src, None, &|_| {}).await.unwrap();
    assert_eq!((again.imported, again.skipped), (0, 4));
    s.shutdown().await.unwrap();
}

/// A chat-data folder of `files` × `per_file` messages for user `u`, the first message of the
/// first file about a TLS certificate (to be found by meaning).
fn bulk_chat_data(dir: &std::path::Path, files: usize, per_file: usize) -> std::path::PathBuf {
    let contexts = dir.join("bulk/contexts");
    std::fs::create_dir_all(&contexts).unwrap();
    for f in 0..files {
        let messages: Vec<(u8, String)> = (0..per_file)
            .map(|i| {
                let text = if f == 0 && i == 0 {
                    "The TLS certificate of the shop expires next week".to_string()
                } else {
                    format!("Message {i} of chat {f} about scaling group sizes and instance quotas")
                };
                ((i % 2) as u8, text)
            })
            .collect();
        let refs: Vec<(u8, &str)> = messages.iter().map(|(r, c)| (*r, c.as_str())).collect();
        std::fs::write(
            contexts.join(format!("u-bulk{f:04}.json")),
            node_file(
                &format!("bulk{f:04}"),
                &format!("Chat {f}"),
                &refs,
                1_700_000_000 + f as i64,
            ),
        )
        .unwrap();
    }
    dir.join("bulk")
}

/// User `u`'s conversations matching `query`.
async fn search(
    s: &cloudops_storage_service::StorageService,
    mode: SearchMode,
    query: &str,
) -> cloudops_storage_service::SearchResults {
    let options = SearchOptions {
        mode,
        ..Default::default()
    };
    s.chat.search_conversations("u", query, &options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_with_a_model_does_not_wait_for_embeddings() {
    use cloudops_storage_service::StorageService;
    let Some(model) = crate::common::test_model_dir() else {
        return;
    };
    let t = TestStore::new();
    let src = bulk_chat_data(t.dir.path(), 30, 20);
    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    let report = s.chat.import_node_dir(&src, None, &|_| {}).await.unwrap();
    assert_eq!((report.imported, report.messages), (30, 600));
    // The import held the indexer: (almost) everything still waits for a vector.
    let pending = s.chat.pending_embeddings().await.unwrap();
    assert!(
        pending >= 600 - 64,
        "the import waited for the embedder: {pending} pending"
    );

    // Keyword search finds imported messages at once; semantic search says what it misses.
    let keyword = search(&s, SearchMode::Keyword, "certificate").await;
    assert_eq!(keyword.conversations[0].context_id, "bulk0000");
    assert_eq!(keyword.pending_embeddings, 0, "keyword search misses nothing");
    let semantic = search(&s, SearchMode::Semantic, "HTTPS cert about to lapse").await;
    assert!(semantic.pending_embeddings > 0);

    // Shutdown does not embed the backlog first; the next start does.
    s.shutdown().await.unwrap();
    let s = StorageService::open_for_reindex(t.config_with_model(&model))
        .await
        .unwrap();
    let left = s.chat.pending_embeddings().await.unwrap();
    assert!(left > 0, "shutdown embedded the whole import");
    s.shutdown().await.unwrap();

    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    s.chat.wait_for_index().await.unwrap();
    assert_eq!(s.chat.pending_embeddings().await.unwrap(), 0);
    let semantic = search(&s, SearchMode::Semantic, "HTTPS cert about to lapse").await;
    assert_eq!(semantic.pending_embeddings, 0);
    assert_eq!(semantic.conversations[0].context_id, "bulk0000");
    s.shutdown().await.unwrap();
}
