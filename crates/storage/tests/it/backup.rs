//! Backups on real stores: round trip, restore at a time, damaged archives, wrong key,
//! retention with an injected clock, and no plaintext in archives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cloudops_storage_service::backup::{self, RestoreTarget};
use cloudops_storage_service::chat::{Conversation, ConversationUpdate, HistoryRange, Message, NewMessage, Role};
use cloudops_storage_service::{ErrorKind, StorageService};
use serde_json::json;

use crate::common::{files_containing, TestStore};

const DAY_MS: i64 = 86_400_000;

/// Everything a user sees: conversations and their full histories.
async fn state(s: &StorageService, user: &str) -> Vec<(Conversation, Vec<Message>)> {
    let mut out = Vec::new();
    let mut all = s.chat.get_all_contexts(user).await.unwrap();
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
        let m = s.backup.create_snapshot().await.unwrap();
        assert_eq!(m.points(), 303);
        assert!(m.writer_pause_ms > 0.0);
        let before = state(&s, "alice").await;
        // Change everything after the backup.
        s.chat
            .append(&ctxs[0], NewMessage::new(Role::Assistant, "after the backup"))
            .await
            .unwrap();
        s.chat.delete(&ctxs[1]).await.unwrap();
        let update = ConversationUpdate {
            title: Some("renamed".into()),
            ..Default::default()
        };
        s.chat.update_context(&ctxs[2], update).await.unwrap();
        assert_ne!(state(&s, "alice").await, before);
        // Restore refuses while the store is open here.
        let err = backup::restore(s.config(), RestoreTarget::Latest).await.unwrap_err();
        assert_eq!(
            cloudops_storage_service::StorageError::from(err).kind(),
            ErrorKind::Locked
        );
        s.shutdown().await.unwrap();
        (m.name, before)
    };
    let report = backup::restore(&t.config(), RestoreTarget::Named(name)).await.unwrap();
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
    let now = cloudops_storage_service::now_ms();
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
    let r = backup::restore(&t.config(), RestoreTarget::At(now - DAY_MS - 1))
        .await
        .unwrap();
    assert_eq!(r.backup.name, first.name);
    assert_eq!(count(&t).await, 1);
    let r = backup::restore(&t.config(), RestoreTarget::At(now)).await.unwrap();
    assert_eq!(r.backup.name, second.name);
    assert_eq!(count(&t).await, 2);
    let err = backup::restore(&t.config(), RestoreTarget::At(now - 3 * DAY_MS))
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
                &s.chat.get_all_contexts("alice").await.unwrap()[0].context_id,
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
    for (what, damage, forge, kind, words) in cases {
        let mut bytes = good.clone();
        damage(&mut bytes);
        std::fs::write(&archive, &bytes).unwrap();
        std::fs::write(&manifest, &good_manifest).unwrap();
        if forge {
            set_manifest_sha(&archive);
        }
        let err = cloudops_storage_service::StorageError::from(
            backup::restore(&t.config(), RestoreTarget::Latest).await.unwrap_err(),
        );
        assert_eq!(err.kind(), kind, "{what}: {err}");
        assert!(err.to_string().contains(words), "{what}: {err}");
        let s = t.open().await;
        assert_eq!(state(&s, "alice").await, live, "{what}: live data changed");
        s.shutdown().await.unwrap();
    }
    std::fs::write(&manifest, &good_manifest).unwrap();

    std::fs::remove_file(&archive).unwrap();
    let err = backup::restore(&t.config(), RestoreTarget::Latest).await.unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    std::fs::write(&archive, &good).unwrap();

    let key = std::fs::read(t.key_file()).unwrap();
    std::fs::write(t.key_file(), base64_key(7)).unwrap();
    let err = cloudops_storage_service::StorageError::from(
        backup::restore(&t.config(), RestoreTarget::Latest).await.unwrap_err(),
    );
    assert_eq!(err.kind(), ErrorKind::WrongKey);
    std::fs::write(t.key_file(), key).unwrap();

    let s = t.open().await;
    assert_eq!(state(&s, "alice").await, live);
    s.shutdown().await.unwrap();
    // And the intact archive still restores.
    backup::restore(&t.config(), RestoreTarget::Latest).await.unwrap();
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
    let dry = s.backup.prune(true).unwrap();
    assert_eq!(dry.removed, vec![names[0].clone()]);
    assert_eq!(s.backup.list().unwrap().len(), 3, "a dry run deletes nothing");
    s.backup.prune(false).unwrap();
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
    s.backup.prune(false).unwrap();
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
