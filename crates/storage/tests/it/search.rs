//! Search: the real BERT model against sentence-transformers, keyed keyword search, semantic
//! and hybrid search scoped per user, the background indexer, vector rotation, model changes
//! and reindex, the OpenAI-compatible endpoint, and prompt context.

// Without the `bert` feature the model tests and their helpers are compiled out.
#![cfg_attr(not(feature = "bert"), allow(unused_imports, dead_code))]

use std::sync::Arc;

use cloudops_storage_service::store::{VectorData, VectorSelection};
#[cfg(feature = "bert")]
use cloudops_storage_service::BertEmbedder;
use cloudops_storage_service::Embedder;
#[cfg(feature = "http")]
use cloudops_storage_service::HttpEmbedder;
use cloudops_storage_service::{
    ArchivedFilter, ContextOptions, ConversationStatus, ConversationUpdate, ImportedConversation, NewMessage, Role,
    SearchMode, SearchOptions,
};
use cloudops_storage_service::{ErrorKind, StorageService};
use serde_json::{json, Value};

use cloudops_storage_service::Phase;

use crate::common::{now_ms, test_model_dir, TestStore};

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
}

fn opts(mode: SearchMode) -> SearchOptions {
    SearchOptions {
        mode,
        ..SearchOptions::default()
    }
}

async fn conversation(service: &StorageService, user: &str, title: &str, messages: &[(Role, &str)]) -> String {
    let ctx = service.chat.create_conversation(user, title, json!({})).await.unwrap();
    for (role, text) in messages {
        service.chat.append(&ctx, NewMessage::new(*role, *text)).await.unwrap();
    }
    ctx
}

#[cfg(feature = "bert")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bert_matches_sentence_transformers_reference_vectors() {
    let Some(dir) = test_model_dir() else { return };
    let bert = BertEmbedder::load(&dir).unwrap();
    assert_eq!(bert.dim(), 384);
    let fixture: Value = serde_json::from_str(include_str!("../fixtures/minilm_reference.json")).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    let texts: Vec<String> = cases.iter().map(|c| c["text"].as_str().unwrap().to_string()).collect();
    // One batched call over texts of very different lengths (one is past the 256-token limit).
    let got = bert.embed(&texts).await.unwrap();
    let mut worst = 1.0f32;
    for (case, v) in cases.iter().zip(&got) {
        let want: Vec<f32> = case["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let c = cosine(v, &want);
        worst = worst.min(c);
        assert!(c >= 0.99, "cosine {c} for {:?}", case["text"]);
        assert!((dot(v, v) - 1.0).abs() < 1e-4, "vectors are L2-normalised");
    }
    eprintln!("worst cosine against sentence-transformers: {worst:.6}");
    // Batching (sorting by length, per-batch padding) does not change a text's vector.
    let alone = bert.embed(&texts[..1]).await.unwrap();
    assert!(cosine(&alone[0], &got[0]) > 0.9999);
}

#[tokio::test]
async fn keyword_search_finds_identifiers_and_never_crosses_users() {
    let t = TestStore::new();
    let s = t.open().await;
    let exact = conversation(
        &s,
        "alice",
        "Restart",
        &[
            (Role::User, "Please restart pg-instance-main1 after patching"),
            (Role::Assistant, "Restarted."),
        ],
    )
    .await;
    let pieces = conversation(
        &s,
        "alice",
        "Pieces",
        &[(Role::User, "The pg database instance in the main account is slow")],
    )
    .await;
    let ec2 = conversation(
        &s,
        "alice",
        "EC2",
        &[(Role::Assistant, "Terminate i-0abc123 now; it is compromised.")],
    )
    .await;
    let bob = conversation(
        &s,
        "bob",
        "Bob's",
        &[(Role::User, "Please restart pg-instance-main1 after patching")],
    )
    .await;

    let r = s
        .chat
        .search_conversations("alice", "pg-instance-main1", &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(
        r.mode,
        SearchMode::Keyword,
        "hybrid falls back to keyword without a model"
    );
    assert_eq!(r.conversations[0].context_id, exact, "the exact identifier ranks first");
    assert!(r.conversations[0].messages[0].snippet.contains("pg-instance-main1"));
    assert!(
        r.conversations.iter().all(|c| c.context_id != bob),
        "no result of another user"
    );
    assert!(
        r.conversations.iter().any(|c| c.context_id == pieces),
        "word pieces still match"
    );

    let r = s
        .chat
        .search_conversations("alice", "i-0abc123", &opts(SearchMode::Keyword))
        .await
        .unwrap();
    assert_eq!(r.conversations.len(), 1);
    assert_eq!(r.conversations[0].context_id, ec2);

    let r = s
        .chat
        .search_conversations("bob", "restart patching", &opts(SearchMode::Keyword))
        .await
        .unwrap();
    assert_eq!(
        r.conversations
            .iter()
            .map(|c| c.context_id.as_str())
            .collect::<Vec<_>>(),
        vec![bob.as_str()]
    );

    // Filters: role, time, archive.
    let users_only = SearchOptions {
        roles: vec![Role::Assistant],
        ..opts(SearchMode::Keyword)
    };
    let r = s
        .chat
        .search_conversations("alice", "restart", &users_only)
        .await
        .unwrap();
    assert!(r
        .conversations
        .iter()
        .all(|c| c.messages.iter().all(|m| m.role == Role::Assistant)));
    assert_eq!(
        r.conversations[0].context_id, exact,
        "\"Restarted.\" is the assistant's"
    );
    let future = SearchOptions {
        since: Some(now_ms() + 60_000),
        ..opts(SearchMode::Keyword)
    };
    assert!(s
        .chat
        .search_conversations("alice", "restart", &future)
        .await
        .unwrap()
        .conversations
        .is_empty());
    s.chat
        .update_conversation(
            &exact,
            ConversationUpdate {
                status: Some(ConversationStatus::Archived),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let active_only = SearchOptions {
        archived: ArchivedFilter::Exclude,
        ..opts(SearchMode::Keyword)
    };
    let r = s
        .chat
        .search_conversations("alice", "pg-instance-main1", &active_only)
        .await
        .unwrap();
    assert!(r.conversations.iter().all(|c| c.context_id != exact));
    let archived_only = SearchOptions {
        archived: ArchivedFilter::Only,
        ..opts(SearchMode::Keyword)
    };
    let r = s
        .chat
        .search_conversations("alice", "pg-instance-main1", &archived_only)
        .await
        .unwrap();
    assert_eq!(r.conversations.len(), 1);
    assert_eq!(r.conversations[0].status, ConversationStatus::Archived);

    // Bad input.
    let err = s
        .chat
        .search_conversations("alice", "  ", &SearchOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = s
        .chat
        .search_conversations("alice", "x", &opts(SearchMode::Semantic))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("fetch-test-model"), "{err}");
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_and_hybrid_search_find_paraphrases_per_user() {
    let Some(model) = test_model_dir() else { return };
    let t = TestStore::new();
    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    let text = [(Role::User, "Why did our EC2 bill jump 40% last week?")];
    let alice = conversation(&s, "alice", "Costs", &text).await;
    let other = conversation(
        &s,
        "alice",
        "Lambda",
        &[(Role::User, "The ingest function times out after 3 seconds")],
    )
    .await;
    let bob = conversation(&s, "bob", "Bob costs", &text).await;
    s.chat.wait_for_index().await.unwrap();
    assert_eq!(s.chat.pending_embeddings().await.unwrap(), 0);

    let query = "virtual machines are costing us more money";
    let kw = s
        .chat
        .search_conversations("alice", query, &opts(SearchMode::Keyword))
        .await
        .unwrap();
    assert!(
        kw.conversations.iter().all(|c| c.context_id != alice),
        "no shared keyword"
    );
    for mode in [SearchMode::Semantic, SearchMode::Hybrid] {
        let r = s.chat.search_conversations("alice", query, &opts(mode)).await.unwrap();
        assert_eq!(r.mode, mode);
        assert_eq!(r.conversations[0].context_id, alice, "{mode:?}");
        assert!(
            r.conversations.iter().all(|c| c.context_id != bob),
            "{mode:?} crossed users"
        );
        assert!(r.conversations.iter().any(|c| c.context_id == other) || r.conversations.len() == 1);
    }
    let health = s.health().await.unwrap();
    assert!(health.embedding_model.unwrap().starts_with("bert/384d@"));
    s.shutdown().await.unwrap();
}

#[cfg(feature = "bert")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_vectors_are_rotated_and_scores_are_unchanged() {
    let Some(model) = test_model_dir() else { return };
    let t = TestStore::new();
    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    let texts = [
        "The RDS instance failed over to its standby",
        "Lambda cold starts are slow",
        "S3 bucket policy allows public reads",
    ];
    let ctx = s.chat.create_conversation("u", "t", json!({})).await.unwrap();
    let mut ids = Vec::new();
    for text in texts {
        ids.push(s.chat.append(&ctx, NewMessage::new(Role::User, text)).await.unwrap().id);
    }
    s.chat.wait_for_index().await.unwrap();
    let query = "database standby promotion";
    let hits = s
        .chat
        .search_conversations("u", query, &opts(SearchMode::Semantic))
        .await
        .unwrap();
    let slot = s.health().await.unwrap().stored_embedding.unwrap().slot;
    s.shutdown().await.unwrap();

    let bert = BertEmbedder::load(&model).unwrap();
    let raw = bert.embed(&texts.map(String::from)).await.unwrap();
    let q = bert.embed(&[query.to_string()]).await.unwrap().remove(0);
    let store = t.raw_store().await;
    let records = store
        .retrieve("chat_messages", ids.clone(), VectorSelection::All)
        .await
        .unwrap();
    let stored: Vec<Vec<f32>> = records
        .iter()
        .map(|r| match &r.vectors[&slot] {
            VectorData::Dense(v) => v.clone(),
            VectorData::Sparse { .. } => panic!("dense expected"),
        })
        .collect();
    for i in 0..texts.len() {
        assert!(
            cosine(&stored[i], &raw[i]) < 0.5,
            "stored vector {i} is the model's vector in clear"
        );
        for j in 0..texts.len() {
            assert!(
                (dot(&stored[i], &stored[j]) - dot(&raw[i], &raw[j])).abs() < 1e-4,
                "pairwise similarity changed"
            );
        }
    }
    // Scores equal the plain model's cosine similarities, so rankings are unchanged.
    let found = &hits.conversations[0].messages;
    for m in found {
        let i = ids.iter().position(|id| *id == m.message_id).unwrap();
        assert!((m.similarity.unwrap() - cosine(&q, &raw[i])).abs() < 1e-3);
    }
    assert_eq!(found[0].message_id, ids[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_stored_without_vectors_are_embedded_on_the_next_start() {
    let Some(model) = test_model_dir() else { return };
    let t = TestStore::new();
    // Written by a process without an embedder (or one that stopped before its worker ran).
    let s = t.open().await;
    let ctx = conversation(
        &s,
        "u",
        "t",
        &[(Role::User, "Our Kubernetes pods crash because they run out of memory")],
    )
    .await;
    s.shutdown().await.unwrap();

    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    s.chat.wait_for_index().await.unwrap();
    assert_eq!(s.chat.pending_embeddings().await.unwrap(), 0);
    let r = s
        .chat
        .search_conversations("u", "containers killed for exceeding RAM", &opts(SearchMode::Semantic))
        .await
        .unwrap();
    assert_eq!(r.conversations[0].context_id, ctx);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_queue_so_the_next_process_finds_the_message() {
    let Some(model) = test_model_dir() else { return };
    let t = TestStore::new();
    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    let ctx = conversation(
        &s,
        "u",
        "t",
        &[(Role::User, "The TLS certificate of the shop expires next week")],
    )
    .await;
    s.shutdown().await.unwrap(); // no wait_for_index: shutdown drains

    // The next process looks at the store without an embedder: every vector is there.
    let s = StorageService::open(t.config()).await.unwrap();
    s.shutdown().await.unwrap();
    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    assert_eq!(
        s.chat.pending_embeddings().await.unwrap(),
        0,
        "shutdown left messages unembedded"
    );
    let r = s
        .chat
        .search_conversations("u", "HTTPS cert about to lapse", &opts(SearchMode::Semantic))
        .await
        .unwrap();
    assert_eq!(r.conversations[0].context_id, ctx);
    s.shutdown().await.unwrap();
}

/// A stand-in for "another model" (not the configured one): 384-d vectors from a hash of the
/// text, so the store holds vectors of a model id MiniLM does not have.
#[derive(Debug)]
struct OtherModel;

#[async_trait::async_trait]
impl cloudops_storage_service::Embedder for OtherModel {
    fn model_id(&self) -> &str {
        "test/other-model"
    }

    fn dim(&self) -> usize {
        384
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, cloudops_storage_service::EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0f32; 384];
                v[t.bytes().map(usize::from).sum::<usize>() % 384] = 1.0;
                v
            })
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_model_is_refused_until_reindex() {
    let Some(model) = test_model_dir() else { return };
    let t = TestStore::new();
    let s = StorageService::open_with_embedder(t.config(), Some(Arc::new(OtherModel)))
        .await
        .unwrap();
    let ctx = conversation(
        &s,
        "u",
        "t",
        &[
            (Role::User, "Scrapers hammer our login page"),
            (Role::Assistant, "Attach WAF bot control"),
        ],
    )
    .await;
    s.chat.wait_for_index().await.unwrap();
    s.shutdown().await.unwrap();

    let err = StorageService::open(t.config_with_model(&model)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::EmbedderMismatch);
    assert!(err.to_string().contains("cloudops-storage reindex"), "{err}");
    assert!(err.to_string().contains("test/other-model"), "{err}");

    let s = StorageService::open_for_reindex(t.config_with_model(&model))
        .await
        .unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let report = s.reindex(&|p| seen.lock().unwrap().push(p)).await.unwrap();
    assert_eq!(report.embedded, 2);
    assert_eq!(report.previous.unwrap().model_id, "test/other-model");
    let seen = seen.into_inner().unwrap();
    let last = seen.last().unwrap();
    assert_eq!((last.phase, last.done, last.total), (Phase::EmbedMessages, 2, 2));
    assert!(seen.iter().all(|p| p.done <= p.total));
    s.shutdown().await.unwrap();

    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    let r = s
        .chat
        .search_conversations(
            "u",
            "automated crawlers on the sign-in form",
            &opts(SearchMode::Semantic),
        )
        .await
        .unwrap();
    assert_eq!(r.conversations[0].context_id, ctx);
    s.shutdown().await.unwrap();
}

#[cfg(feature = "bert")]
/// A minimal OpenAI-compatible server answering with real vectors from the BERT model; its
/// first answer is a 503 so the client's retry is exercised.
async fn embeddings_server(bert: Arc<BertEmbedder>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let bert = bert.clone();
            let n = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let body_start = loop {
                    let read = sock.read(&mut chunk).await.unwrap();
                    if read == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..read]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..body_start]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                while buf.len() < body_start + len {
                    let read = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..read]);
                }
                let (status, body) = if n == 0 {
                    ("503 Service Unavailable", "{}".to_string())
                } else {
                    let req: Value = serde_json::from_slice(&buf[body_start..body_start + len]).unwrap();
                    assert!(head.starts_with("post /v1/embeddings"), "{head}");
                    let texts: Vec<String> = req["input"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_str().unwrap().to_string())
                        .collect();
                    let vectors = bert.embed(&texts).await.unwrap();
                    let data: Vec<Value> = vectors
                        .iter()
                        .enumerate()
                        .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
                        .collect();
                    (
                        "200 OK",
                        json!({"object": "list", "data": data, "model": req["model"]}).to_string(),
                    )
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(response.as_bytes()).await.unwrap();
            });
        }
    });
    (url, requests)
}

#[cfg(all(feature = "bert", feature = "http"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_compatible_endpoint_serves_search_and_fails_clearly_when_down() {
    let Some(model) = test_model_dir() else { return };
    let bert = Arc::new(BertEmbedder::load(&model).unwrap());
    let (url, requests) = embeddings_server(bert.clone()).await;

    let http = HttpEmbedder::connect(url.clone(), "all-minilm".into(), None, None)
        .await
        .unwrap();
    assert_eq!(http.dim(), 384, "dimension probed");
    assert!(
        requests.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the 503 was retried"
    );
    let texts = vec!["EBS volume snapshots".to_string(), "IAM role trust policy".to_string()];
    let via_http = http.embed(&texts).await.unwrap();
    let direct = bert.embed(&texts).await.unwrap();
    for (a, b) in via_http.iter().zip(&direct) {
        assert!(cosine(a, b) > 0.9999);
    }

    // The whole service on the endpoint.
    let t = TestStore::new();
    let mut config = t.config();
    config.embedding.provider = cloudops_storage_service::EmbeddingProvider::OpenAi;
    config.embedding.url = url;
    config.embedding.model = "all-minilm".into();
    let s = StorageService::open(config).await.unwrap();
    let ctx = conversation(
        &s,
        "u",
        "t",
        &[(Role::User, "Automate nightly snapshots of our EBS volumes")],
    )
    .await;
    s.chat.wait_for_index().await.unwrap();
    let r = s
        .chat
        .search_conversations("u", "back up disks every night", &opts(SearchMode::Semantic))
        .await
        .unwrap();
    assert_eq!(r.conversations[0].context_id, ctx);
    assert_eq!(s.chat.embedding_model(), Some("openai/all-minilm"));
    s.shutdown().await.unwrap();

    // Nothing listens: a clear error naming the URL, after the retries.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let err = HttpEmbedder::connect(dead.clone(), "m".into(), None, None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&dead) && text.contains("4 attempt"), "{text}");
    let known_dim = HttpEmbedder::connect(dead, "m".into(), None, Some(384)).await.unwrap();
    assert!(known_dim.embed(&["x".to_string()]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_context_picks_relevant_pairs_from_other_conversations() {
    let Some(model) = test_model_dir() else { return };
    let t = TestStore::new();
    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    let rds = conversation(
        &s,
        "alice",
        "RDS failover",
        &[
            (Role::User, "Fail over the production Postgres database to its standby"),
            (
                Role::Assistant,
                "Failover started; the Multi-AZ standby is being promoted.",
            ),
        ],
    )
    .await;
    // Distinct millisecond timestamps, so "most recent" is well defined below.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let lambda = conversation(
        &s,
        "alice",
        "Lambda",
        &[
            (Role::User, "My ingest function times out"),
            (Role::Assistant, "Raise the timeout to 30 seconds."),
        ],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let current = conversation(
        &s,
        "alice",
        "Current",
        &[
            (Role::User, "Fail over the production Postgres database"),
            (Role::Assistant, "ok"),
        ],
    )
    .await;
    // The same exchange a month ago: recency decay ranks it below the fresh one.
    let old_at = now_ms() - 30 * 86_400_000;
    let old = uuid::Uuid::new_v4().to_string();
    s.chat
        .import_conversation(ImportedConversation {
            conversation: cloudops_storage_service::Conversation {
                context_id: old.clone(),
                user_id: "alice".into(),
                title: "Old failover".into(),
                metadata: json!({}),
                created_at: old_at,
                updated_at: old_at,
                message_count: 0,
                status: ConversationStatus::Active,
            },
            messages: vec![
                (
                    Role::User,
                    "Fail over the production Postgres database to its standby".into(),
                    old_at,
                    None,
                ),
                (
                    Role::Assistant,
                    "Failover started; the Multi-AZ standby is being promoted.".into(),
                    old_at,
                    None,
                ),
            ],
        })
        .await
        .unwrap();
    conversation(
        &s,
        "bob",
        "Bob",
        &[(Role::User, "Postgres standby promotion"), (Role::Assistant, "done")],
    )
    .await;
    s.chat.wait_for_index().await.unwrap();

    let ctx = s
        .chat
        .context_for_prompt(
            "alice",
            &current,
            "promote the database replica",
            ContextOptions::default(),
        )
        .await
        .unwrap();
    assert!(!ctx.fallback);
    let sources: Vec<&str> = ctx.pairs.iter().map(|p| p.context_id.as_str()).collect();
    assert_eq!(sources[0], rds, "{sources:?}");
    assert!(sources.contains(&old.as_str()));
    assert!(sources.iter().position(|c| *c == rds) < sources.iter().position(|c| *c == old));
    assert!(
        !sources.contains(&current.as_str()),
        "the current conversation is left out"
    );
    assert!(ctx
        .pairs
        .iter()
        .all(|p| p.user.contains("Fail over") || p.context_id == lambda));
    let rendered = ctx.render();
    assert!(rendered.starts_with("Context from previous conversations:"));
    assert!(rendered.contains("User: Fail over the production Postgres database to its standby"));
    assert!(!rendered.contains("Postgres standby promotion"), "bob's pair leaked");

    let one = s
        .chat
        .context_for_prompt(
            "alice",
            &current,
            "promote the database replica",
            ContextOptions {
                max_pairs: 1,
                ..ContextOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(one.pairs.len(), 1);
    let tiny = s
        .chat
        .context_for_prompt(
            "alice",
            &current,
            "promote the database replica",
            ContextOptions {
                token_budget: 10,
                ..ContextOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(tiny.pairs.is_empty(), "no pair fits 10 tokens");

    // Nothing relevant: the most recent pairs.
    let fallback = s
        .chat
        .context_for_prompt("alice", &current, "zebra giraffe savanna", ContextOptions::default())
        .await
        .unwrap();
    assert!(fallback.fallback);
    assert_eq!(
        fallback.pairs[0].context_id, lambda,
        "the most recent other conversation"
    );
    s.shutdown().await.unwrap();
}
