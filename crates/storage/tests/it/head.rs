//! The authenticated head of the bucket (issue 31): deleting the newest backup, the last
//! shipments or one in the middle, or deleting, editing or rolling back the head itself,
//! makes a restore fail with the reason (nothing written) instead of quietly giving older
//! data; `accept_gap` restores what is there and lists each shortfall. Real Garage.

#![cfg(feature = "s3")]

use cloudops_storage_service::{
    no_progress, ErrorKind, HistoryRange, NewMessage, RecoveryKey, RestoreOptions, RestoreReport, RestoreTarget, Role,
    StorageConfig, StorageError, StorageService,
};
use serde_json::json;

use crate::backup::{bucket_keys, new_machine, object_bytes, put_object_bytes, s3_client, s3_env, with_s3};
use crate::common::TestStore;

/// A bucket with two backups and three shipments after the second, one message each.
struct Bucket {
    config: StorageConfig,
    kit: RecoveryKey,
    client: aws_sdk_s3::Client,
    bucket: String,
    /// `<prefix>/<store id>/`
    root: String,
    newest: String,
    context_id: String,
    _store: TestStore,
}

const TEXTS: [&str; 5] = ["one", "two", "three", "four", "five"];

impl Bucket {
    async fn new() -> Option<Bucket> {
        let (endpoint, bucket) = s3_env()?;
        let store = TestStore::new();
        let mut config = with_s3(&store, &endpoint, &bucket);
        config.backup.ship_interval_seconds = 3600;
        let s = StorageService::open(config.clone()).await.unwrap();
        let kit = s.issue_recovery_kit().await.unwrap();
        let ctx = s.chat.create_conversation("alice", "head", json!({})).await.unwrap();
        let mut newest = String::new();
        for (i, text) in TEXTS.iter().enumerate() {
            s.chat.append(&ctx, NewMessage::new(Role::User, *text)).await.unwrap();
            if i < 2 {
                newest = s.backup.backup_now(true, &no_progress).await.unwrap().name;
            } else {
                assert_eq!(s.backup.ship_journal().await.unwrap().objects, 1);
            }
        }
        let root = format!(
            "{}/{}/",
            config.backup.s3.as_ref().unwrap().prefix,
            s.key_status().store_id
        );
        s.shutdown().await.unwrap();
        Some(Bucket {
            config,
            kit: kit.key,
            client: s3_client(&endpoint).await,
            bucket,
            root,
            newest,
            context_id: ctx,
            _store: store,
        })
    }

    /// The shipped journal's object keys, in order.
    async fn shipments(&self) -> Vec<String> {
        let keys = bucket_keys(&self.client, &self.bucket, &self.root).await;
        keys.into_iter().filter(|k| k.starts_with("journal/")).collect()
    }

    async fn take(&self, key: &str) -> Vec<u8> {
        let full = format!("{}{key}", self.root);
        let bytes = object_bytes(&self.client, &self.bucket, &full).await;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .unwrap();
        bytes
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) {
        put_object_bytes(&self.client, &self.bucket, &format!("{}{key}", self.root), bytes).await;
    }

    /// Restore the newest state on a new machine; the restored texts on success.
    async fn restore(&self, accept_gap: bool) -> (Result<RestoreReport, StorageError>, Option<Vec<String>>, TestStore) {
        let (machine, config) = new_machine(&self.config);
        let options = RestoreOptions {
            target: RestoreTarget::Latest,
            from_s3: true,
            recovery_key: Some(self.kit.clone()),
            accept_gap,
            ..RestoreOptions::default()
        };
        let result = StorageService::restore_backup(&config, &options, &no_progress).await;
        let texts = match &result {
            Ok(_) => {
                let s = StorageService::open(config).await.unwrap();
                let history = s.chat.get_history(&self.context_id, HistoryRange::All).await.unwrap();
                s.shutdown().await.unwrap();
                Some(history.into_iter().map(|m| m.content).collect())
            }
            Err(_) => None,
        };
        (result, texts, machine)
    }

    /// A shortfall: refused with the reason and nothing written; with `accept_gap`, what is
    /// there, and the reason as a warning.
    async fn refused_then_accepted(&self, reason: &str, expected: &[&str]) {
        let (result, _, machine) = self.restore(false).await;
        let err = result.expect_err(reason);
        assert_eq!(err.kind(), ErrorKind::CorruptBackup, "{err}");
        assert!(err.to_string().contains(reason), "{err}");
        assert!(err.to_string().contains("--accept-gap"), "{err}");
        assert!(
            !machine.data_dir().join("keys.json").exists(),
            "a refused restore installed keys"
        );
        let (result, texts, _) = self.restore(true).await;
        let report = result.unwrap();
        assert!(
            report.warnings.iter().any(|w| w.contains(reason)),
            "{:?}",
            report.warnings
        );
        assert_eq!(texts.unwrap(), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_refuses_a_bucket_short_of_its_head_and_accepts_the_gap_when_asked() {
    let Some(b) = Bucket::new().await else { return };
    // Intact: everything, no warning.
    let (result, texts, _) = b.restore(false).await;
    assert!(result.unwrap().warnings.is_empty());
    assert_eq!(texts.unwrap(), TEXTS);

    // The newest manifest deleted: --latest would silently start from the first backup.
    // (Accepted, the first backup plus the journal shipped after it still give everything.)
    let manifest = format!("{}.json", b.newest);
    let bytes = b.take(&manifest).await;
    b.refused_then_accepted("the newest backup it names", &TEXTS).await;
    b.put(&manifest, bytes).await;

    // The last shipment deleted: the newest write would be dropped with exit 0.
    let shipments = b.shipments().await;
    assert_eq!(shipments.len(), 3, "{shipments:?}");
    let bytes = b.take(&shipments[2]).await;
    b.refused_then_accepted("the last shipments are missing", &TEXTS[..4])
        .await;
    b.put(&shipments[2], bytes).await;

    // A shipment in the middle deleted: a gap, no longer only printed.
    let bytes = b.take(&shipments[1]).await;
    b.refused_then_accepted("is missing: the records after it cannot be applied", &TEXTS[..3])
        .await;
    b.put(&shipments[1], bytes).await;

    // The head deleted (to hide the deletions above), or edited.
    let head = b.take("HEAD").await;
    b.refused_then_accepted("the head object is missing", &TEXTS).await;
    let edited = String::from_utf8(head.clone())
        .unwrap()
        .replacen("\"counter\": ", "\"counter\": 1", 1);
    b.put("HEAD", edited.into_bytes()).await;
    b.refused_then_accepted("does not authenticate", &TEXTS).await;
    b.put("HEAD", head).await;
    let (result, texts, _) = b.restore(false).await;
    assert!(result.unwrap().warnings.is_empty());
    assert_eq!(texts.unwrap(), TEXTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_rolled_back_to_an_older_one_is_noticed_by_the_store_that_wrote_it() {
    let Some((endpoint, bucket)) = s3_env() else { return };
    let t = TestStore::new();
    let mut config = with_s3(&t, &endpoint, &bucket);
    config.backup.ship_interval_seconds = 3600;
    let s = StorageService::open(config.clone()).await.unwrap();
    let ctx = s
        .chat
        .create_conversation("alice", "rollback", json!({}))
        .await
        .unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "one")).await.unwrap();
    s.backup.backup_now(true, &no_progress).await.unwrap();
    let root = format!(
        "{}/{}/",
        config.backup.s3.as_ref().unwrap().prefix,
        s.key_status().store_id
    );
    let client = s3_client(&endpoint).await;
    let old_head = object_bytes(&client, &bucket, &format!("{root}HEAD")).await;
    s.chat.append(&ctx, NewMessage::new(Role::User, "two")).await.unwrap();
    let newest = s.backup.backup_now(true, &no_progress).await.unwrap();
    s.shutdown().await.unwrap();
    // The bucket owner deletes the newest backup and puts the old (authentic) head back.
    client
        .delete_object()
        .bucket(&bucket)
        .key(format!("{root}{}.json", newest.name))
        .send()
        .await
        .unwrap();
    put_object_bytes(&client, &bucket, &format!("{root}HEAD"), old_head).await;
    let options = RestoreOptions {
        from_s3: true,
        ..RestoreOptions::default()
    };
    let err = StorageService::restore_backup(&config, &options, &no_progress)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptBackup, "{err}");
    assert!(err.to_string().contains("rolled back"), "{err}");
    // Nothing changed: the store still holds both messages.
    let s = StorageService::open(config).await.unwrap();
    let texts: Vec<String> = s
        .chat
        .get_history(&ctx, HistoryRange::All)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(texts, ["one", "two"]);
    s.shutdown().await.unwrap();
}
