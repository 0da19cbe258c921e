//! Disaster recovery: recovery kits, and a store restored on a new machine from the bucket
//! and the recovery key alone (real Garage server, started by scripts/test.sh).

use cloudops_storage_service::{ErrorKind, RecoveryKey, StorageService};
use serde_json::json;

use crate::common::TestStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_kit_is_issued_on_request_and_replaced_by_the_next() {
    let t = TestStore::new();
    let s = t.open().await;
    assert_eq!(
        s.key_status().recovery_kit_created_at_ms,
        None,
        "a new store has no kit"
    );
    assert_eq!(s.health().await.unwrap().recovery_kit_created_at_ms, None);
    let first = s.issue_recovery_kit().await.unwrap();
    assert_eq!(first.store_id, s.key_status().store_id);
    assert_eq!(s.key_status().recovery_kit_created_at_ms, Some(first.created_at_ms));
    let second = s.issue_recovery_kit().await.unwrap();
    assert_ne!(first.key, second.key);
    assert_eq!(RecoveryKey::parse(&second.document()).unwrap(), second.key);
    s.shutdown().await.unwrap();

    // The key never reaches the disk in clear, and the store still opens with its own key.
    let revealed = second.key.reveal();
    for needle in [revealed.as_str(), &revealed.replace('-', "")] {
        assert!(
            crate::common::files_containing(&t.data_dir(), needle.as_bytes()).is_empty(),
            "recovery key on disk"
        );
    }
    let s = t.open().await;
    assert_eq!(s.key_status().recovery_kit_created_at_ms, Some(second.created_at_ms));
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_key_restore_needs_an_empty_data_dir_and_the_bucket() {
    let t = TestStore::new();
    let s = t.open().await;
    let kit = s.issue_recovery_kit().await.unwrap();
    s.shutdown().await.unwrap();
    let options = cloudops_storage_service::RestoreOptions {
        from_s3: true,
        recovery_key: Some(kit.key.clone()),
        ..Default::default()
    };
    let err = StorageService::restore_backup(&t.config(), &options, &cloudops_storage_service::no_progress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already holds a store"), "{err}");

    let empty = TestStore::new();
    let local = cloudops_storage_service::RestoreOptions {
        recovery_key: Some(kit.key.clone()),
        ..Default::default()
    };
    let err = StorageService::restore_backup(&empty.config(), &local, &cloudops_storage_service::no_progress)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotInitialized, "{err}");
    assert!(err.to_string().contains("--from-s3"), "{err}");
    assert!(!empty.data_dir().exists(), "a refused restore created the data dir");

    // JSON requests (the Tauri plugin's) carry the key as text; it is never written back out.
    let text = json!({"from_s3": true, "recovery_key": kit.document()});
    let parsed: cloudops_storage_service::RestoreOptions = serde_json::from_value(text).unwrap();
    let echoed = serde_json::to_string(&parsed).unwrap();
    assert!(!echoed.contains("recovery_key"), "{echoed}");
    let typo = json!({"recovery_key": "0000-1111"});
    let err = serde_json::from_value::<cloudops_storage_service::RestoreOptions>(typo).unwrap_err();
    assert!(err.to_string().contains("not a valid recovery key"), "{err}");
}

#[cfg(feature = "s3")]
mod disaster {
    use cloudops_storage_service::{
        no_progress, AWSResource, ErrorKind, HistoryRange, KeySourceKind, NewMessage, ResourceFilter, RestoreOptions,
        RestoreReport, RestoreTarget, Role, SearchOptions, StorageConfig, StorageError, StorageService,
    };
    use serde_json::json;

    use crate::backup::{new_machine, s3_env, with_s3};
    use crate::common::TestStore;

    /// Everything a user would check after a restore, as comparable JSON.
    async fn everything(s: &StorageService) -> serde_json::Value {
        let mut users = Vec::new();
        for user in ["alice", "bob"] {
            let mut conversations = s.chat.all_conversations(user).await.unwrap();
            conversations.sort_by(|a, b| a.context_id.cmp(&b.context_id));
            let mut histories = Vec::new();
            for c in &conversations {
                histories.push(s.chat.get_history(&c.context_id, HistoryRange::All).await.unwrap());
            }
            let search = s
                .chat
                .search_conversations(user, "bill spike", &SearchOptions::default())
                .await
                .unwrap();
            users.push(json!({
                "conversations": serde_json::to_value(&conversations).unwrap(),
                "histories": serde_json::to_value(&histories).unwrap(),
                "search": serde_json::to_value(&search).unwrap(),
            }));
        }
        let resources = s.estate.list(&ResourceFilter::default(), 100).await.unwrap();
        let hits = s
            .estate
            .search("production database", &ResourceFilter::default(), 10)
            .await
            .unwrap();
        json!({
            "users": users,
            "resources": serde_json::to_value(&resources).unwrap(),
            "estate_search": serde_json::to_value(&hits).unwrap(),
        })
    }

    fn resource(kind: &str, id: &str, name: &str) -> AWSResource {
        let (service, _) = kind.split_once(':').unwrap();
        AWSResource {
            resource_type: kind.into(),
            identifier: id.into(),
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            service: service.into(),
            name: Some(name.into()),
            state: Some("available".into()),
            tags: Some([("env".to_string(), "production".to_string())].into()),
            ..AWSResource::default()
        }
    }

    async fn restore(
        config: &StorageConfig,
        target: RestoreTarget,
        key: &cloudops_storage_service::RecoveryKey,
    ) -> Result<RestoreReport, StorageError> {
        let options = RestoreOptions {
            target,
            from_s3: true,
            recovery_key: Some(key.clone()),
            store_id: None,
            skip_journal: false,
            accept_gap: false,
        };
        StorageService::restore_backup(config, &options, &no_progress).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_comes_back_on_a_new_machine_from_the_bucket_and_the_recovery_key() {
        let Some((endpoint, bucket)) = s3_env() else { return };
        let old = TestStore::new();
        let config = with_s3(&old, &endpoint, &bucket);
        let s = StorageService::open(config.clone()).await.unwrap();
        let kit_then = s.issue_recovery_kit().await.unwrap();
        let bill = s
            .chat
            .create_conversation("alice", "Bill spike in March", json!({"pinned": true}))
            .await
            .unwrap();
        s.chat
            .append(&bill, NewMessage::new(Role::User, "Why did the bill spike?"))
            .await
            .unwrap();
        s.chat
            .append(
                &bill,
                NewMessage::new(Role::Assistant, "NAT gateway data processing doubled."),
            )
            .await
            .unwrap();
        let rds = s
            .chat
            .create_conversation("alice", "RDS sizing", json!({}))
            .await
            .unwrap();
        s.chat
            .append(&rds, NewMessage::new(Role::User, "Is db.r6g.large enough?"))
            .await
            .unwrap();
        let bob = s
            .chat
            .create_conversation("bob", "Lambda timeouts", json!({}))
            .await
            .unwrap();
        s.chat
            .append(&bob, NewMessage::new(Role::User, "The bill spike came from retries"))
            .await
            .unwrap();
        for r in [
            resource("rds:db", "orders-prod", "orders production database"),
            resource("ec2:instance", "i-0abc", "web server"),
            resource("s3:bucket", "logs-prod", "access logs"),
        ] {
            s.estate.upsert_resource(r).await.unwrap();
        }
        let first = s.backup.backup_now(true, &no_progress).await.unwrap();
        let at_first = everything(&s).await;
        assert!(at_first["resources"].as_array().unwrap().len() == 3);

        // After the first backup: more data, and the recovery kit is replaced.
        s.chat
            .append(&rds, NewMessage::new(Role::Assistant, "Yes, at 40% CPU."))
            .await
            .unwrap();
        let kit_now = s.issue_recovery_kit().await.unwrap();
        let second = s.backup.backup_now(true, &no_progress).await.unwrap();
        let at_second = everything(&s).await;
        assert_ne!(at_first, at_second);
        s.shutdown().await.unwrap();

        // The machine is lost: data dir and key file both gone.
        std::fs::remove_dir_all(old.data_dir()).unwrap();
        std::fs::remove_file(old.key_file()).unwrap();

        // A new machine lists the bucket without any store or key.
        let (new, new_config) = new_machine(&config);
        let listed: Vec<String> = StorageService::list_remote_backups(&new_config, None)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(listed, vec![first.name.clone(), second.name.clone()]);

        // A wrong recovery key (another store's) is a clear error and writes nothing.
        let stranger = TestStore::new();
        let other = stranger.open().await;
        let wrong = other.issue_recovery_kit().await.unwrap().key;
        other.shutdown().await.unwrap();
        let err = restore(&new_config, RestoreTarget::Latest, &wrong).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongKey, "{err}");
        assert!(err.to_string().contains("wrong recovery key"), "{err}");
        assert!(!new.data_dir().exists(), "a refused restore wrote to the new machine");

        // The kit replaced after the first backup does not open the newest one: an error that
        // says so, not a silent restore of older data.
        let err = restore(&new_config, RestoreTarget::Latest, &kit_then.key)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongKey, "{err}");
        assert!(err.to_string().contains(&second.name), "{err}");
        assert!(!new.data_dir().exists());

        // The current kit restores the newest backup: everything is back, under the new key source.
        let report = restore(&new_config, RestoreTarget::Latest, &kit_now.key).await.unwrap();
        assert_eq!(report.backup.name, second.name);
        let keys = report.keys.expect("keys installed");
        assert_eq!(keys.key_source, KeySourceKind::Env);
        assert_eq!(keys.recovery_kit_created_at_ms, Some(kit_now.created_at_ms));
        let s = StorageService::open(new_config.clone()).await.unwrap();
        assert_eq!(everything(&s).await, at_second);
        // It keeps working: a new message, a new backup to the same place.
        s.chat
            .append(&bill, NewMessage::new(Role::User, "after the disaster"))
            .await
            .unwrap();
        let third = s.backup.backup_now(true, &no_progress).await.unwrap();
        assert_eq!(third.store_id, first.store_id);
        s.shutdown().await.unwrap();
        assert!(!new.key_file().exists(), "the env source needs no key file");

        // The backup taken before the kit was replaced restores with the kit current then.
        let (older, older_config) = new_machine(&config);
        let err = restore(&older_config, RestoreTarget::Named(first.name.clone()), &kit_now.key)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongKey, "{err}");
        let report = restore(&older_config, RestoreTarget::Named(first.name.clone()), &kit_then.key)
            .await
            .unwrap();
        assert_eq!(report.backup.name, first.name);
        let s = StorageService::open(older_config).await.unwrap();
        assert_eq!(everything(&s).await, at_first);
        s.shutdown().await.unwrap();
        drop(older);
    }

    /// The texts of a conversation's messages, in order.
    async fn texts(s: &StorageService, context_id: &str) -> Vec<String> {
        s.chat
            .get_history(context_id, HistoryRange::All)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.content)
            .collect()
    }

    /// Point-in-time restore (issue 16): writes made after the last backup are shipped every
    /// interval; after the machine is lost they come back from the bucket with the recovery key,
    /// all of them, or exactly those up to a time between two writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_shipped_after_the_last_backup_come_back_all_or_up_to_a_time() {
        let Some((endpoint, bucket)) = s3_env() else { return };
        let old = TestStore::new();
        let mut config = with_s3(&old, &endpoint, &bucket);
        config.backup.ship_interval_seconds = 1;
        let s = StorageService::open(config.clone()).await.unwrap();
        let kit = s.issue_recovery_kit().await.unwrap();
        s.start_auto_backup().await;
        let ctx = s
            .chat
            .create_conversation("alice", "NAT costs", json!({}))
            .await
            .unwrap();
        s.chat
            .append(&ctx, NewMessage::new(Role::User, "before the backup"))
            .await
            .unwrap();
        let backup = s.backup.backup_now(true, &no_progress).await.unwrap();
        assert!(backup.journal.is_some(), "the manifest marks where the journal goes on");
        s.chat
            .append(&ctx, NewMessage::new(Role::Assistant, "first after the backup"))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let between = chrono_now_ms();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        s.chat
            .append(&ctx, NewMessage::new(Role::User, "second after the backup"))
            .await
            .unwrap();
        let acknowledged = chrono_now_ms();
        // One shipping interval later, the schedule has shipped every acknowledged write.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let health = s.health().await.unwrap();
            let shipped = health.backup.journal_shipped_at_ms.unwrap_or(0);
            if health.backup.journal_unshipped_since_ms.is_none() && shipped >= acknowledged {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not shipped: {:?}", health.backup);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let status = s.backup.status();
        assert!(
            status.journal_shipping && status.journal_shipped_records >= 2,
            "{status:?}"
        );
        let all = texts(&s, &ctx).await;
        assert_eq!(all.len(), 3);

        // The machine is lost: no clean shutdown (nothing shipped at close), then the data dir
        // and the key file both gone.
        drop(s);
        // Background tasks drop their handles on the store a moment later: the data-dir lock
        // goes with the last one (after the engine's files are closed).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while cloudops_storage_service::store::EmbeddedStore::open(&old.data_dir()).is_err() {
            assert!(std::time::Instant::now() < deadline, "the store was never released");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        std::fs::remove_dir_all(old.data_dir()).unwrap();
        std::fs::remove_file(old.key_file()).unwrap();

        // Latest: the backup, then everything shipped after it.
        let (_latest, latest_config) = new_machine(&config);
        let report = restore(&latest_config, RestoreTarget::Latest, &kit.key).await.unwrap();
        assert_eq!(report.backup.name, backup.name);
        let replayed = report.journal.expect("journal replayed");
        assert!(replayed.records >= 2 && replayed.missing_seq.is_none(), "{replayed:?}");
        let s = StorageService::open(latest_config).await.unwrap();
        assert_eq!(texts(&s, &ctx).await, all);
        let conversation = s.chat.get_conversation(&ctx).await.unwrap();
        assert_eq!(
            conversation.message_count, 3,
            "the conversation's own record is replayed too"
        );
        s.shutdown().await.unwrap();

        // A time between the two writes: exactly the first.
        let (_between, between_config) = new_machine(&config);
        let report = restore(&between_config, RestoreTarget::At(between), &kit.key)
            .await
            .unwrap();
        assert!(report.journal.unwrap().last_record_ms.unwrap() <= between);
        let s = StorageService::open(between_config).await.unwrap();
        assert_eq!(texts(&s, &ctx).await, all[..2]);
        s.shutdown().await.unwrap();

        // The backup alone, when asked.
        let (_alone, alone_config) = new_machine(&config);
        let options = RestoreOptions {
            from_s3: true,
            recovery_key: Some(kit.key.clone()),
            skip_journal: true,
            ..RestoreOptions::default()
        };
        let report = StorageService::restore_backup(&alone_config, &options, &no_progress)
            .await
            .unwrap();
        assert_eq!(report.journal, None);
        let s = StorageService::open(alone_config).await.unwrap();
        assert_eq!(texts(&s, &ctx).await, all[..1]);
        s.shutdown().await.unwrap();
    }

    fn chrono_now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }
}
