//! Chat storage behaviour: persistence, ordering, pagination, concurrency, deletes, limits.

use cloudops_storage_service::{ConversationStatus, ConversationUpdate, HistoryRange, NewMessage, Role};
use cloudops_storage_service::{ErrorKind, StorageError};
use serde_json::json;

use crate::common::TestStore;

fn user(text: &str) -> NewMessage {
    NewMessage::new(Role::User, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_across_restart() {
    let t = TestStore::new();
    let ctx;
    {
        let s = t.open().await;
        ctx = s
            .chat
            .create_conversation("alice", "Costs", json!({"agent_type": "cost"}))
            .await
            .unwrap();
        for i in 0..3 {
            let m = s
                .chat
                .append(
                    &ctx,
                    NewMessage {
                        role: Role::Assistant,
                        content: format!("m{i}"),
                        metadata: Some(json!({"i": i})),
                    },
                )
                .await
                .unwrap();
            assert_eq!(m.message_index, i);
        }
        s.shutdown().await.unwrap();
    }
    let s = t.open().await;
    let conv = s.chat.get_conversation(&ctx).await.unwrap();
    assert_eq!(
        (conv.title.as_str(), conv.message_count, conv.user_id.as_str()),
        ("Costs", 3, "alice")
    );
    assert_eq!(conv.metadata, json!({"agent_type": "cost"}));
    let history = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap();
    let contents: Vec<_> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["m0", "m1", "m2"]);
    assert_eq!(history[2].metadata, Some(json!({"i": 2})));
    // Appending after a restart continues the sequence.
    assert_eq!(s.chat.append(&ctx, user("m3")).await.unwrap().message_index, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_ordering_and_pagination() {
    let t = TestStore::new();
    let s = t.open().await;
    let ctx = s.chat.create_conversation("u", "t", json!({})).await.unwrap();
    for i in 0..25 {
        s.chat.append(&ctx, user(&format!("m{i}"))).await.unwrap();
    }
    let idx = |ms: Vec<cloudops_storage_service::Message>| ms.iter().map(|m| m.message_index).collect::<Vec<_>>();
    assert_eq!(
        idx(s.chat.get_history(&ctx, HistoryRange::Last(5)).await.unwrap()),
        vec![20, 21, 22, 23, 24]
    );
    assert_eq!(
        idx(s
            .chat
            .get_history(&ctx, HistoryRange::Before { index: 10, limit: 3 })
            .await
            .unwrap()),
        vec![7, 8, 9]
    );
    assert_eq!(
        idx(s
            .chat
            .get_history(&ctx, HistoryRange::After { index: 20, limit: 10 })
            .await
            .unwrap()),
        vec![21, 22, 23, 24]
    );
    assert_eq!(
        idx(s
            .chat
            .get_history(&ctx, HistoryRange::Before { index: 0, limit: 3 })
            .await
            .unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        idx(s.chat.get_history(&ctx, HistoryRange::All).await.unwrap()),
        (0..25).collect::<Vec<_>>()
    );
    assert_eq!(
        idx(s.chat.get_history(&ctx, HistoryRange::Last(100)).await.unwrap()).len(),
        25
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_history_pages_past_one_store_page() {
    let t = TestStore::new();
    let s = t.open().await;
    let ctx = s.chat.create_conversation("u", "long", json!({})).await.unwrap();
    for i in 0..2100 {
        s.chat.append(&ctx, user(&format!("m{i}"))).await.unwrap();
    }
    let all = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap();
    assert_eq!(all.len(), 2100);
    assert!(all
        .iter()
        .enumerate()
        .all(|(i, m)| m.message_index == i as u64 && m.content == format!("m{i}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_gapless_and_unique() {
    let t = TestStore::new();
    let s = std::sync::Arc::new(t.open().await);
    let ctx = s.chat.create_conversation("u", "busy", json!({})).await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..8 {
        let s = s.clone();
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..200 {
                got.push(
                    s.chat
                        .append(&ctx, user(&format!("t{task}-{i}")))
                        .await
                        .unwrap()
                        .message_index,
                );
            }
            got
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..1600).collect::<Vec<u64>>());
    let stored = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap();
    assert_eq!(stored.len(), 1600);
    assert!(stored.iter().enumerate().all(|(i, m)| m.message_index == i as u64));
    assert_eq!(s.chat.get_conversation(&ctx).await.unwrap().message_count, 1600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_newest_first_with_cursor_and_status() {
    let t = TestStore::new();
    let s = t.open().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            s.chat
                .create_conversation("alice", &format!("c{i}"), json!({}))
                .await
                .unwrap(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    s.chat.create_conversation("bob", "other", json!({})).await.unwrap();
    // Activity moves c2 to the top.
    s.chat.append(&ids[2], user("bump")).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .chat
            .list_conversations("alice", None, 3, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.conversations.len() <= 3);
        seen.extend(page.conversations.iter().map(|c| c.title.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["c2", "c6", "c5", "c4", "c3", "c1", "c0"]);
    s.chat
        .update_conversation(
            &ids[0],
            ConversationUpdate {
                status: Some(ConversationStatus::Archived),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let active = s
        .chat
        .list_conversations("alice", Some(ConversationStatus::Active), 50, None)
        .await
        .unwrap();
    assert_eq!(active.conversations.len(), 6);
    let archived = s
        .chat
        .list_conversations("alice", Some(ConversationStatus::Archived), 50, None)
        .await
        .unwrap();
    assert_eq!(archived.conversations[0].title, "c0");
    assert_eq!(s.chat.all_conversations("alice").await.unwrap().len(), 7);
    let err = s
        .chat
        .list_conversations("alice", None, 3, Some("garbage"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_metadata_update_persist() {
    let t = TestStore::new();
    let ctx;
    {
        let s = t.open().await;
        ctx = s.chat.create_conversation("u", "old", json!({})).await.unwrap();
        let updated = s
            .chat
            .update_conversation(
                &ctx,
                ConversationUpdate {
                    title: Some("new".into()),
                    metadata: Some(json!({"k": 1})),
                    status: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(updated.title, "new");
        s.shutdown().await.unwrap();
    }
    let s = t.open().await;
    let c = s.chat.get_conversation(&ctx).await.unwrap();
    assert_eq!((c.title.as_str(), c.metadata.clone()), ("new", json!({"k": 1})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_erase_user_are_hard_and_scoped() {
    let t = TestStore::new();
    let s = t.open().await;
    let a1 = s.chat.create_conversation("alice", "a1", json!({})).await.unwrap();
    let a2 = s.chat.create_conversation("alice", "a2", json!({})).await.unwrap();
    let b1 = s.chat.create_conversation("bob", "b1", json!({})).await.unwrap();
    for ctx in [&a1, &a2, &b1] {
        for i in 0..4 {
            s.chat.append(ctx, user(&format!("x{i}"))).await.unwrap();
        }
    }
    let receipt = s.chat.delete_conversation(&a1).await.unwrap();
    assert_eq!((receipt.conversations, receipt.messages), (1, 4));
    assert!(matches!(
        s.chat.get_conversation(&a1).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.chat.append(&a1, user("late")).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.chat.delete_conversation(&a1).await,
        Err(StorageError::NotFound { .. })
    ));

    let receipt = s.chat.erase_user("alice").await.unwrap();
    assert_eq!((receipt.conversations, receipt.messages), (1, 4));
    assert!(s.chat.all_conversations("alice").await.unwrap().is_empty());
    assert!(matches!(
        s.chat.append(&a2, user("late")).await,
        Err(StorageError::NotFound { .. })
    ));
    // Bob is untouched.
    assert_eq!(s.chat.get_history(&b1, HistoryRange::All).await.unwrap().len(), 4);
    let health = s.health().await.unwrap();
    let points = |name: &str| health.collections.iter().find(|c| c.name == name).unwrap().points;
    assert_eq!((points("chat_conversations"), points("chat_messages")), (1, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_changes_nothing() {
    let t = TestStore::new();
    let s = t.open().await;
    let ctx = s.chat.create_conversation("u", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, user("ok")).await.unwrap();
    let big = "x".repeat(1024 * 1024 + 1);
    let err = s.chat.append(&ctx, user(&big)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("chat.max_message_bytes"), "{err}");
    let err = s
        .chat
        .append("4b1d0000-0000-4000-8000-000000000000", user("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(s.chat.create_conversation("", "t", json!({})).await.is_err());
    assert!(s.chat.create_conversation("u\n", "t", json!({})).await.is_err());
    assert!(s
        .chat
        .get_history("no-such-context", HistoryRange::Last(5))
        .await
        .is_err());
    // Exactly at the limit is accepted.
    s.chat.append(&ctx, user(&"y".repeat(1024 * 1024))).await.unwrap();
    let history = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].message_index, 1, "the rejected append consumed no index");
}
