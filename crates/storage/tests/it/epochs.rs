//! Key epochs (issue 31): a new recovery kit, or a KEK rotation with a new epoch after a leak,
//! starts a new data key. The old kit or the old KEK, together with every object in the
//! bucket, opens nothing written afterwards: not with `--latest`, not with `--at` far in the
//! future (the shipped journal), not with `--no-journal`. Older data stays readable with the
//! current keys, and stays findable by search. Real Garage (scripts/test.sh), embedded store.

use cloudops_storage_service::{DataKeyEpoch, NewMessage, Role, SearchMode, SearchOptions, StorageService};
use serde_json::json;

use crate::common::TestStore;

const BEFORE: &str = "nebula-before-7341";
const AFTER: &str = "quasar-after-9157";

/// The texts of every message of `user`, sorted.
async fn all_texts(s: &StorageService, user: &str) -> Vec<String> {
    let mut texts = Vec::new();
    for c in s.chat.all_conversations(user).await.unwrap() {
        for m in s
            .chat
            .get_history(&c.context_id, cloudops_storage_service::HistoryRange::All)
            .await
            .unwrap()
        {
            texts.push(m.content);
        }
    }
    texts.sort();
    texts
}

/// Keyword hits of `query` for alice (conversation titles are unique per marker).
async fn keyword_titles(s: &StorageService, query: &str) -> Vec<String> {
    let options = SearchOptions {
        mode: SearchMode::Keyword,
        ..SearchOptions::default()
    };
    let found = s.chat.search_conversations("alice", query, &options).await.unwrap();
    found.conversations.into_iter().map(|c| c.title).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_epoch_seals_new_data_under_a_new_key_and_keeps_old_data_readable_and_findable() {
    let t = TestStore::new();
    let s = t.open().await;
    let first = s.issue_recovery_kit().await.unwrap();
    assert_eq!(
        s.key_status().active_key_id,
        1,
        "the first kit revokes nothing: no epoch"
    );
    let old = s.chat.create_conversation("alice", "before", json!({})).await.unwrap();
    s.chat.append(&old, NewMessage::new(Role::User, BEFORE)).await.unwrap();

    let second = s.issue_recovery_kit().await.unwrap();
    assert_ne!(first.key, second.key);
    assert_eq!(s.key_status().active_key_id, 2, "a replaced kit starts epoch 2");
    assert_eq!(s.key_status().data_keys, 2);
    // The running service seals under the new key at once (no reopen).
    let new = s.chat.create_conversation("alice", "after", json!({})).await.unwrap();
    s.chat.append(&new, NewMessage::new(Role::User, AFTER)).await.unwrap();
    let status = s.rotate_kek(s.config().keys.clone(), DataKeyEpoch::New).await.unwrap();
    assert_eq!(status.active_key_id, 3);
    s.chat
        .append(&old, NewMessage::new(Role::Assistant, "written in epoch 3"))
        .await
        .unwrap();
    s.shutdown().await.unwrap();

    let s = t.open().await;
    assert_eq!(s.key_status().active_key_id, 3);
    let mut expected = vec![BEFORE.to_string(), AFTER.to_string(), "written in epoch 3".to_string()];
    expected.sort();
    assert_eq!(all_texts(&s, "alice").await, expected);
    // One query finds records of every epoch (the search keys do not change with epochs).
    assert_eq!(keyword_titles(&s, BEFORE).await, vec!["before".to_string()]);
    assert_eq!(keyword_titles(&s, AFTER).await, vec!["after".to_string()]);
    assert_eq!(keyword_titles(&s, "epoch").await, vec!["before".to_string()]);
    s.shutdown().await.unwrap();
}

/// (format version, data key id) of every sealed value of `fields` in `collection`, read
/// from the raw engine (the service must be closed).
async fn sealed_headers(t: &TestStore, collection: &str, fields: &[&str]) -> Vec<(u8, u32)> {
    use base64::Engine as _;
    let mut out = Vec::new();
    for record in crate::common::raw_records(t, collection).await {
        for field in fields {
            if let Some(sealed) = record.payload.get(*field).and_then(|v| v.as_str()) {
                let raw = base64::engine::general_purpose::STANDARD.decode(sealed).unwrap();
                out.push((raw[0], u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]])));
            }
        }
    }
    out
}

const SEALED: [(&str, &[&str]); 4] = [
    ("chat_messages", &["content", "metadata"]),
    ("chat_conversations", &["title", "metadata"]),
    (
        "aws_estate",
        &["identifier", "arn", "name", "tags", "iam", "constraints", "metadata"],
    ),
    ("store_meta", &["estate_tag_dictionary"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_seals_every_old_record_under_the_active_key_and_keeps_it_readable_and_findable() {
    let t = TestStore::new();
    let s = t.open().await;
    let ctx = s
        .chat
        .create_conversation("alice", "before", json!({"pinned": true}))
        .await
        .unwrap();
    let mut with_metadata = NewMessage::new(Role::User, BEFORE);
    with_metadata.metadata = Some(json!({"source": "cli"}));
    s.chat.append(&ctx, with_metadata).await.unwrap();
    s.chat
        .append(&ctx, NewMessage::new(Role::Assistant, "plain answer"))
        .await
        .unwrap();
    let resource = cloudops_storage_service::AWSResource {
        resource_type: "rds:db".into(),
        identifier: "orders".into(),
        account_id: "123456789012".into(),
        region: "eu-west-1".into(),
        service: "rds".into(),
        name: Some("orders production database".into()),
        tags: Some([("env".to_string(), "prod".to_string())].into()),
        ..Default::default()
    };
    s.estate.upsert_resource(resource.clone()).await.unwrap();
    assert_eq!(
        s.rotate_kek(s.config().keys.clone(), DataKeyEpoch::New)
            .await
            .unwrap()
            .active_key_id,
        2
    );
    s.chat.append(&ctx, NewMessage::new(Role::User, AFTER)).await.unwrap();
    s.shutdown().await.unwrap();
    // Before: the first epoch's key still opens most of the store.
    let old: usize = {
        let mut n = 0;
        for (collection, fields) in SEALED {
            n += sealed_headers(&t, collection, fields)
                .await
                .iter()
                .filter(|(_, key)| *key == 1)
                .count();
        }
        n
    };
    assert_eq!(
        old,
        2 + 1 + 2 + 7 + 1,
        "two messages (one with metadata), a conversation, a resource, the tag dictionary"
    );

    let s = t.open().await;
    let seen = std::sync::Mutex::new(Vec::new());
    let report = s
        .rekey(&|p| seen.lock().unwrap().push((p.done, p.total)))
        .await
        .unwrap();
    assert_eq!(report.active_key_id, 2);
    let r = |scanned, resealed| cloudops_storage_service::Resealed { scanned, resealed };
    assert_eq!(
        (report.messages, report.conversations, report.resources),
        (r(3, 2), r(1, 1), r(1, 1))
    );
    assert_eq!(seen.lock().unwrap().last(), Some(&(5, 5)));
    // Resumable: a second run finds everything current.
    let again = s.rekey(&cloudops_storage_service::no_progress).await.unwrap();
    assert_eq!(
        (again.messages, again.conversations, again.resources),
        (r(3, 0), r(1, 0), r(1, 0))
    );
    s.shutdown().await.unwrap();

    for (collection, fields) in SEALED {
        let headers = sealed_headers(&t, collection, fields).await;
        assert!(!headers.is_empty());
        assert!(
            headers.iter().all(|h| *h == (3, 2)),
            "{collection}: every value in format 3 under key 2: {headers:?}"
        );
    }
    let s = t.open().await;
    let history = s
        .chat
        .get_history(&ctx, cloudops_storage_service::HistoryRange::All)
        .await
        .unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, [BEFORE, "plain answer", AFTER]);
    assert_eq!(history[0].metadata, Some(json!({"source": "cli"})));
    assert_eq!(history[1].metadata, None);
    let c = s.chat.get_conversation(&ctx).await.unwrap();
    assert_eq!((c.title.as_str(), c.metadata), ("before", json!({"pinned": true})));
    assert_eq!(keyword_titles(&s, BEFORE).await, vec!["before".to_string()]);
    let listed = s
        .estate
        .list(&cloudops_storage_service::ResourceFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.clone(), listed[0].tags.clone()),
        (resource.name, resource.tags)
    );
    s.shutdown().await.unwrap();
}

#[cfg(feature = "s3")]
mod bucket {
    use cloudops_storage_service::{
        no_progress, DataKeyEpoch, ErrorKind, KeySourceKind, NewMessage, RecoveryKey, RestoreOptions, RestoreTarget,
        Role, StorageConfig, StorageError, StorageService,
    };
    use serde_json::json;

    use super::{all_texts, AFTER, BEFORE};
    use crate::backup::{new_machine, s3_env, with_s3};
    use crate::common::TestStore;

    /// Far in the future: every shipped write is asked for.
    const FAR_FUTURE_MS: i64 = 32_503_680_000_000; // 3000-01-01

    /// Restore on `config`'s new machine; `kit` or (None) the configured key source.
    async fn restore(
        config: &StorageConfig,
        target: RestoreTarget,
        kit: Option<&RecoveryKey>,
        skip_journal: bool,
    ) -> Result<cloudops_storage_service::RestoreReport, StorageError> {
        let options = RestoreOptions {
            target,
            from_s3: true,
            recovery_key: kit.cloned(),
            store_id: None,
            skip_journal,
            accept_gap: false,
        };
        StorageService::restore_backup(config, &options, &no_progress).await
    }

    /// Every way an old key can ask the bucket: `--latest`, `--at` far ahead (with and
    /// without the journal). None may yield a store holding `AFTER`; those that restore give
    /// exactly the data written before the epoch.
    async fn old_key_gets_nothing_newer(
        config: &StorageConfig,
        kit: Option<&RecoveryKey>,
        with_old_key: impl Fn(&mut StorageConfig),
    ) {
        for (target, skip_journal) in [
            (RestoreTarget::Latest, false),
            (RestoreTarget::Latest, true),
            (RestoreTarget::At(FAR_FUTURE_MS), false),
            (RestoreTarget::At(FAR_FUTURE_MS), true),
        ] {
            let (machine, mut machine_config) = new_machine(config);
            with_old_key(&mut machine_config);
            let what = format!("{target:?}, skip_journal {skip_journal}");
            match restore(&machine_config, target, kit, skip_journal).await {
                Ok(_) => {
                    let s = StorageService::open(machine_config.clone()).await.unwrap();
                    let texts = all_texts(&s, "alice").await;
                    s.shutdown().await.unwrap();
                    assert_eq!(texts, vec![BEFORE.to_string()], "{what}: restored {texts:?}");
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::WrongKey, "{what}: {e}");
                    let msg = e.to_string();
                    assert!(!msg.contains(AFTER), "{what}: {msg}");
                    assert!(
                        !machine.data_dir().exists()
                            || crate::common::files_containing(&machine.data_dir(), AFTER.as_bytes()).is_empty(),
                        "{what}"
                    );
                    eprintln!("{what}: refused: {msg}");
                }
            }
        }
    }

    /// Alice's texts after a restore of the newest state with `kit` on a new machine.
    async fn restored_with(config: &StorageConfig, kit: &RecoveryKey) -> Vec<String> {
        let (_machine, machine_config) = new_machine(config);
        restore(&machine_config, RestoreTarget::Latest, Some(kit), false)
            .await
            .unwrap();
        let s = StorageService::open(machine_config).await.unwrap();
        let texts = all_texts(&s, "alice").await;
        s.shutdown().await.unwrap();
        texts
    }

    /// Write BEFORE, back up and ship; `start_epoch`; write AFTER, back up and ship.
    async fn before_and_after(s: &StorageService, start_epoch: impl std::future::Future<Output = ()>) {
        let ctx = s.chat.create_conversation("alice", "epochs", json!({})).await.unwrap();
        s.chat.append(&ctx, NewMessage::new(Role::User, BEFORE)).await.unwrap();
        s.backup.backup_now(true, &no_progress).await.unwrap();
        start_epoch.await;
        s.chat.append(&ctx, NewMessage::new(Role::User, AFTER)).await.unwrap();
        let report = s.backup.ship_journal().await.unwrap();
        assert!(report.records >= 1, "{report:?}");
        s.backup.backup_now(true, &no_progress).await.unwrap();
        // And one more write that only the journal holds.
        s.chat
            .append(&ctx, NewMessage::new(Role::Assistant, format!("{AFTER} journal only")))
            .await
            .unwrap();
        s.backup.ship_journal().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_old_recovery_kit_and_the_bucket_open_nothing_written_after_a_new_kit() {
        let Some((endpoint, bucket)) = s3_env() else { return };
        let old = TestStore::new();
        let mut config = with_s3(&old, &endpoint, &bucket);
        config.backup.ship_interval_seconds = 3600;
        let s = StorageService::open(config.clone()).await.unwrap();
        let first = s.issue_recovery_kit().await.unwrap();
        let second = std::sync::Mutex::new(None);
        before_and_after(&s, async {
            *second.lock().unwrap() = Some(s.issue_recovery_kit().await.unwrap());
        })
        .await;
        let second = second.into_inner().unwrap().unwrap();
        s.shutdown().await.unwrap();

        old_key_gets_nothing_newer(&config, Some(&first.key), |_| {}).await;

        // The current kit restores everything, the journal included.
        assert_eq!(
            restored_with(&config, &second.key).await,
            vec![BEFORE.to_string(), AFTER.to_string(), format!("{AFTER} journal only")]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leaked_key_file_and_the_bucket_open_nothing_written_after_a_rotation_with_a_new_epoch() {
        let Some((endpoint, bucket)) = s3_env() else { return };
        let old = TestStore::new();
        let mut config = with_s3(&old, &endpoint, &bucket);
        config.backup.ship_interval_seconds = 3600;
        let s = StorageService::open(config.clone()).await.unwrap();
        let kit = s.issue_recovery_kit().await.unwrap();
        let leaked = old.data_dir().parent().unwrap().join("leaked.key");
        before_and_after(&s, async {
            std::fs::copy(old.key_file(), &leaked).unwrap();
            let status = s.rotate_kek(s.config().keys.clone(), DataKeyEpoch::New).await.unwrap();
            assert_eq!(status.active_key_id, 2);
        })
        .await;
        s.shutdown().await.unwrap();

        // The thief has the old key file and the bucket, no recovery kit.
        let leaked_key = |c: &mut StorageConfig| {
            c.keys.source = KeySourceKind::File;
            c.keys.file = Some(leaked.clone());
        };
        old_key_gets_nothing_newer(&config, None, leaked_key).await;

        // The kit (not leaked) received the new data key without being on the machine.
        assert_eq!(
            restored_with(&config, &kit.key).await,
            vec![BEFORE.to_string(), AFTER.to_string(), format!("{AFTER} journal only")]
        );
    }
}
