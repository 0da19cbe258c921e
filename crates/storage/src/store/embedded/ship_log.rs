//! The log of writes waiting to be shipped to the backup target (point-in-time restore).
//!
//! With shipping on ([`super::EmbeddedOptions::ship_journal`]), every journal entry is also
//! appended here, under the journal's lock, with a sequence number and the time it was
//! written. Checkpoints do not truncate this log: the backup manager's shipper reads the
//! records after the last shipped one ([`read_unshipped`], without taking any lock a writer
//! needs), uploads them sealed, and then drops them ([`ShipLog::drop_through`]). A snapshot
//! records where the log stands ([`crate::store::JournalMark`]), so a restore replays exactly
//! the shipped records after its backup.
//!
//! A log belongs to one *generation* (a random id written in its header): a store restored
//! from a backup starts a new log, so its numbering never mixes with the records of the
//! timeline it left.
//!
//! File: `COSL` ‖ format (1 byte) ‖ generation (16 bytes) ‖ when records were last shipped
//! (i64 LE unix ms, 0: never) ‖ the sequence number of the first record (u64 LE), then records `seq (u64 LE) ‖ time_ms (i64 LE) ‖ len (u32 LE) ‖ crc32 (u32
//! LE) ‖ body`, the body being the journal's encoding of the entry (sealed fields stay
//! sealed). Reading stops at the first torn or corrupt record, which can only be an
//! unacknowledged write. Shipped objects hold records in the same encoding
//! ([`encode_records`], [`decode_records`]).

use std::fs::File;
use std::io::{BufReader, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use crate::store::{ShipRecord, StoreError, Unshipped};

/// File name of the ship log inside the qdrant folder.
pub(crate) const SHIP_LOG_FILE: &str = "ship.log";
const MAGIC: &[u8; 4] = b"COSL";
const FORMAT: u8 = 1;
const GENERATION_LEN: usize = 16;
const FILE_HEADER_LEN: usize = 4 + 1 + GENERATION_LEN + 8 + 8;
const RECORD_HEADER_LEN: usize = 8 + 8 + 4 + 4;

/// The ship log of one store.
#[derive(Debug)]
pub(super) struct ShipLog {
    file: File,
    path: PathBuf,
    generation: String,
    /// Sequence number of the next record.
    next_seq: u64,
    /// Length of the file up to the last whole record.
    len: u64,
}

impl ShipLog {
    /// Open (creating, with a new generation, if needed) the ship log in `dir`; a torn tail is
    /// cut off.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the file cannot be read or written, or is not a ship log.
    pub(super) fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(SHIP_LOG_FILE);
        let io = io_err(&path);
        if !path.exists() {
            let mut generation = [0u8; GENERATION_LEN];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut generation);
            write_new(&path, &generation, 0, 0, &[]).map_err(&io)?;
        }
        let read = read_file(&path, 0, u64::MAX).map_err(&io)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(&io)?;
        if file.metadata().map_err(&io)?.len() > read.good_len {
            tracing::warn!(path = %path.display(), "ship log ends in a torn record (an unacknowledged write); cutting it off");
            file.set_len(read.good_len).map_err(&io)?;
        }
        let next_seq = read.records.last().map_or(read.first_seq, |r| r.seq + 1);
        drop(io);
        Ok(ShipLog {
            file,
            generation: hex(&read.generation),
            path,
            next_seq,
            len: read.good_len,
        })
    }

    /// This log's generation (hex).
    pub(super) fn generation(&self) -> &str {
        &self.generation
    }

    /// Sequence number the next record gets (a snapshot's "covered up to" mark).
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Append one entry written at `time_ms`; returns its sequence number (written, not
    /// synced: like the journal, it reaches the disk at the next `fsync` or page write-back).
    ///
    /// # Errors
    /// [`StoreError::Io`] when the write fails.
    pub(super) fn append(&mut self, time_ms: i64, body: &[u8]) -> Result<u64, StoreError> {
        let seq = self.next_seq;
        let mut record = Vec::with_capacity(RECORD_HEADER_LEN + body.len());
        encode_record(&mut record, seq, time_ms, body).map_err(io_err(&self.path))?;
        // At the end, in one write call: a crash tears at most the last record, and a failed
        // write is cut off so that the next record follows the last whole one.
        let written = self
            .file
            .seek(std::io::SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(&record));
        if let Err(e) = written {
            let _ = self.file.set_len(self.len);
            return Err(io_err(&self.path)(e));
        }
        self.len += record.len() as u64;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Forget the records up to and including `seq` (shipped at `now_ms`), keeping the
    /// numbering: the records after it are rewritten aside and renamed over the log.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the file cannot be read, written or renamed.
    pub(super) fn drop_through(&mut self, seq: u64, now_ms: i64) -> Result<(), StoreError> {
        let io = io_err(&self.path);
        let read = read_file(&self.path, seq.saturating_add(1), u64::MAX).map_err(&io)?;
        let first = read
            .records
            .first()
            .map_or(self.next_seq.max(seq.saturating_add(1)), |r| r.seq);
        let aside = self.path.with_extension("log.new");
        write_new(&aside, &read.generation, now_ms, first, &read.records).map_err(&io)?;
        // The log's handle is let go before the rename (Windows refuses to replace an open
        // file unless the volume has POSIX rename semantics); the new file's handle follows it
        // through the rename, on every OS.
        let rewritten = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&aside)
            .map_err(&io)?;
        drop(std::mem::replace(&mut self.file, rewritten));
        if let Err(e) = std::fs::rename(&aside, &self.path) {
            self.file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)
                .map_err(&io)?;
            return Err(io(e));
        }
        self.len = self.file.metadata().map_err(&io)?.len();
        self.next_seq = self.next_seq.max(first);
        Ok(())
    }
}

/// Up to about `max_bytes` of records (at least one when there is one) of the ship log in
/// `dir`, from sequence number `from` on (the bodies of earlier ones are skipped unread).
/// Reads the file without any lock: a record being appended meanwhile reads as a torn tail
/// and waits for the next call.
///
/// # Errors
/// [`StoreError::Io`] when the file cannot be read or is not a ship log.
pub(super) fn read_unshipped(dir: &Path, from: u64, max_bytes: u64) -> Result<Unshipped, StoreError> {
    let path = dir.join(SHIP_LOG_FILE);
    let read = read_file(&path, from, max_bytes).map_err(io_err(&path))?;
    Ok(Unshipped {
        generation: hex(&read.generation),
        shipped_at_ms: (read.shipped_at_ms != 0).then_some(read.shipped_at_ms),
        records: read.records,
    })
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        action: "using the ship log",
        path: path.display().to_string(),
        source,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode_record(out: &mut Vec<u8>, seq: u64, time_ms: i64, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| std::io::Error::other("entry over 4 GiB"))?;
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&time_ms.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Records in the ship log's encoding (the plaintext of a shipped object).
pub(crate) fn encode_records(records: &[ShipRecord]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(records.iter().map(|r| RECORD_HEADER_LEN + r.body.len()).sum());
    for r in records {
        encode_record(&mut out, r.seq, r.time_ms, &r.body)?;
    }
    Ok(out)
}

/// Every record of [`encode_records`]' output, which must be whole, intact and numbered
/// one after another.
///
/// # Errors
/// What is wrong, when anything is.
pub(crate) fn decode_records(bytes: &[u8]) -> Result<Vec<ShipRecord>, String> {
    let mut reader = bytes;
    let mut records = Vec::new();
    let mut left = bytes.len() as u64;
    while !reader.is_empty() {
        match next_record(&mut reader, &mut left) {
            Some(r) => {
                if records.last().is_some_and(|p: &ShipRecord| p.seq + 1 != r.seq) {
                    return Err(format!("record {} does not follow record {}", r.seq, records.len()));
                }
                records.push(r);
            }
            None => return Err(format!("record {} is torn or corrupt", records.len())),
        }
    }
    Ok(records)
}

/// The next whole record of `reader`, or `None` at a torn or corrupt one (or the end).
/// `left` bounds the length a record header may claim.
fn next_record(reader: &mut impl std::io::Read, left: &mut u64) -> Option<ShipRecord> {
    let head = next_header(reader, left)?;
    read_body(reader, left, &head)
}

/// A record's header: its number, time, body length and checksum.
struct RecordHeader {
    seq: u64,
    time_ms: i64,
    len: u32,
    crc: u32,
}

/// The next record's header, or `None` at the end or where its body would pass `left`.
fn next_header(reader: &mut impl std::io::Read, left: &mut u64) -> Option<RecordHeader> {
    let mut head = [0u8; RECORD_HEADER_LEN];
    reader.read_exact(&mut head).ok()?;
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&head[at..at + 8]);
        bytes
    };
    let header = RecordHeader {
        seq: u64::from_le_bytes(word(0)),
        time_ms: i64::from_le_bytes(word(8)),
        len: u32::from_le_bytes([head[16], head[17], head[18], head[19]]),
        crc: u32::from_le_bytes([head[20], head[21], head[22], head[23]]),
    };
    *left = left.saturating_sub(RECORD_HEADER_LEN as u64);
    // A length is trusted only as far as the bytes reach.
    (u64::from(header.len) <= *left).then_some(header)
}

/// The body after `head`, checked against its checksum.
fn read_body(reader: &mut impl std::io::Read, left: &mut u64, head: &RecordHeader) -> Option<ShipRecord> {
    let mut body = vec![0u8; head.len as usize];
    reader.read_exact(&mut body).ok()?;
    if crc32fast::hash(&body) != head.crc {
        return None;
    }
    *left -= u64::from(head.len);
    Some(ShipRecord {
        seq: head.seq,
        time_ms: head.time_ms,
        body,
    })
}

/// Write a ship log of `generation` holding `records` (first sequence number `first_seq`),
/// synced.
fn write_new(
    path: &Path,
    generation: &[u8],
    shipped_at_ms: i64,
    first_seq: u64,
    records: &[ShipRecord],
) -> std::io::Result<()> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(generation);
    out.extend_from_slice(&shipped_at_ms.to_le_bytes());
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend(encode_records(records)?);
    let mut file = File::create(path)?;
    file.write_all(&out)?;
    file.sync_all()
}

/// What [`read_file`] found.
struct FileRead {
    generation: Vec<u8>,
    shipped_at_ms: i64,
    first_seq: u64,
    /// The records from the asked sequence number on.
    records: Vec<ShipRecord>,
    /// Length of the file up to the last whole record read.
    good_len: u64,
}

/// The header and the whole records numbered `from` or later, stopping once past
/// `max_bytes` of bodies.
fn read_file(path: &Path, from: u64, max_bytes: u64) -> std::io::Result<FileRead> {
    let file = File::open(path)?;
    let mut left = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let mut header = [0u8; FILE_HEADER_LEN];
    reader.read_exact(&mut header)?;
    if &header[..4] != MAGIC || header[4] != FORMAT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a ship log of a known format",
        ));
    }
    let generation = header[5..5 + GENERATION_LEN].to_vec();
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&header[at..at + 8]);
        bytes
    };
    let shipped_at_ms = i64::from_le_bytes(word(5 + GENERATION_LEN));
    let first_seq = u64::from_le_bytes(word(5 + GENERATION_LEN + 8));
    left -= FILE_HEADER_LEN as u64;
    let (mut records, mut good_len, mut bytes) = (Vec::new(), FILE_HEADER_LEN as u64, 0u64);
    let mut expected = first_seq;
    while let Some(head) = next_header(&mut reader, &mut left) {
        if head.seq != expected {
            break;
        }
        if head.seq < from {
            // Not asked for (read by an earlier call): its body is skipped unread.
            if reader.seek_relative(i64::from(head.len)).is_err() {
                break;
            }
            left -= u64::from(head.len);
        } else {
            let Some(record) = read_body(&mut reader, &mut left, &head) else {
                break;
            };
            bytes += record.body.len() as u64;
            records.push(record);
        }
        expected += 1;
        good_len += RECORD_HEADER_LEN as u64 + u64::from(head.len);
        if bytes >= max_bytes {
            break;
        }
    }
    Ok(FileRead {
        generation,
        shipped_at_ms,
        first_seq,
        records,
        good_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(dir: &Path, from: u64) -> Vec<u64> {
        read_unshipped(dir, from, u64::MAX)
            .unwrap()
            .records
            .iter()
            .map(|r| r.seq)
            .collect()
    }

    #[test]
    fn records_keep_their_numbers_and_generation_across_drops_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ShipLog::open(dir.path()).unwrap();
        let generation = log.generation().to_string();
        assert_eq!(generation.len(), 32);
        for i in 0..5 {
            assert_eq!(log.append(1000 + i, format!("entry {i}").as_bytes()).unwrap(), i as u64);
        }
        assert_eq!(read_unshipped(dir.path(), 0, u64::MAX).unwrap().shipped_at_ms, None);
        log.drop_through(2, 1500).unwrap();
        assert_eq!(seqs(dir.path(), 0), [3, 4]);
        assert_eq!(
            read_unshipped(dir.path(), 0, u64::MAX).unwrap().shipped_at_ms,
            Some(1500)
        );
        assert_eq!(log.append(2000, b"after").unwrap(), 5);
        drop(log);
        let mut log = ShipLog::open(dir.path()).unwrap();
        assert_eq!(log.generation(), generation);
        assert_eq!(log.next_seq(), 6);
        let Unshipped {
            generation: read_generation,
            records,
            ..
        } = read_unshipped(dir.path(), 4, u64::MAX).unwrap();
        assert_eq!(read_generation, generation);
        assert_eq!(
            records[0],
            ShipRecord {
                seq: 4,
                time_ms: 1004,
                body: b"entry 4".to_vec()
            }
        );
        assert_eq!(records[1].body, b"after");
        // Everything shipped: the numbering survives an empty log.
        log.drop_through(5, 2500).unwrap();
        drop(log);
        let mut log = ShipLog::open(dir.path()).unwrap();
        assert!(seqs(dir.path(), 0).is_empty());
        assert_eq!(log.append(3000, b"later").unwrap(), 6);
        // A new log (a restored store) is another generation.
        let other = tempfile::tempdir().unwrap();
        assert_ne!(ShipLog::open(other.path()).unwrap().generation(), generation);
    }

    #[test]
    fn unshipped_reads_stop_past_the_byte_budget_but_return_at_least_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ShipLog::open(dir.path()).unwrap();
        for i in 0..10 {
            log.append(i, &[7u8; 100]).unwrap();
        }
        let count = |from, max| read_unshipped(dir.path(), from, max).unwrap().records.len();
        assert_eq!(count(2, 250), 3);
        assert_eq!(count(2, 1), 1);
        assert_eq!(count(9, u64::MAX), 1);
        assert_eq!(count(10, u64::MAX), 0);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_a_foreign_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ShipLog::open(dir.path()).unwrap();
        log.append(1, b"whole").unwrap();
        log.append(2, b"torn record").unwrap();
        drop(log);
        let path = dir.path().join(SHIP_LOG_FILE);
        let len = std::fs::metadata(&path).unwrap().len();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        assert_eq!(seqs(dir.path(), 0), [0], "a reader skips the torn record");
        let mut log = ShipLog::open(dir.path()).unwrap();
        assert_eq!(
            log.append(3, b"next").unwrap(),
            1,
            "the torn record's number is reused: it was never acknowledged"
        );
        assert_eq!(
            read_unshipped(dir.path(), 1, u64::MAX).unwrap().records[0].body,
            b"next"
        );

        std::fs::write(&path, b"something else entirely, longer than a header").unwrap();
        assert!(matches!(ShipLog::open(dir.path()), Err(StoreError::Io { .. })));
    }

    #[test]
    fn shipped_records_decode_only_whole_intact_and_in_order() {
        let record = |seq: u64| ShipRecord {
            seq,
            time_ms: seq as i64 * 10,
            body: vec![seq as u8; 3],
        };
        let records = vec![record(7), record(8), record(9)];
        let bytes = encode_records(&records).unwrap();
        assert_eq!(decode_records(&bytes).unwrap(), records);
        assert!(decode_records(&bytes[..bytes.len() - 1]).is_err(), "torn");
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(decode_records(&flipped).is_err(), "altered");
        let gap = encode_records(&[record(7), record(9)]).unwrap();
        assert!(decode_records(&gap).is_err(), "a gap");
        assert!(decode_records(&[]).unwrap().is_empty());
    }
}
