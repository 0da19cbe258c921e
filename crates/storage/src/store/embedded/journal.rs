//! Our own redo journal in front of qdrant-edge.
//!
//! qdrant-edge 0.7.2 writes every update to its WAL but does not replay that WAL when a shard
//! is loaded, so updates that were acknowledged but not yet flushed into segments are lost if
//! the process dies (our SIGKILL test showed it). Every write is therefore appended here
//! first, and [`Journal::replay`] re-applies the entries after the last checkpoint on open.
//! A checkpoint (engine flush of every shard, then truncation) happens on `flush()` and when
//! the journal grows past [`CHECKPOINT_BYTES`].
//!
//! Entries hold the same payloads the engine gets: sealed fields stay sealed, so the journal
//! holds no plaintext. Each entry is `len (u32 LE) ‖ crc32 (u32 LE) ‖ body`, the body being
//! [`MSGPACK_TAG`] then the entry in MessagePack (journals written before it hold JSON bodies,
//! which start with `{`, and still replay); replay stops at the first torn or corrupt entry,
//! which can only be an unacknowledged write.

use std::fs::File;
use std::io::{BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::group_sync::GroupSync;
use super::ship_log::ShipLog;

use crate::store::{Filter, Payload, Point, PointId, PointVectors, StoreError};

/// File name of the journal inside the qdrant folder.
pub(super) const JOURNAL_FILE: &str = "journal.log";
/// Journal size that triggers a checkpoint.
pub(super) const CHECKPOINT_BYTES: u64 = 8 * 1024 * 1024;
/// Journal size past which a write waits for a running compaction to end so that the journal
/// can be checkpointed. Below it, checkpoints are skipped while a compaction runs (writers
/// never wait for one); but a compaction of an indexed collection under a steady stream of
/// writes never ends (the engine optimises until nothing is left to do, and the writes keep
/// giving it work), and a 1M-resource estate ingest left a 3.5 GB journal, all to be replayed
/// after a crash.
pub(super) const JOURNAL_LIMIT_BYTES: u64 = 128 * 1024 * 1024;

/// The longest pause [`write_delay`] gives a write.
const MAX_WRITE_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

/// How long a write pauses when a compaction keeps the journal from being checkpointed:
/// nothing up to half of `limit`, then growing linearly to [`MAX_WRITE_DELAY`] at `limit`.
/// qdrant-edge's compaction loops until it finds nothing left to do, so under a steady
/// stream of writes it does not end, and at `limit` a write waits for it (seconds at 1M
/// messages). Slowing writes down before that lets it end (as RocksDB slows writers before it
/// stops them): the checkpoint follows and writes go at full speed again.
pub(super) fn write_delay(size: u64, limit: u64) -> std::time::Duration {
    let half = limit / 2;
    if size <= half || half == 0 {
        return std::time::Duration::ZERO;
    }
    let past = (size - half).min(half) as f64 / half as f64;
    MAX_WRITE_DELAY.mul_f64(past)
}

/// First byte of a MessagePack entry body. MessagePack, not JSON: a 384-dimensional vector
/// takes 1.9 KB instead of about 4 KB of decimal text, so the journal reaches its checkpoint
/// and its limit half as often under a bulk fill.
const MSGPACK_TAG: u8 = 0xB1;

/// One write, in the store's neutral types.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum WriteOp {
    Upsert(Vec<Point>),
    SetPayload { ids: Vec<PointId>, payload: Payload },
    Delete(Vec<PointId>),
    DeleteByFilter(Filter),
    UpdateVectors(Vec<PointVectors>),
    SetPayloadByFilter { filter: Filter, payload: Payload },
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Entry {
    pub(super) collection: String,
    pub(super) op: WriteOp,
}

#[derive(Debug, Serialize)]
struct EntryRef<'a> {
    collection: &'a str,
    op: &'a WriteOp,
}

/// The append-only journal file.
#[derive(Debug)]
pub(super) struct Journal {
    file: File,
    path: PathBuf,
    bytes: u64,
    /// Bytes appended by this process, across truncations: a write's place in the journal,
    /// for [`GroupSync`].
    position: u64,
    group: Arc<GroupSync>,
    /// With shipping on: every entry is also logged here, for the backup target.
    ship: Option<Arc<Mutex<ShipLog>>>,
}

/// Where an appended entry ended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Appended {
    /// Journal file size afterwards (decides checkpoints).
    pub(super) size: u64,
    /// Journal position afterwards (what [`GroupSync::sync_to`] must reach).
    pub(super) position: u64,
}

impl Journal {
    fn io(&self, action: &'static str) -> impl Fn(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            action,
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Open (creating if needed) the journal in `dir`.
    pub(super) fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(JOURNAL_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|source| StoreError::Io {
                action: "opening journal",
                path: path.display().to_string(),
                source,
            })?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let syncer = file.try_clone().map_err(|source| StoreError::Io {
            action: "opening journal",
            path: path.display().to_string(),
            source,
        })?;
        let group = Arc::new(GroupSync::new(move || syncer.sync_data()));
        Ok(Journal {
            file,
            path,
            bytes,
            position: 0,
            group,
            ship: None,
        })
    }

    /// Also log every later entry in `ship` (shipping to the backup target).
    pub(super) fn ship_to(&mut self, ship: Arc<Mutex<ShipLog>>) {
        self.ship = Some(ship);
    }

    /// The group commit of this journal's `fsync`s.
    pub(super) fn group(&self) -> Arc<GroupSync> {
        self.group.clone()
    }

    /// Entries written since the last checkpoint, up to the first torn or corrupt one.
    pub(super) fn replay(&self) -> Result<Vec<Entry>, StoreError> {
        let file = File::open(&self.path).map_err(self.io("reading journal"))?;
        // A length read from disk is trusted only as far as the file reaches: a damaged or
        // planted header never makes replay allocate more than the file holds.
        let mut left = file.metadata().map_err(self.io("reading journal"))?.len();
        let mut reader = BufReader::new(file);
        let mut entries = Vec::new();
        loop {
            let mut header = [0u8; 8];
            if reader.read_exact(&mut header).is_err() {
                break;
            }
            left = left.saturating_sub(8);
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let fits = u64::from(len) <= left;
            left = left.saturating_sub(u64::from(len));
            let mut body = if fits { vec![0u8; len as usize] } else { Vec::new() };
            if !fits || reader.read_exact(&mut body).is_err() || crc32fast::hash(&body) != crc {
                tracing::warn!(
                    replayed = entries.len(),
                    "journal ends in a torn entry (an unacknowledged write); ignoring it"
                );
                break;
            }
            match decode(&body) {
                Ok(entry) => entries.push(entry),
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable journal entry; replay stops here");
                    break;
                }
            }
        }
        Ok(entries)
    }

    /// Append one entry (written, not synced: see [`GroupSync`]).
    pub(super) fn append(&mut self, collection: &str, op: &WriteOp) -> Result<Appended, StoreError> {
        let body = encode(&EntryRef { collection, op }).map_err(|e| StoreError::Io {
            action: "encoding journal entry for",
            path: self.path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        let record_len = self.write_record(&body)?;
        if let Some(ship) = &self.ship {
            let logged = ship
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(crate::clock::now_ms(), &body);
            if let Err(e) = logged {
                // Not applied, so neither journaled: a write is in both logs or in neither.
                let _ = self.file.set_len(self.bytes);
                return Err(e);
            }
        }
        self.bytes += record_len;
        self.position += record_len;
        self.group.wrote(self.position);
        Ok(Appended {
            size: self.bytes,
            position: self.position,
        })
    }

    /// Write one record for an encoded entry at the end; a failed write is cut off again.
    /// Returns the record's length.
    fn write_record(&mut self, body: &[u8]) -> Result<u64, StoreError> {
        let len = u32::try_from(body.len()).map_err(|_| StoreError::Io {
            action: "journaling (entry over 4 GiB)",
            path: self.path.display().to_string(),
            source: std::io::Error::other("entry too large"),
        })?;
        let mut record = Vec::with_capacity(8 + body.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        record.extend_from_slice(body);
        // One write call: a crash leaves at most one torn entry at the tail.
        if let Err(e) = self.file.write_all(&record) {
            let _ = self.file.set_len(self.bytes);
            return Err(self.io("writing journal")(e));
        }
        Ok(record.len() as u64)
    }

    /// Forget every entry: call only after the engine has flushed them all.
    pub(super) fn truncate(&mut self) -> Result<(), StoreError> {
        self.file.set_len(0).map_err(self.io("truncating journal"))?;
        self.file.sync_all().map_err(self.io("syncing journal"))?;
        self.bytes = 0;
        // Every entry so far is in the engine's flushed segments now.
        self.group.durable(self.position);
        Ok(())
    }
}

/// Append entries already in the journal's encoding (shipped records, replayed by a restore)
/// to the journal in `dir`, synced: the next open of the store applies them.
///
/// # Errors
/// [`StoreError::Io`] when the journal cannot be written.
pub(super) fn append_encoded(dir: &Path, bodies: impl IntoIterator<Item = Vec<u8>>) -> Result<(), StoreError> {
    let mut journal = Journal::open(dir)?;
    for body in bodies {
        let record_len = journal.write_record(&body)?;
        journal.bytes += record_len;
    }
    journal.file.sync_all().map_err(journal.io("syncing journal"))
}

/// An entry's body: [`MSGPACK_TAG`], then the entry.
fn encode(entry: &EntryRef<'_>) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let mut body = vec![MSGPACK_TAG];
    rmp_serde::encode::write(&mut body, entry)?;
    Ok(body)
}

/// An entry from its body: MessagePack after [`MSGPACK_TAG`], else JSON (written before it).
fn decode(body: &[u8]) -> Result<Entry, String> {
    match body.split_first() {
        Some((&MSGPACK_TAG, rest)) => rmp_serde::from_slice(rest).map_err(|e| e.to_string()),
        _ => serde_json::from_slice(body).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::VectorData;

    /// A point as the chat stores a message: sealed text, keyword and dense vectors.
    fn message_point(i: u128) -> Point {
        let mut payload = Payload::new();
        payload.insert("user_id".into(), serde_json::json!("alice"));
        payload.insert("seq".into(), serde_json::json!(i as u64));
        payload.insert("score".into(), serde_json::json!(-0.25));
        payload.insert("tags".into(), serde_json::json!(["a", null, true, {"k": 1.5}]));
        payload.insert("text".into(), serde_json::json!("c2VhbGVkIGJ5dGVz"));
        let dense: Vec<f32> = (0..384).map(|d| ((d as f32) * 0.37 + i as f32).sin() / 19.6).collect();
        Point {
            id: uuid::Uuid::from_u128(i),
            vectors: [
                ("dense".to_string(), VectorData::Dense(dense)),
                (
                    "keywords".to_string(),
                    VectorData::Sparse {
                        indices: vec![3, 17, 4_000_000_000],
                        values: vec![1.0, 0.5, 2.25],
                    },
                ),
            ]
            .into(),
            payload,
        }
    }

    #[test]
    fn every_kind_of_write_replays_exactly_as_appended() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        let filter = Filter {
            must: vec![crate::store::Condition::Eq("user_id".into(), "alice".into())],
            should: vec![crate::store::Condition::Range(
                "seq".into(),
                crate::store::Range {
                    gte: Some(2.0),
                    ..Default::default()
                },
            )],
            must_not: vec![crate::store::Condition::HasId(vec![uuid::Uuid::from_u128(9)])],
        };
        let ops = vec![
            WriteOp::Upsert(vec![message_point(1), message_point(2)]),
            WriteOp::SetPayload {
                ids: vec![uuid::Uuid::from_u128(1)],
                payload: message_point(3).payload,
            },
            WriteOp::UpdateVectors(vec![PointVectors {
                id: uuid::Uuid::from_u128(2),
                vectors: message_point(4).vectors,
            }]),
            WriteOp::SetPayloadByFilter {
                filter: filter.clone(),
                payload: message_point(5).payload,
            },
            WriteOp::DeleteByFilter(filter),
            WriteOp::Delete(vec![uuid::Uuid::from_u128(1)]),
        ];
        for op in &ops {
            j.append("messages", op).unwrap();
        }
        let replayed = Journal::open(dir.path()).unwrap().replay().unwrap();
        assert_eq!(replayed.len(), ops.len());
        for (entry, op) in replayed.iter().zip(&ops) {
            assert_eq!(entry.collection, "messages");
            // WriteOp has no PartialEq: compare through one canonical text form.
            assert_eq!(
                serde_json::to_value(&entry.op).unwrap(),
                serde_json::to_value(op).unwrap()
            );
        }
    }

    #[test]
    fn a_message_with_its_dense_vector_journals_in_under_half_the_bytes_of_json() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        let op = WriteOp::Upsert(vec![message_point(7)]);
        let binary = j.append("messages", &op).unwrap().size;
        let json = serde_json::to_vec(&EntryRef {
            collection: "messages",
            op: &op,
        })
        .unwrap()
        .len() as u64
            + 8;
        assert!(binary * 2 < json, "{binary} bytes journaled, JSON would take {json}");
        // 5 bytes a float (MessagePack f32), a few hundred for the payload and framing.
        assert!(
            binary < 384 * 5 + 300,
            "{binary} bytes for 384 floats and a small payload"
        );
    }

    #[test]
    fn json_entries_from_earlier_versions_replay_before_and_between_binary_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let json_record = |op: &WriteOp| {
            let body = serde_json::to_vec(&EntryRef { collection: "old", op }).unwrap();
            let mut record = (body.len() as u32).to_le_bytes().to_vec();
            record.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            record.extend_from_slice(&body);
            record
        };
        std::fs::write(&path, json_record(&WriteOp::Upsert(vec![message_point(1)]))).unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.append("new", &WriteOp::Delete(vec![uuid::Uuid::from_u128(2)]))
            .unwrap();
        drop(j);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(json_record(&WriteOp::Delete(vec![uuid::Uuid::from_u128(3)])));
        std::fs::write(&path, bytes).unwrap();
        let entries = Journal::open(dir.path()).unwrap().replay().unwrap();
        assert_eq!(entries.len(), 3);
        assert!(matches!(&entries[0].op, WriteOp::Upsert(p) if p[0] == message_point(1)));
        assert_eq!(entries[1].collection, "new");
        assert!(matches!(&entries[2].op, WriteOp::Delete(ids) if ids[0] == uuid::Uuid::from_u128(3)));
    }

    #[test]
    fn replay_stops_at_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.append("c", &WriteOp::Delete(vec![uuid::Uuid::from_u128(1)])).unwrap();
        j.append("c", &WriteOp::Delete(vec![uuid::Uuid::from_u128(2)])).unwrap();
        let full = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        std::fs::write(dir.path().join(JOURNAL_FILE), &full[..full.len() - 3]).unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let entries = j.replay().unwrap();
        assert_eq!(entries.len(), 1);
        assert!(matches!(&entries[0].op, WriteOp::Delete(ids) if ids[0] == uuid::Uuid::from_u128(1)));
    }

    #[test]
    fn a_length_past_the_end_of_the_file_stops_replay_without_allocating_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.append("c", &WriteOp::Delete(vec![uuid::Uuid::from_u128(1)])).unwrap();
        let mut bytes = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        // A header claiming a 4 GiB entry, and a few bytes after it.
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(b"{}");
        std::fs::write(dir.path().join(JOURNAL_FILE), &bytes).unwrap();
        let entries = Journal::open(dir.path()).unwrap().replay().unwrap();
        assert_eq!(entries.len(), 1, "the good entry before it is kept");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Any bytes in the journal file, alone or after good entries: replay keeps a prefix
        /// of whole entries and never panics or allocates a length read from disk.
        #[test]
        fn arbitrary_journal_bytes_replay_cleanly(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            good in 0usize..3,
        ) {
            let dir = tempfile::tempdir().map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let mut j = Journal::open(dir.path()).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            for i in 0..good {
                let _ = j.append("c", &WriteOp::Delete(vec![uuid::Uuid::from_u128(i as u128)]));
            }
            drop(j);
            let path = dir.path().join(JOURNAL_FILE);
            let mut bytes = std::fs::read(&path).unwrap_or_default();
            bytes.extend_from_slice(&junk);
            std::fs::write(&path, &bytes).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            // Junk after whole entries is a torn tail: the entries before it are kept.
            let j = Journal::open(dir.path()).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let entries = j.replay().map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert!(entries.len() >= good, "{} of {good} good entries kept", entries.len());
        }
    }

    #[test]
    fn writes_slow_down_from_half_the_limit_and_never_pause_longer_than_the_maximum() {
        use std::time::Duration;
        let limit = 128 << 20;
        assert_eq!(write_delay(0, limit), Duration::ZERO);
        assert_eq!(write_delay(limit / 2, limit), Duration::ZERO);
        let mut last = Duration::ZERO;
        for size in (limit / 2 + (1 << 20)..=limit).step_by(1 << 20) {
            let delay = write_delay(size, limit);
            assert!(delay > Duration::ZERO && delay >= last, "{delay:?} at {size}");
            last = delay;
        }
        assert_eq!(write_delay(limit, limit), MAX_WRITE_DELAY);
        assert_eq!(write_delay(limit * 4, limit), MAX_WRITE_DELAY);
        assert_eq!(write_delay(5, 0), Duration::ZERO);
    }

    #[test]
    fn truncate_empties() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.append("c", &WriteOp::Delete(vec![])).unwrap();
        j.truncate().unwrap();
        assert_eq!(j.bytes, 0);
        assert!(j.replay().unwrap().is_empty());
        j.append("c", &WriteOp::Delete(vec![])).unwrap();
        assert_eq!(j.replay().unwrap().len(), 1);
    }
}
