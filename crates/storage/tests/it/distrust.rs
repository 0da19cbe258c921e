//! A server that answers outside the request or puts back older values (issue 31, findings 6
//! and 7). The double is `store::faulty::FaultyStore` playing a hostile server over the real
//! embedded engine: it drops a filter field from reads, or adds records to reads by id, as a
//! compromised Qdrant server could. Every such reply must be refused (kind `tampered`), never
//! shown to the user who asked; with the double honest again the same calls answer as before.
//! Older sealed values are put back through the raw engine, as the server's operator could.

use cloudops_storage_service::{
    AWSResource, ContextOptions, ErrorKind, HistoryRange, NewMessage, ResourceFilter, Role, SearchMode, SearchOptions,
    StorageService,
};
use serde_json::json;

use crate::common::{open_faulty, raw_records, rewrite_records, TestStore};

fn assert_refused<T: std::fmt::Debug>(what: &str, r: cloudops_storage_service::Result<T>, secret: &str) {
    match r {
        Ok(v) => panic!("{what}: a reply outside the request was accepted: {v:?}"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Tampered, "{what}: {e}");
            assert!(e.to_string().contains("does not match the request"), "{what}: {e}");
            assert!(
                !e.to_string().contains(secret),
                "{what}: the error shows the content: {e}"
            );
        }
    }
}

/// Alice and Bob each have a conversation about the same thing; returns (alice's, bob's).
async fn two_users(s: &StorageService) -> (String, String) {
    let mut ids = Vec::new();
    for (user, words) in [("alice", "alice-own-words"), ("bob", "BOB-SECRET-WORDS")] {
        let ctx = s.chat.create_conversation(user, "kubernetes", json!({})).await.unwrap();
        s.chat
            .append(&ctx, NewMessage::new(Role::User, format!("kubernetes upgrade {words}")))
            .await
            .unwrap();
        s.chat
            .append(
                &ctx,
                NewMessage::new(Role::Assistant, format!("drain the kubernetes nodes {words}")),
            )
            .await
            .unwrap();
        ids.push(ctx);
    }
    (ids[0].clone(), ids[1].clone())
}

fn keyword() -> SearchOptions {
    SearchOptions {
        mode: SearchMode::Keyword,
        ..SearchOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_ignoring_the_user_filter_shows_no_user_another_users_messages() {
    let t = TestStore::new();
    let (s, hostile) = open_faulty(&t).await;
    let (alice, _bob) = two_users(&s).await;
    let other = s.chat.create_conversation("alice", "other", json!({})).await.unwrap();
    // Honest answers first: alice sees only her own.
    let found = s
        .chat
        .search_conversations("alice", "kubernetes", &keyword())
        .await
        .unwrap();
    assert_eq!(found.conversations.len(), 1);
    assert_eq!(found.conversations[0].context_id, alice);

    hostile.ignore_filter_on("user_id");
    let secret = "BOB-SECRET-WORDS";
    assert_refused(
        "search",
        s.chat.search_conversations("alice", "kubernetes", &keyword()).await,
        secret,
    );
    assert_refused("list", s.chat.list_conversations("alice", None, 10, None).await, secret);
    assert_refused(
        "prompt context",
        s.chat
            .context_for_prompt("alice", &other, "kubernetes upgrade", ContextOptions::default())
            .await,
        secret,
    );
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_ignoring_the_conversation_filter_or_adding_records_to_a_read_by_id_is_refused() {
    let t = TestStore::new();
    let (s, hostile) = open_faulty(&t).await;
    let (alice, bob) = two_users(&s).await;
    let secret = "BOB-SECRET-WORDS";

    hostile.ignore_filter_on("context_id");
    assert_refused("history", s.chat.get_history(&alice, HistoryRange::All).await, secret);
    assert_refused(
        "last messages",
        s.chat.get_history(&alice, HistoryRange::Last(5)).await,
        secret,
    );

    let (s, hostile) = {
        s.shutdown().await.unwrap();
        open_faulty(&t).await
    };
    // Alice asks for her conversation; the server adds Bob's to the answer.
    hostile.add_to_retrieves(vec![uuid::Uuid::parse_str(&bob).unwrap()]);
    assert_refused("conversation", s.chat.get_conversation(&alice).await, secret);
    s.shutdown().await.unwrap();

    // Honest again: everything reads as written.
    let s = t.open().await;
    assert_eq!(s.chat.get_history(&alice, HistoryRange::All).await.unwrap().len(), 2);
    assert_eq!(s.chat.get_conversation(&bob).await.unwrap().user_id, "bob");
    s.shutdown().await.unwrap();
}

fn instance(account: &str, id: &str) -> AWSResource {
    AWSResource {
        resource_type: "ec2:instance".into(),
        identifier: id.into(),
        account_id: account.into(),
        region: "eu-west-1".into(),
        service: "ec2".into(),
        name: Some(format!("web server {id}")),
        state: Some("running".into()),
        ..AWSResource::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_ignoring_the_account_filter_returns_no_other_accounts_resources() {
    let t = TestStore::new();
    let (s, hostile) = open_faulty(&t).await;
    s.estate
        .upsert_resource(instance("111111111111", "i-mine"))
        .await
        .unwrap();
    s.estate
        .upsert_resource(instance("222222222222", "i-OTHER-ACCOUNT"))
        .await
        .unwrap();
    let mine = ResourceFilter {
        account_id: Some("111111111111".into()),
        ..ResourceFilter::default()
    };
    assert_eq!(s.estate.list(&mine, 10).await.unwrap().len(), 1);
    assert_eq!(s.estate.search("web server", &mine, 10).await.unwrap().len(), 1);

    hostile.ignore_filter_on("account_id");
    let secret = "i-OTHER-ACCOUNT";
    assert_refused("list", s.estate.list(&mine, 10).await, secret);
    assert_refused("search", s.estate.search("web server", &mine, 10).await, secret);
    s.shutdown().await.unwrap();
}

/// The sealed value of `field` in the one record of `collection` whose `key` is `value`.
async fn sealed_value(t: &TestStore, collection: &str, key: &str, value: &str, field: &str) -> serde_json::Value {
    let records = raw_records(t, collection).await;
    let record = records.iter().find(|r| r.payload[key] == json!(value)).unwrap();
    record.payload[field].clone()
}

/// Put `old` back as `field` of the record of `collection` whose `key` is `value`.
async fn put_back(t: &TestStore, collection: &str, key: &str, value: &str, field: &str, old: &serde_json::Value) {
    rewrite_records(t, collection, |payload| {
        let mine = payload[key] == json!(value);
        if mine {
            payload.insert(field.into(), old.clone());
        }
        mine
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_title_or_metadata_put_back_alone_is_refused() {
    for field in ["title", "metadata"] {
        let t = TestStore::new();
        let s = t.open().await;
        let ctx = s
            .chat
            .create_conversation("alice", "first title", json!({"v": 1}))
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        let old = sealed_value(&t, "chat_conversations", "context_id", &ctx, field).await;
        let s = t.open().await;
        // Only the title changes; the metadata is resealed with it as one write.
        let update = cloudops_storage_service::ConversationUpdate {
            title: Some("second title".into()),
            ..Default::default()
        };
        s.chat.update_conversation(&ctx, update).await.unwrap();
        let now = s.chat.get_conversation(&ctx).await.unwrap();
        assert_eq!((now.title.as_str(), &now.metadata), ("second title", &json!({"v": 1})));
        s.shutdown().await.unwrap();

        put_back(&t, "chat_conversations", "context_id", &ctx, field, &old).await;
        let s = t.open().await;
        let err = s.chat.get_conversation(&ctx).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tampered, "{field}: {err}");
        s.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_tags_or_iam_put_back_alone_are_refused() {
    let resource = |env: &str, policy: &str| AWSResource {
        tags: Some([("env".to_string(), env.to_string())].into()),
        iam: Some(cloudops_storage_service::IAMPermissions {
            allowed_actions: vec![policy.to_string()],
            ..Default::default()
        }),
        ..instance("111111111111", "i-tagged")
    };
    for field in ["tags", "iam"] {
        let t = TestStore::new();
        let s = t.open().await;
        s.estate.upsert_resource(resource("dev", "read-only")).await.unwrap();
        s.shutdown().await.unwrap();
        let old = sealed_value(&t, "aws_estate", "account_id", "111111111111", field).await;
        let s = t.open().await;
        s.estate.upsert_resource(resource("prod", "admin")).await.unwrap();
        s.shutdown().await.unwrap();

        put_back(&t, "aws_estate", "account_id", "111111111111", field, &old).await;
        let s = t.open().await;
        let err = s.estate.list(&ResourceFilter::default(), 10).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tampered, "{field}: {err}");
        s.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_message_metadata_is_tampering_not_none() {
    for edit in ["removed", "nulled"] {
        let t = TestStore::new();
        let s = t.open().await;
        let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
        let mut m = NewMessage::new(Role::Assistant, "answer");
        m.metadata = Some(json!({"model": "m", "tool_calls": 2}));
        s.chat.append(&ctx, m).await.unwrap();
        s.shutdown().await.unwrap();
        rewrite_records(&t, "chat_messages", |payload| {
            match edit {
                "removed" => payload.remove("metadata"),
                _ => payload.insert("metadata".into(), serde_json::Value::Null),
            };
            true
        })
        .await;
        let s = t.open().await;
        let err = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Tampered | ErrorKind::Corrupt),
            "{edit}: {err}"
        );
        s.shutdown().await.unwrap();
    }
}
