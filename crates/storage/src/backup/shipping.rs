//! Continuous shipping of the journal to the backup target, and its replay on restore
//! (point-in-time restore between backups, as Litestream does for SQLite).
//!
//! The embedded store logs every write in its ship log (see `store::embedded::ship_log`).
//! [`ship`] seals the records not shipped yet (at most [`MAX_SHIPMENT_BYTES`] an object, like
//! a chunk: zstd, AES-256-GCM under the backup subkey, bound to the store id and the object's
//! key) into `journal/<generation>/<first seq>-<last seq>.cosj`, then lets the store forget
//! them. Each backup's manifest says where its snapshot stopped in the log
//! ([`JournalMark`]); [`fetch`] reads the shipped records after it, up to a time, for the
//! restore to replay. [`prune`] deletes the shipments no kept backup needs.

use std::collections::HashMap;

use serde::Serialize;

use super::chunk::ChunkKeys;
use super::objects::{ObjectInfo, ObjectStore};
use super::{BackupError, Manifest};
use crate::crypto::BackupKeys;
use crate::store::embedded::{decode_records, encode_records};
use crate::store::{JournalMark, ShipRecord, VectorStore};

/// Key prefix of shipped journal objects.
pub(super) const JOURNAL_PREFIX: &str = "journal/";
const SUFFIX: &str = ".cosj";
/// Bodies of records per shipped object (a single larger record goes alone).
const MAX_SHIPMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Largest plaintext a shipped object may decompress to (a lone record of a large batch).
const MAX_SHIPMENT_PLAIN: usize = 1024 * 1024 * 1024;

/// What one call of [`ship`] sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct ShipReport {
    /// The ship log's generation.
    pub generation: Option<String>,
    /// Records shipped.
    #[cfg_attr(feature = "typescript", ts(type = "number"))]
    pub records: u64,
    /// Objects written.
    #[cfg_attr(feature = "typescript", ts(type = "number"))]
    pub objects: u64,
    /// Bytes uploaded (sealed).
    #[cfg_attr(feature = "typescript", ts(type = "number"))]
    pub bytes: u64,
    /// The last record shipped.
    #[cfg_attr(feature = "typescript", ts(type = "number | null"))]
    pub last_seq: Option<u64>,
    /// When the last record shipped was written, unix ms.
    pub last_record_ms: Option<i64>,
}

/// What a restore replayed of the shipped journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct JournalReplay {
    /// The ship log's generation (the backup's).
    pub generation: String,
    /// Records replayed on top of the backup.
    #[cfg_attr(feature = "typescript", ts(type = "number"))]
    pub records: u64,
    /// The last record replayed.
    #[cfg_attr(feature = "typescript", ts(type = "number | null"))]
    pub last_seq: Option<u64>,
    /// When the last record replayed was written, unix ms: the restored point in time.
    pub last_record_ms: Option<i64>,
    /// A record missing from the bucket where replay had to stop (later records exist but
    /// cannot be applied without it).
    #[cfg_attr(feature = "typescript", ts(type = "number | null"))]
    pub missing_seq: Option<u64>,
}

/// What [`prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JournalSweep {
    /// Shipped objects deleted.
    pub deleted_objects: u64,
    /// Their bytes.
    pub deleted_bytes: u64,
    /// Shipped objects kept.
    pub kept_objects: u64,
}

/// The key of the shipment of records `first..=last` of `generation`. Zero-padded, so that
/// keys sort in the records' order.
fn object_key(generation: &str, first: u64, last: u64) -> String {
    format!("{JOURNAL_PREFIX}{generation}/{first:020}-{last:020}{SUFFIX}")
}

/// A shipment's generation and record range, from its key; `None` for any other key.
fn parse_key(key: &str) -> Option<(&str, u64, u64)> {
    let rest = key.strip_prefix(JOURNAL_PREFIX)?.strip_suffix(SUFFIX)?;
    let (generation, range) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let valid_generation = !generation.is_empty() && generation.bytes().all(|b| b.is_ascii_hexdigit());
    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
    (valid_generation && first <= last).then_some((generation, first, last))
}

/// Ship every record `store` has not shipped yet into `objects`, sealed with the active data
/// key's backup subkey. Records are forgotten by the store only once their object is written,
/// all at once at the end (one rewrite of the log, however long the backlog).
///
/// # Errors
/// Store errors reading or trimming the log; target errors.
pub(super) async fn ship(
    store: &dyn VectorStore,
    objects: &dyn ObjectStore,
    keys: &BackupKeys,
    store_id: &uuid::Uuid,
) -> Result<ShipReport, BackupError> {
    let mut report = ShipReport::default();
    let sealer = ChunkKeys::active(keys)?;
    let shipped = ship_batches(store, objects, &sealer, store_id, &mut report).await;
    // The log forgets once what this call shipped, also when a later batch failed: trimming
    // the log rewrites what is left, so it is not done batch by batch.
    if let Some(last) = report.last_seq {
        store.shipped_through(last).await?;
    }
    shipped.map(|()| report)
}

/// Upload the unshipped records in batches of [`MAX_SHIPMENT_BYTES`], oldest first, noting in
/// `report` what each put stored.
async fn ship_batches(
    store: &dyn VectorStore,
    objects: &dyn ObjectStore,
    sealer: &ChunkKeys,
    store_id: &uuid::Uuid,
    report: &mut ShipReport,
) -> Result<(), BackupError> {
    let mut from = 0;
    loop {
        let Some(crate::store::Unshipped {
            generation, records, ..
        }) = store.unshipped(from, MAX_SHIPMENT_BYTES).await?
        else {
            return Ok(());
        };
        report.generation = Some(generation.clone());
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(());
        };
        let key = object_key(&generation, first.seq, last.seq);
        let (last_seq, last_ms, count) = (last.seq, last.time_ms, records.len() as u64);
        let plain = encode_records(&records).map_err(|e| BackupError::Corrupt {
            name: key.clone(),
            reason: format!("cannot encode the shipment: {e}"),
        })?;
        let sealed = sealer.seal_journal(store_id, &key, &plain)?;
        let sealed_bytes = sealed.len() as u64;
        objects.put(&key, sealed).await?;
        report.bytes += sealed_bytes;
        report.records += count;
        report.objects += 1;
        report.last_seq = Some(last_seq);
        report.last_record_ms = Some(last_ms);
        tracing::debug!(key, records = count, "journal shipped");
        from = last_seq + 1;
    }
}

/// What [`fetch`] read.
#[derive(Debug)]
pub(super) struct Fetched {
    pub(super) replay: JournalReplay,
    pub(super) records: Vec<ShipRecord>,
    /// It stopped at a record written after the time asked for (not at the end of what the
    /// target holds, nor at a missing record).
    pub(super) stopped_at_time: bool,
}

/// The shipped records of `mark.generation` from `mark.next_seq` on, in order, stopping before
/// the first written after `until_ms` (every one with `None`) or at a missing record.
///
/// # Errors
/// Target errors; [`BackupError::Corrupt`] for a shipment that does not open (altered,
/// another store's, another key) or does not hold the records its key names.
pub(super) async fn fetch(
    objects: &dyn ObjectStore,
    keys: &BackupKeys,
    store_id: &uuid::Uuid,
    mark: &JournalMark,
    until_ms: Option<i64>,
) -> Result<Fetched, BackupError> {
    let listed = objects.list(&format!("{JOURNAL_PREFIX}{}/", mark.generation)).await?;
    let mut shipments: Vec<(u64, u64, ObjectInfo)> = listed
        .into_iter()
        .filter_map(|o| {
            let (generation, first, last) = parse_key(&o.key)?;
            (generation == mark.generation && last >= mark.next_seq).then_some((first, last, o))
        })
        .collect();
    // By first record, the longest first when two start together (a shipment repeated after
    // a crash between its upload and the log's trim covers the earlier one).
    shipments.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut replay = JournalReplay {
        generation: mark.generation.clone(),
        records: 0,
        last_seq: None,
        last_record_ms: None,
        missing_seq: None,
    };
    let mut next = mark.next_seq;
    let mut out = Vec::new();
    let mut stopped_at_time = false;
    'shipments: for (first, last, object) in shipments {
        if last < next {
            continue;
        }
        if first > next {
            replay.missing_seq = Some(next);
            tracing::warn!(
                missing = next,
                "the shipped journal misses a record: replay stops before it"
            );
            break;
        }
        let sealed = objects.get(&object.key, MAX_SHIPMENT_PLAIN as u64).await?;
        if let Some(key_id) = ChunkKeys::sealed_key_id(&sealed).filter(|id| keys.key(*id).is_none()) {
            // Fail rather than stop short: a restore never gives older data than was asked for.
            return Err(BackupError::JournalNewerKey {
                first_seq: next,
                key_id,
            });
        }
        let corrupt = |reason: String| BackupError::Corrupt {
            name: object.key.clone(),
            reason,
        };
        let plain =
            ChunkKeys::open_journal(keys, store_id, &object.key, &sealed, MAX_SHIPMENT_PLAIN).map_err(&corrupt)?;
        let records = decode_records(&plain).map_err(&corrupt)?;
        if records.first().map(|r| r.seq) != Some(first) || records.last().map(|r| r.seq) != Some(last) {
            return Err(corrupt("it does not hold the records its name says".into()));
        }
        for record in records {
            if record.seq < next {
                continue;
            }
            if until_ms.is_some_and(|until| record.time_ms > until) {
                stopped_at_time = true;
                break 'shipments;
            }
            next = record.seq + 1;
            replay.records += 1;
            replay.last_seq = Some(record.seq);
            replay.last_record_ms = Some(record.time_ms);
            out.push(record);
        }
    }
    Ok(Fetched {
        replay,
        records: out,
        stopped_at_time,
    })
}

/// Delete the shipments no backup in `kept` needs: in a generation a kept backup marks, those
/// wholly before the earliest mark; of a generation none marks, all, unless it is
/// `live_generation` (the store's own, whose first backup may not be uploaded yet).
///
/// # Errors
/// Target errors.
pub(super) async fn prune(
    objects: &dyn ObjectStore,
    kept: &[Manifest],
    live_generation: Option<&str>,
) -> Result<JournalSweep, BackupError> {
    let mut needed_from: HashMap<&str, u64> = HashMap::new();
    for mark in kept.iter().filter_map(|m| m.journal.as_ref()) {
        let from = needed_from.entry(mark.generation.as_str()).or_insert(mark.next_seq);
        *from = (*from).min(mark.next_seq);
    }
    let mut sweep = JournalSweep::default();
    for object in objects.list(JOURNAL_PREFIX).await? {
        let Some((generation, _, last)) = parse_key(&object.key) else {
            continue;
        };
        let needed = match needed_from.get(generation) {
            Some(from) => last >= *from,
            None => live_generation == Some(generation),
        };
        if needed {
            sweep.kept_objects += 1;
        } else {
            objects.delete(&object.key).await?;
            sweep.deleted_objects += 1;
            sweep.deleted_bytes += object.bytes;
        }
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::LocalObjects;
    use crate::store::{CollectionSpec, EmbeddedOptions, EmbeddedStore, Point};

    /// A real embedded store that ships its journal, with one payload-only collection.
    async fn shipping_store(dir: &std::path::Path) -> EmbeddedStore {
        let options = EmbeddedOptions {
            min_free_bytes: 0,
            ship_journal: true,
            ..EmbeddedOptions::default()
        };
        let store = EmbeddedStore::open_with(dir, options).unwrap();
        let spec = CollectionSpec {
            name: "notes".into(),
            dense: Vec::new(),
            sparse: Vec::new(),
            indexes: Vec::new(),
        };
        store.ensure_collection(&spec).await.unwrap();
        store
    }

    fn note(i: u128) -> Point {
        Point {
            id: uuid::Uuid::from_u128(i),
            vectors: Default::default(),
            payload: [("n".to_string(), serde_json::json!(i as u64))].into_iter().collect(),
        }
    }

    async fn shipped_keys(objects: &LocalObjects) -> Vec<String> {
        let mut keys: Vec<String> = objects
            .list(JOURNAL_PREFIX)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        keys
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shipped_writes_come_back_in_order_up_to_a_time_and_the_log_forgets_them() {
        let (dir, bucket) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (keys, store_id) = (crate::crypto::test_backup_keys(), uuid::Uuid::new_v4());
        let objects = LocalObjects::new(bucket.path());
        let store = shipping_store(dir.path()).await;
        store.upsert("notes", vec![note(1)]).await.unwrap();
        let mark = store.snapshot(&dir.path().join("snap")).await.unwrap().journal.unwrap();
        assert_eq!(mark.next_seq, 1, "the snapshot holds the first write");
        store.upsert("notes", vec![note(2)]).await.unwrap();
        let report = ship(&store, &objects, &keys, &store_id).await.unwrap();
        assert_eq!((report.records, report.objects, report.last_seq), (2, 1, Some(1)));
        assert_eq!(store.unshipped(0, u64::MAX).await.unwrap().unwrap().records, vec![]);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let between = crate::clock::now_ms();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        store.delete("notes", vec![note(1).id]).await.unwrap();
        store.upsert("notes", vec![note(3)]).await.unwrap();
        assert_eq!(ship(&store, &objects, &keys, &store_id).await.unwrap().records, 2);
        assert_eq!(
            ship(&store, &objects, &keys, &store_id).await.unwrap().records,
            0,
            "nothing left"
        );
        assert_eq!(shipped_keys(&objects).await.len(), 2);

        let fetched = fetch(&objects, &keys, &store_id, &mark, None).await.unwrap();
        let (all, records) = (fetched.replay, fetched.records);
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!((all.records, all.last_seq, all.missing_seq), (3, Some(3), None));
        assert!(!fetched.stopped_at_time, "all of it was asked for");
        let fetched = fetch(&objects, &keys, &store_id, &mark, Some(between)).await.unwrap();
        let (until, records) = (fetched.replay, fetched.records);
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1]);
        assert!(until.last_record_ms.unwrap() <= between);
        assert!(fetched.stopped_at_time, "it stopped at the time asked for");

        // The records are the journal's entries: applied to the snapshot, they give the store.
        let snap = dir.path().join("snap");
        crate::store::embedded::apply_shipped(&snap, records.into_iter().map(|r| r.body).collect(), 0).unwrap();
        let restored = EmbeddedStore::open(&snap).unwrap();
        assert_eq!(
            restored.count("notes", None).await.unwrap(),
            2,
            "notes 1 and 2, before the delete"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_altered_moved_or_missing_shipment_is_never_replayed_silently() {
        let (dir, bucket) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (keys, store_id) = (crate::crypto::test_backup_keys(), uuid::Uuid::new_v4());
        let objects = LocalObjects::new(bucket.path());
        let store = shipping_store(dir.path()).await;
        let mark = store.snapshot(&dir.path().join("snap")).await.unwrap().journal.unwrap();
        for i in 0..3 {
            store.upsert("notes", vec![note(i)]).await.unwrap();
            ship(&store, &objects, &keys, &store_id).await.unwrap();
        }
        let shipped = shipped_keys(&objects).await;
        assert_eq!(shipped.len(), 3);
        let path = |key: &str| bucket.path().join(key);

        // Another store's id (or key) does not open it.
        let err = fetch(&objects, &keys, &uuid::Uuid::new_v4(), &mark, None)
            .await
            .unwrap_err();
        assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
        // Copied over another shipment's key: refused (the key is authenticated).
        let original = std::fs::read(path(&shipped[2])).unwrap();
        std::fs::copy(path(&shipped[1]), path(&shipped[2])).unwrap();
        let err = fetch(&objects, &keys, &store_id, &mark, None).await.unwrap_err();
        assert!(err.to_string().contains("failed authentication"), "{err}");
        std::fs::write(path(&shipped[2]), original).unwrap();
        assert_eq!(
            fetch(&objects, &keys, &store_id, &mark, None)
                .await
                .unwrap()
                .records
                .len(),
            3
        );
        // One flipped byte: refused.
        let mut bytes = std::fs::read(path(&shipped[1])).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(path(&shipped[1]), &bytes).unwrap();
        let err = fetch(&objects, &keys, &store_id, &mark, None).await.unwrap_err();
        assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
        // Missing from the middle: replay stops before the gap and says where.
        std::fs::remove_file(path(&shipped[1])).unwrap();
        let fetched = fetch(&objects, &keys, &store_id, &mark, None).await.unwrap();
        assert_eq!(fetched.records.len(), 1);
        assert_eq!(fetched.replay.missing_seq, Some(1));
        assert!(!fetched.stopped_at_time);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_keeps_what_the_oldest_kept_backup_needs_and_the_live_generation() {
        let bucket = tempfile::tempdir().unwrap();
        let objects = LocalObjects::new(bucket.path());
        for key in [
            object_key("aa", 0, 4),
            object_key("aa", 5, 9),
            object_key("aa", 10, 12),
            object_key("bb", 0, 3),
            object_key("cc", 0, 1),
        ] {
            objects.put(&key, vec![0; 10]).await.unwrap();
        }
        objects.put("chunks/unrelated", vec![1]).await.unwrap();
        let manifest = |generation: &str, next_seq: u64| {
            let mut m = crate::backup::retention::tests::backup("20261201T000000Z-00000000", 0, 0);
            m.journal = Some(JournalMark {
                generation: generation.into(),
                next_seq,
            });
            m
        };
        // Kept backups of `aa` start at 7 and 11: records 0..=4 go, 5..=9 stay.
        let kept = [manifest("aa", 11), manifest("aa", 7)];
        let sweep = prune(&objects, &kept, Some("cc")).await.unwrap();
        assert_eq!(
            (sweep.deleted_objects, sweep.deleted_bytes, sweep.kept_objects),
            (2, 20, 3)
        );
        assert_eq!(
            shipped_keys(&objects).await,
            [object_key("aa", 5, 9), object_key("aa", 10, 12), object_key("cc", 0, 1)]
        );
        assert_eq!(
            objects.list("chunks/").await.unwrap().len(),
            1,
            "only shipments are swept"
        );
    }

    #[test]
    fn keys_name_generation_and_range_and_sort_in_record_order() {
        let a = object_key("00ff", 9, 10);
        let b = object_key("00ff", 11, 200);
        assert!(a < b);
        assert_eq!(parse_key(&a), Some(("00ff", 9, 10)));
        for bad in [
            "journal/00ff/5-4.cosj",
            "journal/../1-2.cosj",
            "journal/00ff/1-2.cosi",
            "chunks/00ff/1-2.cosj",
            "journal//1-2.cosj",
            "journal/00ff/x-2.cosj",
        ] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }
}
