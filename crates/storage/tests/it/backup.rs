//! Backups on real stores: round trip, restore at a time, damaged archives, wrong key,
//! retention with an injected clock, and no plaintext in archives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cloudops_storage_service::{no_progress, ErrorKind, Phase, StorageService};
use cloudops_storage_service::{
    BackupError, RestoreOptions, RestoreReport, RestoreTarget, StorageConfig, StorageError,
};
use cloudops_storage_service::{Conversation, ConversationUpdate, HistoryRange, Message, NewMessage, Role};
use serde_json::json;

use crate::common::{self, files_containing, now_ms, TestStore};

/// Restore `target` from the local folder.
async fn restore(config: &StorageConfig, target: RestoreTarget) -> Result<RestoreReport, StorageError> {
    let options = RestoreOptions {
        target,
        ..Default::default()
    };
    StorageService::restore_backup(config, &options, &no_progress).await
}

#[cfg(feature = "s3")]
/// Restore `target` from the S3 target.
async fn restore_s3(config: &StorageConfig, target: RestoreTarget) -> Result<RestoreReport, StorageError> {
    let options = RestoreOptions {
        target,
        from_s3: true,
        ..Default::default()
    };
    StorageService::restore_backup(config, &options, &no_progress).await
}

const DAY_MS: i64 = 86_400_000;

/// Everything a user sees: conversations and their full histories.
async fn state(s: &StorageService, user: &str) -> Vec<(Conversation, Vec<Message>)> {
    let mut out = Vec::new();
    let mut all = s.chat.all_conversations(user).await.unwrap();
    all.sort_by(|a, b| a.context_id.cmp(&b.context_id));
    for c in all {
        let h = s.chat.get_history(&c.context_id, HistoryRange::All).await.unwrap();
        out.push((c, h));
    }
    out
}

/// A store with enough sealed (incompressible) text for a multi-chunk archive.
async fn filled(t: &TestStore, marker: &str) -> Vec<String> {
    let s = t.open().await;
    let mut ctxs = Vec::new();
    for c in 0..3 {
        let ctx = s
            .chat
            .create_conversation("alice", &format!("conv {c}"), json!({}))
            .await
            .unwrap();
        for i in 0..100 {
            let text = format!("{marker} message {i} {}", "lorem ipsum dolor ".repeat(60));
            s.chat.append(&ctx, NewMessage::new(Role::User, text)).await.unwrap();
        }
        ctxs.push(ctx);
    }
    s.shutdown().await.unwrap();
    ctxs
}

fn archive_of(t: &TestStore, name: &str) -> PathBuf {
    let snapshots = t.data_dir().join("snapshots");
    let store_dir = std::fs::read_dir(&snapshots).unwrap().next().unwrap().unwrap().path();
    store_dir.join(format!("{name}.cosb"))
}

fn set_manifest_sha(archive: &Path) {
    use sha2::Digest as _;
    let sha: String = sha2::Sha256::digest(std::fs::read(archive).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let manifest = archive.with_extension("json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["sha256"] = json!(sha);
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
}

/// (offset, length) of each chunk frame after the 16-byte header.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 16;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 1..pos + 5].try_into().unwrap()) as usize;
        out.push((pos, 5 + len));
        pos += 5 + len;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_restores_exactly_the_backed_up_state() {
    let t = TestStore::new();
    let ctxs = filled(&t, "rt").await;
    let (name, before) = {
        let s = t.open().await;
        let seen = std::sync::Mutex::new(Vec::new());
        let m = s
            .backup
            .backup_now(false, &|p| seen.lock().unwrap().push((p.phase, p.done, p.total)))
            .await
            .unwrap();
        assert_eq!(
            seen.into_inner().unwrap(),
            vec![
                (Phase::BackupSnapshot, 0, 2),
                (Phase::BackupArchive, 1, 2),
                (Phase::BackupUpload, 2, 2)
            ]
        );
        // Upload without a target is refused before any work.
        let err = s.backup.backup_now(true, &no_progress).await.unwrap_err();
        assert!(matches!(err, BackupError::NoRemote), "{err}");
        assert_eq!(s.backup.list().unwrap().len(), 1);
        assert_eq!(m.points(), 303 + common::store_record_points());
        if common::remote_backend().is_some() {
            assert_eq!(m.writer_pause_ms, 0.0, "a server export pauses no writer");
        } else {
            assert!(m.writer_pause_ms > 0.0);
        }
        let before = state(&s, "alice").await;
        // Change everything after the backup.
        s.chat
            .append(&ctxs[0], NewMessage::new(Role::Assistant, "after the backup"))
            .await
            .unwrap();
        s.chat.delete_conversation(&ctxs[1]).await.unwrap();
        let update = ConversationUpdate {
            title: Some("renamed".into()),
            ..Default::default()
        };
        s.chat.update_conversation(&ctxs[2], update).await.unwrap();
        assert_ne!(state(&s, "alice").await, before);
        // Restore refuses while the store is open here.
        let err = restore(s.config(), RestoreTarget::Latest).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Locked);
        s.shutdown().await.unwrap();
        (m.name, before)
    };
    let seen = std::sync::Mutex::new(Vec::new());
    let options = RestoreOptions {
        target: RestoreTarget::Named(name),
        ..Default::default()
    };
    let report = StorageService::restore_backup(&t.config(), &options, &|p| seen.lock().unwrap().push(p.phase))
        .await
        .unwrap();
    assert_eq!(
        seen.into_inner().unwrap(),
        vec![Phase::RestoreCheck, Phase::RestoreSwap, Phase::RestoreSwap]
    );
    assert!(
        report.previous_data.as_ref().unwrap().exists(),
        "the replaced data is kept aside"
    );
    let s = t.open().await;
    assert_eq!(state(&s, "alice").await, before);
    // Appending continues the restored sequence.
    assert_eq!(
        s.chat
            .append(&ctxs[0], NewMessage::new(Role::User, "x"))
            .await
            .unwrap()
            .message_index,
        100
    );
    // The next good backup clears the kept-aside data.
    s.backup.create_snapshot().await.unwrap();
    assert!(!report.previous_data.unwrap().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_at_a_time_picks_the_backup_taken_before_it() {
    let t = TestStore::new();
    let now = now_ms();
    let ctx;
    let (first, second);
    {
        let mut s = t.open().await;
        ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
        s.chat.append(&ctx, NewMessage::new(Role::User, "one")).await.unwrap();
        s.backup = s.backup.with_clock(Arc::new(move || now - 2 * DAY_MS));
        first = s.backup.create_snapshot().await.unwrap();
        s.chat.append(&ctx, NewMessage::new(Role::User, "two")).await.unwrap();
        s.backup = s.backup.with_clock(Arc::new(move || now - DAY_MS));
        second = s.backup.create_snapshot().await.unwrap();
        s.chat.append(&ctx, NewMessage::new(Role::User, "three")).await.unwrap();
        s.shutdown().await.unwrap();
    }
    let count = |t: &TestStore| {
        let config = t.config();
        let ctx = ctx.clone();
        async move {
            let s = StorageService::open(config).await.unwrap();
            let n = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap().len();
            s.shutdown().await.unwrap();
            n
        }
    };
    let r = restore(&t.config(), RestoreTarget::At(now - DAY_MS - 1)).await.unwrap();
    assert_eq!(r.backup.name, first.name);
    assert_eq!(count(&t).await, 1);
    let r = restore(&t.config(), RestoreTarget::At(now)).await.unwrap();
    assert_eq!(r.backup.name, second.name);
    assert_eq!(count(&t).await, 2);
    let err = restore(&t.config(), RestoreTarget::At(now - 3 * DAY_MS))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no backup taken at or before"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_archives_and_wrong_keys_leave_live_data_untouched() {
    let t = TestStore::new();
    let _ = filled(&t, "dmg").await;
    let (name, live) = {
        let s = t.open().await;
        let m = s.backup.create_snapshot().await.unwrap();
        s.chat
            .append(
                &s.chat.all_conversations("alice").await.unwrap()[0].context_id,
                NewMessage::new(Role::User, "live only"),
            )
            .await
            .unwrap();
        let live = state(&s, "alice").await;
        s.shutdown().await.unwrap();
        (m.name, live)
    };
    let archive = archive_of(&t, &name);
    let manifest = archive.with_extension("json");
    let (good, good_manifest) = (std::fs::read(&archive).unwrap(), std::fs::read(&manifest).unwrap());
    assert!(frames(&good).len() >= 3, "a multi-chunk archive");

    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage, bool, ErrorKind, &str)> = vec![
        (
            "flipped byte",
            Box::new(|b: &mut Vec<u8>| {
                let i = frames(b)[1].0 + 100; // inside the second chunk's ciphertext
                b[i] ^= 1;
            }),
            false,
            ErrorKind::CorruptBackup,
            "checksum",
        ),
        (
            "flipped byte, checksum forged",
            Box::new(|b: &mut Vec<u8>| {
                let i = frames(b)[1].0 + 100; // inside the second chunk's ciphertext
                b[i] ^= 1;
            }),
            true,
            ErrorKind::CorruptBackup,
            "authentication",
        ),
        (
            "last chunk cut off",
            Box::new(|b: &mut Vec<u8>| {
                let f = frames(b);
                let (pos, _) = f[f.len() - 1];
                b.truncate(pos);
            }),
            true,
            ErrorKind::CorruptBackup,
            "truncated",
        ),
        (
            "chunks reordered",
            Box::new(|b: &mut Vec<u8>| {
                let f = frames(b);
                let (a, b_) = (f[0], f[1]);
                let first = b[a.0..a.0 + a.1].to_vec();
                let second = b[b_.0..b_.0 + b_.1].to_vec();
                let mut swapped = b[..a.0].to_vec();
                swapped.extend_from_slice(&second);
                swapped.extend_from_slice(&first);
                swapped.extend_from_slice(&b[b_.0 + b_.1..]);
                *b = swapped;
            }),
            true,
            ErrorKind::CorruptBackup,
            "authentication",
        ),
    ];
    // A forged checksum is an edit of the manifest: its authentication code refuses it, so
    // nothing is restored and the live data stays (the archive's own AEAD, which would catch
    // the damage next, is tested in `backup/archive.rs`).
    let cases = cases.into_iter().map(|(what, damage, forge, kind, words)| {
        if forge {
            (what, damage, forge, ErrorKind::Backup, "no backup found")
        } else {
            (what, damage, forge, kind, words)
        }
    });
    for (what, damage, forge, kind, words) in cases {
        let mut bytes = good.clone();
        damage(&mut bytes);
        std::fs::write(&archive, &bytes).unwrap();
        std::fs::write(&manifest, &good_manifest).unwrap();
        if forge {
            set_manifest_sha(&archive);
        }
        let err = restore(&t.config(), RestoreTarget::Latest).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{what}: {err}");
        assert!(err.to_string().contains(words), "{what}: {err}");
        let s = t.open().await;
        assert_eq!(state(&s, "alice").await, live, "{what}: live data changed");
        s.shutdown().await.unwrap();
    }
    std::fs::write(&manifest, &good_manifest).unwrap();

    std::fs::remove_file(&archive).unwrap();
    let err = restore(&t.config(), RestoreTarget::Latest).await.unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    std::fs::write(&archive, &good).unwrap();

    // A manifest edited to disagree with the archive's contents (count mismatch) is refused
    // by its authentication code before anything is unpacked.
    let mut m: serde_json::Value = serde_json::from_slice(&good_manifest).unwrap();
    let n = m["collections"][1]["points"].as_u64().unwrap();
    m["collections"][1]["points"] = json!(n + 1);
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let err = restore(&t.config(), RestoreTarget::Latest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backup, "{err}");
    assert!(err.to_string().contains("no backup found"), "{err}");
    std::fs::write(&manifest, &good_manifest).unwrap();

    // Not enough disk for the unpacked copy (a reserve larger than the disk).
    let mut tight = t.config();
    tight.store.min_free_bytes = u64::MAX / 4;
    let err = restore(&tight, RestoreTarget::Latest).await.unwrap_err();
    assert!(err.to_string().contains("not enough free disk"), "{err}");

    let key = std::fs::read(t.key_file()).unwrap();
    std::fs::write(t.key_file(), base64_key(7)).unwrap();
    let err = restore(&t.config(), RestoreTarget::Latest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKey);
    std::fs::write(t.key_file(), key).unwrap();

    let s = t.open().await;
    assert_eq!(state(&s, "alice").await, live);
    s.shutdown().await.unwrap();
    // And the intact archive still restores.
    restore(&t.config(), RestoreTarget::Latest).await.unwrap();
}

fn base64_key(byte: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_recent_and_newest_with_an_injected_clock() {
    let t = TestStore::new();
    let mut s = t.open().await;
    let ctx = s.chat.create_conversation("u", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "x")).await.unwrap();
    let day0 = 20_000 * DAY_MS;
    let mut names = Vec::new();
    for day in [0, 5, 10] {
        s.backup = s.backup.with_clock(Arc::new(move || day0 + day * DAY_MS));
        names.push(s.backup.create_snapshot().await.unwrap().name);
    }
    s.backup = s.backup.with_clock(Arc::new(move || day0 + 10 * DAY_MS));
    let dry = s.backup.prune(true).await.unwrap();
    assert_eq!(dry.removed, vec![names[0].clone()]);
    assert_eq!(s.backup.list().unwrap().len(), 3, "a dry run deletes nothing");
    s.backup.prune(false).await.unwrap();
    assert_eq!(
        s.backup
            .list()
            .unwrap()
            .iter()
            .map(|m| m.name.clone())
            .collect::<Vec<_>>(),
        names[1..]
    );
    // Far in the future everything is old, but the newest good backup stays.
    s.backup = s.backup.with_clock(Arc::new(move || day0 + 100 * DAY_MS));
    s.backup.prune(false).await.unwrap();
    assert_eq!(s.backup.list().unwrap().len(), 1);
    assert_eq!(s.backup.list().unwrap()[0].name, names[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_hold_no_plaintext() {
    let t = TestStore::new();
    let marker = format!("BACKUP-MARKER-{}", uuid::Uuid::new_v4().simple());
    filled(&t, &marker).await;
    let s = t.open().await;
    let m = s.backup.create_snapshot().await.unwrap();
    assert!(m.archive_bytes > 0);
    let hits = files_containing(&s.backup.dir(), marker.as_bytes());
    assert!(hits.is_empty(), "plaintext marker found in {hits:?}");
    s.shutdown().await.unwrap();
}

#[cfg(feature = "s3")]
/// The S3 server's coordinates, from scripts/test.sh (Garage on loopback). Outside CI the S3
/// tests skip with a reason when none runs; under CI=true that is a failure.
pub(crate) fn s3_env() -> Option<(String, String)> {
    match (
        std::env::var("CLOUDOPS_TEST_S3_ENDPOINT"),
        std::env::var("CLOUDOPS_TEST_S3_BUCKET"),
    ) {
        (Ok(endpoint), Ok(bucket)) => Some((endpoint, bucket)),
        _ => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but no S3 server was started: run the suite through scripts/test.sh"
            );
            eprintln!("SKIPPED: no S3 server (run scripts/test.sh, which starts Garage)");
            None
        }
    }
}

#[cfg(feature = "s3")]
/// An SDK client of the test's S3 server, to change the bucket behind the store's back.
pub(crate) async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("garage"))
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build(),
    )
}

#[cfg(feature = "s3")]
/// Every object key under `root` in `bucket`, without the root, sorted.
pub(crate) async fn bucket_keys(client: &aws_sdk_s3::Client, bucket: &str, root: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(root)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        keys.extend(
            page.contents()
                .iter()
                .map(|o| o.key().unwrap().trim_start_matches(root).to_string()),
        );
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    keys.sort();
    keys
}

/// Prune fails closed on local backups too: an edited manifest stops it, nothing is deleted,
/// and once the manifest is put back retention goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_prune_deletes_nothing_while_a_manifest_does_not_authenticate() {
    let t = TestStore::new();
    let mut config = t.config();
    config.backup.keep_last = 1;
    config.backup.local_keep_days = 0;
    let s = StorageService::open(config).await.unwrap();
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "one")).await.unwrap();
    let first = s.backup.create_snapshot().await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "two")).await.unwrap();
    let newest = s.backup.create_snapshot().await.unwrap();
    let path = s.backup.dir().join(format!("{}.json", newest.name));
    let original = std::fs::read(&path).unwrap();
    let mut edited: serde_json::Value = serde_json::from_slice(&original).unwrap();
    edited["created_at_ms"] = (newest.created_at_ms + 1).into();
    std::fs::write(&path, serde_json::to_vec(&edited).unwrap()).unwrap();
    let files = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = files(&s.backup.dir());
    let err = s.backup.prune(false).await.unwrap_err();
    assert!(err.to_string().contains(&newest.name), "{err}");
    assert_eq!(files(&s.backup.dir()), before, "prune deleted files");
    std::fs::write(&path, original).unwrap();
    let report = s.backup.prune(false).await.unwrap();
    assert_eq!(report.removed, [first.name]);
    s.backup.verify(Some(&newest.name)).await.unwrap();
    s.shutdown().await.unwrap();
}

/// Prune fails closed (issue 31): while one manifest in the bucket does not authenticate (one
/// character of the newest one's `app_version` changed), prune (and its dry run) deletes
/// nothing, local or remote, and names that manifest and why. Before, it counted the manifest
/// as absent and swept the newest backup's index, chunks and shipped journal. Put back, the
/// backup verifies and prune goes on.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_nothing_while_a_manifest_does_not_authenticate() {
    let Some((endpoint, bucket)) = s3_env() else { return };
    let t = TestStore::new();
    let mut config = with_s3(&t, &endpoint, &bucket);
    config.backup.keep_last = 1;
    config.backup.local_keep_days = 0;
    config.backup.s3.as_mut().unwrap().keep_days = 0;
    let s = StorageService::open(config.clone()).await.unwrap();
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "one")).await.unwrap();
    let first = s.backup.backup_now(true, &no_progress).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "two")).await.unwrap();
    let newest = s.backup.backup_now(true, &no_progress).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "three")).await.unwrap();
    let shipped = s.backup.ship_journal().await.unwrap();
    // The embedded store ships its journal; a Qdrant server keeps no ship log.
    assert_eq!(shipped.records > 0, common::remote_backend().is_none(), "{shipped:?}");

    let client = s3_client(&endpoint).await;
    let root = format!(
        "{}/{}/",
        config.backup.s3.as_ref().unwrap().prefix,
        s.key_status().store_id
    );
    let before = bucket_keys(&client, &bucket, &root).await;
    let key = format!("{root}{}.json", newest.name);
    let original = object_bytes(&client, &bucket, &key).await;
    let mut edited: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let version = edited["app_version"].as_str().unwrap().to_string();
    let changed = format!(
        "{}{}",
        &version[..version.len() - 1],
        if version.ends_with('9') { '8' } else { '9' }
    );
    edited["app_version"] = changed.into();
    let put = |body: Vec<u8>| client.put_object().bucket(&bucket).key(&key).body(body.into()).send();
    put(serde_json::to_vec(&edited).unwrap()).await.unwrap();

    for dry_run in [true, false] {
        let err = s.backup.prune(dry_run).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&newest.name) && message.contains("authentication code"),
            "{message}"
        );
        assert_eq!(
            cloudops_storage_service::StorageError::from(err).kind(),
            ErrorKind::Backup
        );
    }
    assert_eq!(
        bucket_keys(&client, &bucket, &root).await,
        before,
        "prune deleted objects"
    );
    let local: Vec<String> = s.backup.list().unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(local, [first.name.clone(), newest.name.clone()]);

    put(original).await.unwrap();
    s.backup.verify_remote(Some(&newest.name)).await.unwrap();
    let report = s.backup.prune(false).await.unwrap();
    assert_eq!(report.removed_remote, [first.name.as_str()]);
    assert_eq!(report.removed, [first.name.as_str()]);
    s.backup.verify_remote(Some(&newest.name)).await.unwrap();
    s.shutdown().await.unwrap();
}

/// A new machine for disaster-recovery tests: an empty folder, the bucket of `old`, and a key
/// variable of its own (the old machine's key file is gone with it).
#[cfg(feature = "s3")]
pub(crate) fn new_machine(old: &StorageConfig) -> (TestStore, StorageConfig) {
    let t = TestStore::new();
    let var = format!("COS_TEST_MACHINE_KEY_{}", uuid::Uuid::new_v4().simple());
    std::env::set_var(&var, common::random_env_key());
    let mut config = t.config();
    config.keys.source = cloudops_storage_service::KeySourceKind::Env;
    config.keys.env_var = var;
    config.backup.s3 = old.backup.s3.clone();
    (t, config)
}

/// The bytes of object `key` in `bucket` (the full key, prefix included).
#[cfg(feature = "s3")]
pub(crate) async fn object_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let got = client.get_object().bucket(bucket).key(key).send().await.unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Write object `key` in `bucket` behind the store's back.
#[cfg(feature = "s3")]
pub(crate) async fn put_object_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str, bytes: Vec<u8>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
}

#[cfg(feature = "s3")]
pub(crate) fn with_s3(t: &TestStore, endpoint: &str, bucket: &str) -> cloudops_storage_service::StorageConfig {
    let mut config = t.config();
    let mut s3 = cloudops_storage_service::S3Config::new(bucket);
    s3.endpoint = Some(endpoint.to_string());
    s3.region = Some("garage".into());
    s3.prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    config.backup.s3 = Some(s3);
    config
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_upload_multipart_and_restore_from_s3() {
    let Some((endpoint, bucket)) = s3_env() else { return };
    let t = TestStore::new();
    let config = with_s3(&t, &endpoint, &bucket);
    let (manifest, before) = {
        let s = StorageService::open(config.clone()).await.unwrap();
        let ctx = s.chat.create_conversation("alice", "big", json!({})).await.unwrap();
        // ~10 MiB of sealed (incompressible) text: dozens of chunks to upload and fetch.
        for i in 0..2500 {
            let text = format!("{i} {}", "s3 payload ".repeat(370));
            s.chat.append(&ctx, NewMessage::new(Role::User, text)).await.unwrap();
        }
        let m = s.backup.create_snapshot().await.unwrap();
        assert!(
            m.archive_bytes > 8 * 1024 * 1024,
            "archive of {} bytes is smaller than intended",
            m.archive_bytes
        );
        s.backup.upload(&m).await.unwrap();
        let remote = s.backup.list_remote().await.unwrap();
        assert_eq!(
            remote.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            vec![m.name.clone()]
        );
        let before = state(&s, "alice").await;
        s.chat.delete_conversation(&ctx).await.unwrap();
        s.shutdown().await.unwrap();
        (m, before)
    };
    // Lose the local copy: the restore must come from S3. The backup itself, by name (the
    // newest state would replay the delete, shipped after it at shutdown).
    std::fs::remove_file(archive_of(&t, &manifest.name)).unwrap();
    let report = restore_s3(&config, RestoreTarget::Named(manifest.name.clone()))
        .await
        .unwrap();
    assert_eq!(report.backup.name, manifest.name);
    assert_eq!(report.journal, None, "a backup restored by name replays nothing");
    let s = StorageService::open(config.clone()).await.unwrap();
    assert_eq!(state(&s, "alice").await, before);
    s.shutdown().await.unwrap();
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_remote_object_leaves_live_data_untouched() {
    let Some((endpoint, bucket)) = s3_env() else { return };
    let t = TestStore::new();
    let config = with_s3(&t, &endpoint, &bucket);
    let s = StorageService::open(config.clone()).await.unwrap();
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "kept")).await.unwrap();
    let m = s.backup.run_cycle().await.unwrap();
    let before = state(&s, "alice").await;
    // Remove one of its chunks but keep its manifest listed (with the SDK, as an operator
    // or a lifecycle rule might).
    let s3 = config.backup.s3.clone().unwrap();
    let chunks = format!("{}/{}/chunks/", s3.prefix, s.key_status().store_id);
    let client = s3_client(&endpoint).await;
    let listed = client
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&chunks)
        .send()
        .await
        .unwrap();
    let key = listed.contents()[0].key().unwrap().to_string();
    client.delete_object().bucket(&bucket).key(&key).send().await.unwrap();
    assert_eq!(
        s.backup.list_remote().await.unwrap().len(),
        1,
        "the manifest is still listed"
    );
    s.shutdown().await.unwrap();
    let err = restore_s3(&config, RestoreTarget::Latest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptBackup);
    assert!(
        err.to_string().contains("is missing") && err.to_string().contains(&m.name),
        "{err}"
    );
    let leftovers: Vec<String> = std::fs::read_dir(t.data_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".download-") || n.starts_with(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "partial download left: {leftovers:?}");
    let s = StorageService::open(config).await.unwrap();
    assert_eq!(state(&s, "alice").await, before);
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_retries_a_failing_target_until_it_recovers_then_skips_when_unchanged() {
    let Some((endpoint, _)) = s3_env() else { return };
    let garage_config = std::env::var("CLOUDOPS_TEST_GARAGE_CONFIG").expect("set by scripts/garage.sh");
    let t = TestStore::new();
    // A bucket that does not exist yet: every upload fails until the test creates it.
    let late_bucket = format!("late-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let config = with_s3(&t, &endpoint, &late_bucket);
    let s = StorageService::open(config).await.unwrap();
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    s.chat
        .append(&ctx, NewMessage::new(Role::User, "scheduled"))
        .await
        .unwrap();
    s.start_auto_backup_every(std::time::Duration::from_millis(300)).await;

    let wait_for = |what: &'static str, check: &dyn Fn(&cloudops_storage_service::BackupStatus) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let status = s.backup.status();
            if check(&status) {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {status:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let failed = wait_for("a failure", &|st| st.consecutive_failures >= 2);
    assert!(failed.last_error.as_deref().unwrap().contains("s3"), "{failed:?}");
    assert!(failed.last_success_ms.is_none());
    assert!(
        s.health().await.unwrap().backup.last_error.is_some(),
        "health reports the failure"
    );

    let garage = |args: &[&str]| {
        let out = std::process::Command::new("garage")
            .arg("-c")
            .arg(&garage_config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "garage {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    garage(&["bucket", "create", &late_bucket]);
    garage(&[
        "bucket",
        "allow",
        "--read",
        "--write",
        "--owner",
        &late_bucket,
        "--key",
        "cloudops-test-key",
    ]);

    let ok = wait_for("recovery", &|st| st.last_success_ms.is_some());
    assert_eq!(ok.consecutive_failures, 0);
    assert_eq!(s.backup.list_remote().await.unwrap().len(), 1);
    let skipped = wait_for("a skipped run", &|st| st.skipped_unchanged >= 2);
    assert_eq!(skipped.last_backup, ok.last_backup, "nothing changed, so no new backup");
    s.stop_auto_backup().await;
    assert!(!s.backup.status().scheduled);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn restore_into_a_data_dir_without_a_store_is_a_clear_error_and_creates_nothing() {
    let t = TestStore::new();
    let err = restore(&t.config(), RestoreTarget::Latest).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Backup(BackupError::NotInitialized { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("init"), "{err}");
    assert_eq!(err.kind(), ErrorKind::NotInitialized);
    assert!(!t.data_dir().exists(), "restore created the data dir");
}

/// A copy of `manifest` (as JSON) with `edit` applied, written as `{file}.json` in `dir`.
fn plant(dir: &Path, file: &str, manifest: &serde_json::Value, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut m = manifest.clone();
    edit(&mut m);
    std::fs::write(dir.join(format!("{file}.json")), m.to_string()).unwrap();
}

/// Everything under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut all: Vec<String> = crate::common::all_files(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_manifests_are_refused_and_nothing_outside_the_data_dir_is_touched() {
    let t = TestStore::new();
    let victim = t.dir.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious.txt"), "keep me").unwrap();
    let s = t.open().await;
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "kept")).await.unwrap();
    let real = s.backup.create_snapshot().await.unwrap();
    let before = state(&s, "alice").await;
    let dir = s.backup.dir();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{}.json", real.name))).unwrap()).unwrap();
    let traversal = "x/../../../victim";
    // Names the code never writes, a name that is not its file's, a foreign store, a time
    // that is not the name's, absurd sizes: each refused when listed.
    plant(&dir, "evil-traversal", &json, |m| m["name"] = traversal.into());
    plant(&dir, "evil-absolute", &json, |m| {
        m["name"] = victim.display().to_string().into()
    });
    plant(&dir, "20991231T235959Z-0123abcd", &json, |m| {
        m["name"] = json["name"].clone()
    });
    plant(&dir, "20991231T235958Z-0123abcd", &json, |m| {
        m["name"] = "20991231T235958Z-0123abcd".into();
        m["store_id"] = uuid::Uuid::new_v4().to_string().into();
        m["created_at_ms"] = 4_102_444_798_000i64.into();
    });
    plant(&dir, "20991231T235957Z-0123abcd", &json, |m| {
        m["name"] = "20991231T235957Z-0123abcd".into();
        m["created_at_ms"] = i64::MAX.into();
    });
    plant(&dir, "20991231T235956Z-0123abcd", &json, |m| {
        m["name"] = "20991231T235956Z-0123abcd".into();
        m["created_at_ms"] = 4_102_444_796_000i64.into();
        m["archive_bytes"] = u64::MAX.into();
        m["data_bytes"] = u64::MAX.into();
    });
    let listed: Vec<String> = s.backup.list().unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(listed, vec![real.name.clone()], "only the real backup is listed");
    let err = s.backup.verify(Some(traversal)).await.unwrap_err();
    assert!(matches!(err, BackupError::NotFound(_)), "{err}");
    s.shutdown().await.unwrap();

    // Restoring by the planted name: a clear error; "latest" is the real backup.
    let outside_before = tree(t.dir.path());
    let err = restore(&t.config(), RestoreTarget::Named(traversal.into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backup, "{err}");
    assert!(err.to_string().contains("no backup"), "{err}");
    assert_eq!(tree(t.dir.path()), outside_before, "a refused restore changed files");
    assert_eq!(std::fs::read_to_string(victim.join("precious.txt")).unwrap(), "keep me");

    // Edits of the real manifest that keep its form (forged counts, a creation time moved
    // within the second its name carries): its authentication code refuses each, nothing is
    // restored, the live data stays.
    let created = real.created_at_ms;
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "forged counts",
            Box::new(|m| m["collections"][0]["points"] = 999_999.into()),
        ),
        (
            "moved creation time",
            Box::new(move |m| m["created_at_ms"] = (created - created % 1000 + (created + 1) % 1000).into()),
        ),
        ("dropped authentication code", Box::new(|m| m["mac"] = "".into())),
    ];
    for (what, edit) in edits {
        plant(&dir, &real.name, &json, edit);
        let err = restore(&t.config(), RestoreTarget::Latest).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Backup, "{what}: {err}");
        assert!(err.to_string().contains("no backup"), "{what}: {err}");
        let s = t.open().await;
        assert_eq!(state(&s, "alice").await, before, "{what}: live data changed");
        assert!(s.backup.list().unwrap().is_empty(), "{what}: listed");
        s.shutdown().await.unwrap();
    }
    assert!(victim.join("precious.txt").exists());
    // The untouched manifest is accepted again. A folder someone placed where older versions
    // unpacked (`.restore-<name>`) is not the restore's to remove: it stays.
    std::fs::write(
        dir.join(format!("{}.json", real.name)),
        serde_json::to_vec(&json).unwrap(),
    )
    .unwrap();
    let planted = t.data_dir().join(format!(".restore-{}", real.name));
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::write(planted.join("precious.txt"), "keep me").unwrap();
    restore(&t.config(), RestoreTarget::Latest).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(planted.join("precious.txt")).unwrap(),
        "keep me"
    );
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_remote_manifests_are_refused() {
    let Some((endpoint, bucket)) = s3_env() else { return };
    let t = TestStore::new();
    let victim = t.dir.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious.txt"), "keep me").unwrap();
    let config = with_s3(&t, &endpoint, &bucket);
    let s = StorageService::open(config.clone()).await.unwrap();
    let ctx = s.chat.create_conversation("alice", "t", json!({})).await.unwrap();
    s.chat.append(&ctx, NewMessage::new(Role::User, "kept")).await.unwrap();
    let real = s.backup.run_cycle().await.unwrap();
    let s3 = config.backup.s3.clone().unwrap();
    let prefix = format!("{}/{}", s3.prefix, s.key_status().store_id);
    let client = s3_client(&endpoint).await;
    let put = |key: String, body: Vec<u8>| {
        let client = client.clone();
        let bucket = bucket.clone();
        async move {
            client
                .put_object()
                .bucket(&bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
    };
    let mut evil = serde_json::to_value(&real).unwrap();
    evil["name"] = format!("x/../../../{}", victim.display()).into();
    evil["created_at_ms"] = (real.created_at_ms + 1).into();
    put(
        format!("{prefix}/20991231T235959Z-0123abcd.json"),
        evil.to_string().into_bytes(),
    )
    .await;
    // A manifest larger than any real one is not even read whole.
    put(
        format!("{prefix}/20991231T235958Z-0123abcd.json"),
        vec![b' '; 2 * 1024 * 1024],
    )
    .await;
    let listed: Vec<String> = s
        .backup
        .list_remote()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(listed, vec![real.name.clone()]);
    s.shutdown().await.unwrap();
    std::fs::remove_dir_all(s.backup.dir()).unwrap();
    let report = restore_s3(&config, RestoreTarget::Latest).await.unwrap();
    assert_eq!(report.backup.name, real.name);
    assert_eq!(std::fs::read_to_string(victim.join("precious.txt")).unwrap(), "keep me");
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_uploads_send_new_chunks_only_restore_verify_and_sweep() {
    let Some((endpoint, bucket)) = s3_env() else { return };
    let t = TestStore::new();
    let mut config = with_s3(&t, &endpoint, &bucket);
    config.backup.keep_last = 1;
    let s3 = config.backup.s3.clone().unwrap();
    let mut s = StorageService::open(config.clone()).await.unwrap();
    let ctx = s.chat.create_conversation("alice", "big", json!({})).await.unwrap();
    // Messages in optimised segments (as a compaction leaves them past a few thousand),
    // which later backups share.
    // Many distinct words: past the appendable segment's size in keyword vectors.
    for i in 0..6000 {
        let words: Vec<String> = (0..40).map(|k| format!("w{}", (i * 41 + k * 13) % 9973)).collect();
        let text = format!("incremental-secret {i} {}", words.join(" "));
        s.chat.append(&ctx, NewMessage::new(Role::User, text)).await.unwrap();
    }
    s.optimize().await.unwrap();
    let first = s.backup.create_snapshot().await.unwrap();
    let sent = s.backup.upload(&first).await.unwrap();
    assert!(sent.chunks > 1, "{sent:?}");
    if cloudops_storage_service::platform::PUNCHES_HOLES {
        assert_eq!(sent.new_chunks, sent.chunks, "{sent:?}");
    } else {
        // Windows: the archive holds the engine's preallocated files whole (no sparse copy),
        // and their runs of zeros are identical chunks, each sent once.
        assert!(sent.new_chunks > 1 && sent.new_chunks <= sent.chunks, "{sent:?}");
    }
    // 1% more messages: most chunks are already there.
    for i in 0..60 {
        s.chat
            .append(&ctx, NewMessage::new(Role::User, format!("later {i}")))
            .await
            .unwrap();
    }
    let second = s.backup.create_snapshot().await.unwrap();
    let again = s.backup.upload(&second).await.unwrap();
    // On a Qdrant server a backup is an export into a new local store, laid out anew each
    // time: little repeats. The embedded store's optimised segments repeat byte for byte.
    if common::remote_backend().is_none() {
        assert!(again.new_chunks < again.chunks, "{again:?}");
        assert!(again.uploaded_bytes * 2 < sent.uploaded_bytes, "{again:?} vs {sent:?}");
    }

    // What the bucket holds: chunks named by keyed hashes, indexes and manifests; no archive,
    // and no plaintext anywhere.
    let client = s3_client(&endpoint).await;
    let root = format!("{}/{}/", s3.prefix, s.key_status().store_id);
    let keys = bucket_keys(&client, &bucket, &root).await;
    assert!(keys.iter().all(|k| !k.ends_with(".cosb")), "{keys:?}");
    let chunk_names: Vec<&String> = keys.iter().filter(|k| k.starts_with("chunks/")).collect();
    assert!(chunk_names.iter().all(|k| k.len() == 7 + 64), "{chunk_names:?}");
    for key in &keys {
        let bytes = object_bytes(&client, &bucket, &format!("{root}{key}")).await;
        assert!(
            !bytes.windows(18).any(|w| w == b"incremental-secret"),
            "plaintext in {key}"
        );
    }

    // Every chunk of the newest backup fetched, authenticated, unpacked and counted.
    assert_eq!(s.backup.verify_remote(None).await.unwrap().name, second.name);

    // Retention drops the first backup; the sweep deletes the chunks only it used, and the
    // newest still restores.
    let now = now_ms();
    s.backup = s.backup.with_clock(Arc::new(move || now + 40 * DAY_MS));
    let pruned = s.backup.prune(false).await.unwrap();
    assert_eq!(pruned.removed_remote, vec![first.name.clone()]);
    let swept = pruned.swept.unwrap();
    assert!(!swept.skipped_for_lock && swept.deleted_chunks > 0, "{swept:?}");
    assert!(swept.kept_chunks > 0 && swept.kept_chunks <= again.chunks, "{swept:?}");
    let before = state(&s, "alice").await;
    s.chat.delete_conversation(&ctx).await.unwrap();
    s.shutdown().await.unwrap();
    for m in [&first, &second] {
        let _ = std::fs::remove_file(archive_of(&t, &m.name));
    }
    // The newest backup by name: the delete shipped after it is not replayed.
    let report = restore_s3(&config, RestoreTarget::Named(second.name.clone()))
        .await
        .unwrap();
    assert_eq!(report.backup.name, second.name);
    let s = StorageService::open(config.clone()).await.unwrap();
    assert_eq!(state(&s, "alice").await, before);
    s.shutdown().await.unwrap();
}
