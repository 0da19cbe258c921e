//! Encryption at rest and key handling: no plaintext on disk, tamper and move detection,
//! wrong and missing keys, the data-dir lock, KEK rotation.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use cloudops_storage_service::store::{EmbeddedStore, Point, ScrollRequest, VectorStore};
use cloudops_storage_service::{platform, DataKeyEpoch, KeyConfig};
use cloudops_storage_service::{ConfigKey, ErrorKind, KeySourceKind, StorageConfig, StorageService};
use cloudops_storage_service::{HistoryRange, NewMessage, Role};
use serde_json::json;

use crate::common::{file_count, files_containing, rewrite_records, TestStore};

fn random_key_b64() -> String {
    B64.encode(rand_bytes())
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = (uuid::Uuid::new_v4().as_u128() >> (i % 16)) as u8;
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_on_disk() {
    let t = TestStore::new();
    let marker = format!("MARKER-{}", uuid::Uuid::new_v4().simple());
    {
        let s = t.open().await;
        let ctx = s
            .chat
            .create_conversation(
                "u",
                &format!("title {marker}"),
                json!({"note": format!("meta {marker}")}),
            )
            .await
            .unwrap();
        for i in 0..50 {
            let metadata = Some(json!({ "m": format!("{marker}-{i}") }));
            s.chat
                .append(
                    &ctx,
                    NewMessage {
                        role: Role::User,
                        content: format!("content {marker} {i}"),
                        metadata,
                    },
                )
                .await
                .unwrap();
        }
        s.chat
            .update_conversation(
                &ctx,
                cloudops_storage_service::ConversationUpdate {
                    title: Some(format!("renamed {marker}")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        s.flush().await.unwrap();
        s.shutdown().await.unwrap();
    }
    let Some(dirs) = crate::common::stored_bytes_dirs(&t) else {
        return;
    };
    assert!(
        dirs.iter().map(|d| file_count(d)).sum::<usize>() > 10,
        "the scan must look at the engine's files"
    );
    for dir in &dirs {
        let hits = files_containing(dir, marker.as_bytes());
        assert!(hits.is_empty(), "plaintext marker found in {hits:?}");
    }
    // The key file is not in the data dir either.
    assert!(!t.key_file().starts_with(t.data_dir()));
}

/// Open the raw engine (the service must be closed) and rewrite one message's payload.
async fn rewrite_first_message(
    t: &TestStore,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>, &serde_json::Map<String, serde_json::Value>),
) {
    let store = EmbeddedStore::open(&t.data_dir()).unwrap();
    let page = store
        .scroll(
            "chat_messages",
            ScrollRequest {
                limit: 10,
                ..ScrollRequest::default()
            },
        )
        .await
        .unwrap();
    let mut records = page.records;
    records.sort_by_key(|r| r.payload["message_index"].as_u64());
    let donor = records[1].payload.clone();
    let mut target = records[0].clone();
    edit(&mut target.payload, &donor);
    store
        .upsert(
            "chat_messages",
            vec![Point {
                id: target.id,
                vectors: Default::default(),
                payload: target.payload,
            }],
        )
        .await
        .unwrap();
    store.flush().await.unwrap();
}

async fn two_messages(t: &TestStore) -> String {
    let s = t.open().await;
    let ctx = s.chat.create_conversation("u", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "first")).await.unwrap();
    s.chat
        .append(&ctx, NewMessage::new(Role::Assistant, "second"))
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_ciphertext_is_a_clear_error() {
    let t = TestStore::new();
    let ctx = two_messages(&t).await;
    rewrite_first_message(&t, |payload, _| {
        let sealed = payload["content"].as_str().unwrap();
        let mut raw = B64.decode(sealed).unwrap();
        let n = raw.len();
        raw[n - 20] ^= 0x01;
        payload.insert("content".into(), json!(B64.encode(raw)));
    })
    .await;
    let s = t.open().await;
    let err = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tampered);
    assert!(
        err.to_string().contains("content") && err.to_string().contains("chat_messages"),
        "{err}"
    );
    // The untouched message still reads.
    assert_eq!(
        s.chat
            .get_history(&ctx, HistoryRange::After { index: 0, limit: 5 })
            .await
            .unwrap()[0]
            .content,
        "second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphertext_moved_to_another_message_fails() {
    let t = TestStore::new();
    let ctx = two_messages(&t).await;
    rewrite_first_message(&t, |payload, donor| {
        payload.insert("content".into(), donor["content"].clone());
    })
    .await;
    let s = t.open().await;
    let err = s.chat.get_history(&ctx, HistoryRange::Last(2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tampered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_a_clear_error_and_loses_nothing() {
    let t = TestStore::new();
    let ctx = two_messages(&t).await;
    let original = std::fs::read(t.key_file()).unwrap();
    std::fs::write(t.key_file(), random_key_b64()).unwrap();
    let err = StorageService::open(t.config()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKey);
    assert!(err.to_string().contains("key file"), "{err}");
    std::fs::write(t.key_file(), original).unwrap();
    let s = t.open().await;
    assert_eq!(s.chat.get_history(&ctx, HistoryRange::All).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_key_file_is_refused() {
    if !platform::HAS_FILE_MODES {
        return; // Windows: the profile's ACL guards the key file; there are no mode bits to loosen
    }
    let t = TestStore::new();
    two_messages(&t).await;
    platform::set_file_mode(&t.key_file(), 0o644).unwrap();
    let err = StorageService::open(t.config()).await.unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_env_key_names_alternatives() {
    let t = TestStore::new();
    let var = format!("CLOUDOPS_TEST_UNSET_{}", uuid::Uuid::new_v4().simple());
    let config = StorageConfig::builder()
        .with_config(ConfigKey::EmbeddingProvider, "none")
        .with_data_dir(t.data_dir())
        .with_config(ConfigKey::KeySource, "env")
        .with_config(ConfigKey::KeyEnvVar, var.clone())
        .build()
        .unwrap();
    let err = StorageService::open(config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeySourceUnavailable);
    let text = err.to_string();
    assert!(
        text.contains(&var) && text.contains("--key-source file") && text.contains("--key-source passphrase"),
        "{text}"
    );
    assert!(!t.data_dir().join("keys.json").exists(), "no half-created store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_opened_with_another_source_says_which() {
    let t = TestStore::new();
    two_messages(&t).await;
    let var = format!("CLOUDOPS_TEST_KEY_{}", uuid::Uuid::new_v4().simple());
    std::env::set_var(&var, random_key_b64());
    let mut config = t.config();
    config.keys.source = KeySourceKind::Env;
    config.keys.env_var = var;
    let err = StorageService::open(config).await.unwrap_err();
    assert!(err.to_string().contains("--key-source file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_source_and_wrong_passphrase() {
    let t = TestStore::new();
    let var = format!("CLOUDOPS_TEST_PASS_{}", uuid::Uuid::new_v4().simple());
    let mut config = t.config();
    config.keys.source = KeySourceKind::Passphrase;
    config.keys.passphrase_env_var = var.clone();
    std::env::set_var(&var, "correct horse battery staple");
    let ctx = {
        let s = StorageService::open(config.clone()).await.unwrap();
        let ctx = s.chat.create_conversation("u", "t", json!({})).await.unwrap();
        s.chat.append(&ctx, NewMessage::new(Role::User, "hi")).await.unwrap();
        s.shutdown().await.unwrap();
        ctx
    };
    std::env::set_var(&var, "wrong horse battery staple");
    let err = StorageService::open(config.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKey);
    assert!(err.to_string().contains("passphrase"), "{err}");
    std::env::set_var(&var, "correct horse battery staple");
    let s = StorageService::open(config).await.unwrap();
    assert_eq!(
        s.chat.get_history(&ctx, HistoryRange::All).await.unwrap()[0].content,
        "hi"
    );
}

/// Issue 31: a weak passphrase never makes a new wrap (with the reason), and backups never
/// carry the passphrase wrap, so the bucket gives nothing to guess against offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_passphrases_are_refused_and_backups_carry_no_passphrase_wrap() {
    let t = TestStore::new();
    let var = format!("CLOUDOPS_TEST_PASS_{}", uuid::Uuid::new_v4().simple());
    let mut config = t.config();
    config.keys.source = KeySourceKind::Passphrase;
    config.keys.passphrase_env_var = var.clone();
    for weak in ["password123", "Cloudops2026!", "qwertyuiop123"] {
        std::env::set_var(&var, weak);
        let err = StorageService::open(config.clone()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeySourceUnavailable, "{weak}: {err}");
        assert!(err.to_string().contains("too weak"), "{weak}: {err}");
        assert!(
            !err.to_string().contains(weak),
            "the error echoes the passphrase: {err}"
        );
        assert!(!t.data_dir().join("keys.json").exists(), "{weak}: a store was made");
    }
    std::env::set_var(&var, "vivid tundra oboe lantern mosaic");
    let s = StorageService::open(config.clone()).await.unwrap();
    s.issue_recovery_kit().await.unwrap();
    let manifest = s
        .backup
        .backup_now(false, &cloudops_storage_service::no_progress)
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let envelope = std::fs::read_to_string(t.data_dir().join("keys.json")).unwrap();
    let live: serde_json::Value = serde_json::from_str(&envelope).unwrap();
    let salt = live["wraps"][0]["kdf"]["salt"].as_str().unwrap().to_string();
    let snapshots = t.data_dir().join("snapshots");
    for needle in [salt.as_str(), "argon2id", "passphrase"] {
        assert!(
            crate::common::files_containing(&snapshots, needle.as_bytes()).is_empty(),
            "{needle} in a backup"
        );
    }
    let carried = serde_json::to_value(manifest.keys.as_ref().unwrap()).unwrap();
    assert_eq!(carried["wraps"], json!([]), "{carried}");
    assert!(carried["recovery"].is_object(), "the recovery wrap stays: {carried}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kek_rotation_keeps_data_readable_and_retires_old_key() {
    let t = TestStore::new();
    let ctx = two_messages(&t).await;
    let old_key = std::fs::read(t.key_file()).unwrap();
    {
        let s = t.open().await;
        let status = s.rotate_kek(s.config().keys.clone(), DataKeyEpoch::Keep).await.unwrap();
        assert!(status.kek_rotated_at_ms.is_some());
        s.shutdown().await.unwrap();
    }
    assert_ne!(
        std::fs::read(t.key_file()).unwrap(),
        old_key,
        "a new key file was written"
    );
    {
        let s = t.open().await;
        assert_eq!(s.chat.get_history(&ctx, HistoryRange::All).await.unwrap().len(), 2);
        // Move the key to the env source.
        let var = format!("CLOUDOPS_TEST_ROT_{}", uuid::Uuid::new_v4().simple());
        std::env::set_var(&var, random_key_b64());
        let to = KeyConfig {
            source: KeySourceKind::Env,
            env_var: var.clone(),
            ..KeyConfig::default()
        };
        let status = s.rotate_kek(to, DataKeyEpoch::Keep).await.unwrap();
        assert_eq!(status.key_source, KeySourceKind::Env);
        s.shutdown().await.unwrap();
        let mut config = t.config();
        config.keys.source = KeySourceKind::Env;
        config.keys.env_var = var;
        let s = StorageService::open(config).await.unwrap();
        assert_eq!(
            s.chat.get_history(&ctx, HistoryRange::All).await.unwrap()[1].content,
            "second"
        );
        s.shutdown().await.unwrap();
    }
    // The retired file key opens nothing.
    std::fs::write(t.key_file(), &old_key).unwrap();
    assert!(StorageService::open(t.config()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_opener_gets_locked_error_and_first_keeps_working() {
    let t = TestStore::new();
    let s = t.open().await;
    let ctx = s.chat.create_conversation("u", "t", json!({})).await.unwrap();
    let err = StorageService::open(t.config()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(
        err.to_string().contains(&format!("PID {}", std::process::id())),
        "{err}"
    );
    s.chat
        .append(&ctx, NewMessage::new(Role::User, "still here"))
        .await
        .unwrap();
    assert_eq!(s.chat.get_history(&ctx, HistoryRange::All).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_key_envelope_is_reported_and_data_untouched() {
    let t = TestStore::new();
    two_messages(&t).await;
    let envelope = t.data_dir().join("keys.json");
    let good = std::fs::read(&envelope).unwrap();
    std::fs::write(&envelope, b"{ not json").unwrap();
    let err = StorageService::open(t.config()).await.unwrap_err();
    assert!(err.to_string().contains("keys.json"), "{err}");
    std::fs::write(&envelope, good).unwrap();
    t.open().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_key_file_both_open_after_one_rotates() {
    let t = TestStore::new();
    let shared = t.key_file();
    let config_for = |name: &str| {
        let mut config = t.config();
        config.data_dir = t.dir.path().join(name);
        config.keys.file = Some(shared.clone());
        config
    };
    let (a, b) = (config_for("a"), config_for("b"));
    let mut contexts = Vec::new();
    for config in [&a, &b] {
        let s = StorageService::open(config.clone()).await.unwrap();
        let ctx = s.chat.create_conversation("u", "t", json!({})).await.unwrap();
        s.chat.append(&ctx, NewMessage::new(Role::User, "kept")).await.unwrap();
        s.shutdown().await.unwrap();
        contexts.push(ctx);
    }
    let s = StorageService::open(a.clone()).await.unwrap();
    s.rotate_kek(a.keys.clone(), DataKeyEpoch::Keep).await.unwrap();
    s.shutdown().await.unwrap();
    let lines = std::fs::read_to_string(&shared).unwrap().lines().count();
    assert_eq!(lines, 2, "the rotation added a key beside the shared one");
    for (config, ctx) in [(&a, &contexts[0]), (&b, &contexts[1])] {
        let s = StorageService::open(config.clone()).await.unwrap();
        assert_eq!(
            s.chat.get_history(ctx, HistoryRange::All).await.unwrap()[0].content,
            "kept"
        );
        s.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inits_on_a_new_key_file_lose_no_store() {
    let t = TestStore::new();
    let shared = t.key_file();
    let opens: Vec<_> = (0..4)
        .map(|i| {
            let mut config = t.config();
            config.data_dir = t.dir.path().join(format!("store-{i}"));
            config.keys.file = Some(shared.clone());
            tokio::spawn(async move {
                let s = StorageService::open(config.clone()).await.unwrap();
                s.shutdown().await.unwrap();
                config
            })
        })
        .collect();
    for open in opens {
        let config = open.await.unwrap();
        let s = StorageService::open(config)
            .await
            .expect("every store opens with the shared file");
        s.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_given_in_memory_uses_strong_argon2_and_refuses_tampered_parameters() {
    let t = TestStore::new();
    let mut config = t.config();
    config.keys.source = KeySourceKind::Passphrase;
    config.keys.passphrase_env_var = format!("CLOUDOPS_TEST_UNSET_{}", uuid::Uuid::new_v4().simple());
    config.keys.passphrase = Some(cloudops_storage_service::Passphrase::new(
        "correct horse battery staple\n",
    ));
    let s = StorageService::open(config.clone()).await.unwrap();
    s.shutdown().await.unwrap();
    let envelope_path = t.data_dir().join("keys.json");
    let mut envelope: serde_json::Value = serde_json::from_slice(&std::fs::read(&envelope_path).unwrap()).unwrap();
    let kdf = envelope["wraps"][0]["kdf"].clone();
    assert_eq!(kdf["algorithm"], "argon2id");
    assert!(kdf["m_cost_kib"].as_u64().unwrap() >= 64 * 1024, "{kdf}");
    assert!(kdf["t_cost"].as_u64().unwrap() >= 3, "{kdf}");
    // Without the in-memory passphrase (and no variable set) the source is unavailable.
    let mut without = config.clone();
    without.keys.passphrase = None;
    let err = StorageService::open(without).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeySourceUnavailable, "{err}");
    // A stored memory cost of 4 TiB would take the machine down: refused before any work.
    envelope["wraps"][0]["kdf"]["m_cost_kib"] = json!(u32::MAX);
    std::fs::write(&envelope_path, serde_json::to_vec(&envelope).unwrap()).unwrap();
    let err = StorageService::open(config).await.unwrap_err();
    assert!(err.to_string().contains("refusing stored Argon2id parameters"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_backup_files_are_private() {
    if !platform::HAS_FILE_MODES {
        return; // Windows: files inherit the profile's ACL (see the README's platforms table)
    }
    let t = TestStore::new();
    std::fs::create_dir_all(t.data_dir()).unwrap();
    platform::set_file_mode(&t.data_dir(), 0o755).unwrap();
    let s = t.open().await;
    let mode = |p: &std::path::Path| platform::file_mode(&std::fs::metadata(p).unwrap()).unwrap() & 0o777;
    assert_eq!(mode(&t.data_dir()), 0o700, "an open data dir is made private");
    let ctx = s.chat.create_conversation("u", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "x")).await.unwrap();
    let m = s.backup.create_snapshot().await.unwrap();
    let dir = s.backup.dir();
    for file in [format!("{}.cosb", m.name), format!("{}.json", m.name)] {
        assert_eq!(mode(&dir.join(&file)), 0o600, "{file}");
    }
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&t.data_dir().join("keys.json")), 0o600);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_reached_through_a_symlink_is_refused() {
    let t = TestStore::new();
    two_messages(&t).await;
    let link = t.dir.path().join("link.key");
    if let Err(e) = platform::symlink_file(&t.key_file(), &link) {
        // Windows creates links only in developer mode: there is then no link to refuse.
        if platform::HAS_FILE_MODES {
            panic!("{e}");
        }
        return;
    }
    if !platform::link_leads_to_its_target(&link) {
        return;
    }
    let mut config = t.config();
    config.keys.file = Some(link);
    let err = StorageService::open(config).await.unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_fields_edited_through_the_engine_are_detected_as_tampering() {
    // A message turned into a system prompt, moved to another user, renumbered, or moved to
    // another conversation: each fails authentication on read.
    for (field, value) in [
        ("role", json!("system")),
        ("user_id", json!("mallory")),
        ("message_index", json!(7)),
    ] {
        let t = TestStore::new();
        let ctx = two_messages(&t).await;
        rewrite_first_message(&t, |payload, _| {
            payload.insert(field.into(), value.clone());
        })
        .await;
        let s = t.open().await;
        let err = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tampered, "{field}: {err}");
        s.shutdown().await.unwrap();
    }
    let t = TestStore::new();
    let ctx = two_messages(&t).await;
    let other = {
        let s = t.open().await;
        let other = s.chat.create_conversation("u", "other", json!({})).await.unwrap();
        s.shutdown().await.unwrap();
        other
    };
    rewrite_first_message(&t, |payload, _| {
        payload.insert("context_id".into(), json!(other));
    })
    .await;
    let s = t.open().await;
    let err = s.chat.get_history(&other, HistoryRange::All).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tampered, "moved message: {err}");
    s.shutdown().await.unwrap();

    // A conversation handed to another user.
    rewrite_records(&t, "chat_conversations", |payload| {
        let mine = payload["context_id"] == json!(ctx);
        if mine {
            payload.insert("user_id".into(), json!("mallory"));
        }
        mine
    })
    .await;
    let s = t.open().await;
    let err = s.chat.all_conversations("mallory").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tampered, "moved conversation: {err}");
    s.shutdown().await.unwrap();

    // An estate resource moved to another region, account or type.
    for field in ["region", "account_id", "resource_type"] {
        let t = TestStore::new();
        let s = t.open().await;
        s.estate
            .upsert_resource(cloudops_storage_service::AWSResource {
                resource_type: "rds:db".into(),
                identifier: "orders".into(),
                account_id: "123456789012".into(),
                region: "eu-west-1".into(),
                service: "rds".into(),
                name: Some("orders production database".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        rewrite_records(&t, "aws_estate", |payload| {
            payload.insert(field.into(), json!("edited"));
            true
        })
        .await;
        let s = t.open().await;
        let err = s
            .estate
            .list(&cloudops_storage_service::ResourceFilter::default(), 10)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tampered, "{field}: {err}");
        s.shutdown().await.unwrap();
    }
}
