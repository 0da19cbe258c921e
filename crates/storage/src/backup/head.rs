//! The authenticated head of a backup target: one object, `HEAD`, rewritten after every
//! upload and every shipment, that names the newest backup and the end of the shipped
//! journal, with a counter that only grows, all under an HMAC of the manifest subkey.
//!
//! Without it the bucket decides what "newest" means: deleting the newest manifest made
//! `--latest` restore an older backup, and deleting the last shipments dropped the newest
//! writes, with exit code 0. With it, a restore that cannot reach what the head names says
//! so and stops (unless asked to accept the gap). The store also keeps the last head it
//! wrote (`<data_dir>/backup-head.json`), so a head replaced by an older one is noticed on
//! this machine. What a new machine cannot tell is a whole bucket rolled back to an earlier
//! state, head and all; nothing short of a counter kept outside the bucket can.

use serde::{Deserialize, Serialize};

use super::manifest::{hex, unhex};
use super::objects::ObjectStore;
use super::BackupError;
use crate::crypto::BackupKeys;

/// Object key of the head, beside the manifests (not `.json`: it is not one).
pub(super) const HEAD_KEY: &str = "HEAD";
/// The last head this store wrote, in its data dir.
pub(super) const LOCAL_HEAD_FILE: &str = "backup-head.json";
const MAX_HEAD_BYTES: u64 = 64 * 1024;

/// The newest backup uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NewestBackup {
    pub(crate) name: String,
    pub(crate) created_at_ms: i64,
}

/// Where the shipped journal ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JournalHead {
    /// The ship log's generation.
    pub(crate) generation: String,
    /// The last record shipped.
    pub(crate) last_seq: u64,
}

/// The head of one store's backups in one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Head {
    pub(crate) store_id: uuid::Uuid,
    /// Grows by one with every head written.
    pub(crate) counter: u64,
    pub(crate) written_at_ms: i64,
    /// The newest backup uploaded.
    pub(crate) newest_backup: Option<NewestBackup>,
    /// The end of the shipped journal.
    pub(crate) journal: Option<JournalHead>,
    /// The data key whose manifest subkey made [`Head::mac`].
    pub(crate) key_id: u32,
    /// HMAC-SHA256 of the other fields, hex.
    #[serde(default)]
    pub(crate) mac: String,
}

/// What a target's head says, as far as some keys can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadState {
    /// No head object.
    Absent,
    /// A head these keys authenticate.
    Verified(Head),
    /// A head under a data key these keys do not hold (a newer epoch than the keys).
    NewerKey(u32),
    /// A head that does not parse or authenticate: edited, or another store's.
    Invalid(String),
}

impl Head {
    fn mac_over(&self, key: &[u8; 32]) -> Result<hmac::Hmac<sha2::Sha256>, String> {
        use hmac::Mac as _;
        let unsealed = Head {
            mac: String::new(),
            ..self.clone()
        };
        let body = serde_json::to_vec(&unsealed).map_err(|e| format!("it cannot be encoded: {e}"))?;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(b"cloudops-storage/backup-head/v1\0");
        mac.update(&body);
        Ok(mac)
    }

    fn seal(&mut self, keys: &BackupKeys) -> Result<(), BackupError> {
        let key = keys
            .manifest_key(self.key_id)
            .ok_or(BackupError::UnknownKey { key_id: self.key_id })?;
        let mac = self.mac_over(key).map_err(|reason| BackupError::Corrupt {
            name: HEAD_KEY.into(),
            reason,
        })?;
        self.mac = hex(&hmac::Mac::finalize(mac).into_bytes());
        Ok(())
    }

    /// Read a head from `bytes` for `store_id` and check it with `keys`.
    pub(crate) fn state(bytes: &[u8], store_id: &uuid::Uuid, keys: &BackupKeys) -> HeadState {
        use hmac::Mac as _;
        let head: Head = match serde_json::from_slice(bytes) {
            Ok(head) => head,
            Err(e) => return HeadState::Invalid(format!("it does not parse: {e}")),
        };
        if head.store_id != *store_id {
            return HeadState::Invalid(format!("it belongs to store {}", head.store_id));
        }
        let Some(key) = keys.manifest_key(head.key_id) else {
            return HeadState::NewerKey(head.key_id);
        };
        let Some(tag) = unhex(&head.mac) else {
            return HeadState::Invalid("its authentication code is not hex".into());
        };
        match head.mac_over(key).map(|m| m.verify_slice(&tag)) {
            Ok(Ok(())) => HeadState::Verified(head),
            Ok(Err(_)) => HeadState::Invalid("its authentication code does not match: it was edited".into()),
            Err(reason) => HeadState::Invalid(reason),
        }
    }
}

/// The head of `objects` as `keys` see it.
///
/// # Errors
/// Target errors other than a missing object.
pub(crate) async fn read(
    objects: &dyn ObjectStore,
    store_id: &uuid::Uuid,
    keys: &BackupKeys,
) -> Result<HeadState, BackupError> {
    match objects.get(HEAD_KEY, MAX_HEAD_BYTES).await {
        Ok(bytes) => Ok(Head::state(&bytes, store_id, keys)),
        Err(BackupError::NotFound(_)) => Ok(HeadState::Absent),
        Err(BackupError::Corrupt { reason, .. }) => Ok(HeadState::Invalid(reason)),
        Err(e) => Err(e),
    }
}

/// The last head this store wrote, if its file is there and authenticates.
pub(crate) fn read_local(data_dir: &std::path::Path, store_id: &uuid::Uuid, keys: &BackupKeys) -> Option<Head> {
    let bytes = std::fs::read(data_dir.join(LOCAL_HEAD_FILE)).ok()?;
    match Head::state(&bytes, store_id, keys) {
        HeadState::Verified(head) => Some(head),
        other => {
            tracing::warn!(state = ?other, "the last backup head seen is unreadable; ignored");
            None
        }
    }
}

/// Write a new head to `objects` (and its copy to `data_dir`): the newest of the target's
/// and the local one, changed by `change`, its counter one higher, sealed under the active
/// key. Callers serialise calls (the backup manager holds a lock).
///
/// # Errors
/// Target and I/O errors; crypto errors sealing it.
pub(crate) async fn advance(
    objects: &dyn ObjectStore,
    data_dir: &std::path::Path,
    store_id: &uuid::Uuid,
    keys: &BackupKeys,
    change: impl FnOnce(&mut Head),
) -> Result<Head, BackupError> {
    let remote = match read(objects, store_id, keys).await? {
        HeadState::Verified(head) => Some(head),
        HeadState::Absent => None,
        other => {
            tracing::warn!(state = ?other, target = %objects, "the target's backup head is not this store's to trust; writing a new one over it");
            None
        }
    };
    let local = read_local(data_dir, store_id, keys);
    let base = match (remote, local) {
        (Some(r), Some(l)) if l.counter > r.counter => {
            tracing::warn!(target = %objects, remote = r.counter, local = l.counter, "the target's backup head is older than the last one written: it was rolled back");
            Some(l)
        }
        (Some(r), _) => Some(r),
        (None, l) => l,
    };
    let mut head = base.unwrap_or(Head {
        store_id: *store_id,
        counter: 0,
        written_at_ms: 0,
        newest_backup: None,
        journal: None,
        key_id: keys.active_key_id,
        mac: String::new(),
    });
    change(&mut head);
    head.counter = head.counter.saturating_add(1);
    head.written_at_ms = crate::clock::now_ms();
    head.key_id = keys.active_key_id;
    head.seal(keys)?;
    let bytes = serde_json::to_vec_pretty(&head).map_err(|e| BackupError::Corrupt {
        name: HEAD_KEY.into(),
        reason: format!("it cannot be encoded: {e}"),
    })?;
    objects.put(HEAD_KEY, bytes.clone()).await?;
    let path = data_dir.join(LOCAL_HEAD_FILE);
    let tmp = data_dir.join(format!(".{LOCAL_HEAD_FILE}.tmp"));
    let written = crate::platform::private_file(&tmp)
        .and_then(|mut file| {
            use std::io::Write as _;
            file.write_all(&bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &path));
    written.map_err(|source| BackupError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_or_foreign_head_is_refused_and_a_newer_key_is_named() {
        let keys = crate::crypto::test_backup_keys();
        let store = uuid::Uuid::from_u128(3);
        let mut head = Head {
            store_id: store,
            counter: 7,
            written_at_ms: 1,
            newest_backup: Some(NewestBackup {
                name: "20260101T000000Z-abcdef01".into(),
                created_at_ms: 1_767_225_600_000,
            }),
            journal: Some(JournalHead {
                generation: "ab".into(),
                last_seq: 41,
            }),
            key_id: 1,
            mac: String::new(),
        };
        head.seal(&keys).unwrap();
        let bytes = serde_json::to_vec(&head).unwrap();
        assert_eq!(Head::state(&bytes, &store, &keys), HeadState::Verified(head.clone()));
        let edited = String::from_utf8(bytes.clone()).unwrap().replace("41", "40");
        assert!(matches!(
            Head::state(edited.as_bytes(), &store, &keys),
            HeadState::Invalid(_)
        ));
        assert!(matches!(
            Head::state(&bytes, &uuid::Uuid::from_u128(4), &keys),
            HeadState::Invalid(_)
        ));
        let newer = Head { key_id: 9, ..head };
        let bytes = serde_json::to_vec(&newer).unwrap();
        assert_eq!(Head::state(&bytes, &store, &keys), HeadState::NewerKey(9));
        assert!(matches!(Head::state(b"{", &store, &keys), HeadState::Invalid(_)));
    }
}
