//! The encrypted archive: tar → zstd → AES-256-GCM in 64 KiB chunks (STREAM, big-endian
//! 32-bit counter with a last-chunk flag), so a truncated, reordered, spliced or modified
//! archive fails to decrypt instead of restoring something else.
//!
//! Layout: `"COSB" ‖ format (1) ‖ key_id (u32 BE) ‖ nonce prefix (7)`, then chunks of
//! `last flag (u8) ‖ length (u32 LE) ‖ ciphertext`. Every chunk's AAD is the header plus the
//! store id and backup name, binding the archive to the manifest that names it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use aead::stream::{DecryptorBE32, EncryptorBE32};
use aead::{KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::BackupError;
use crate::store::embedded::archive_rank;

const MAGIC: &[u8; 4] = b"COSB";
const FORMAT: u8 = 1;
const CHUNK: usize = 64 * 1024;
const NONCE_PREFIX: usize = 7;
const HEADER_LEN: usize = 4 + 1 + 4 + NONCE_PREFIX;
const TAG: usize = 16;

/// Size and checksum of a written archive.
#[derive(Debug, Clone)]
pub(super) struct Written {
    pub(super) bytes: u64,
    pub(super) sha256: String,
}

fn aad(header: &[u8], store_id: &uuid::Uuid, name: &str) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(store_id.as_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Writes everything through SHA-256 to the file.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Buffers plaintext and writes it as encrypted chunks.
struct Encrypting<W: Write> {
    inner: W,
    encryptor: Option<EncryptorBE32<Aes256Gcm>>,
    aad: Vec<u8>,
    buf: Vec<u8>,
}

impl<W: Write> Encrypting<W> {
    fn emit(&mut self, last: bool) -> std::io::Result<()> {
        let take = self.buf.len().min(CHUNK);
        let chunk: Vec<u8> = self.buf.drain(..take).collect();
        let payload = Payload {
            msg: &chunk,
            aad: &self.aad,
        };
        let ct = if last {
            let enc = self
                .encryptor
                .take()
                .ok_or_else(|| std::io::Error::other("archive already finished"))?;
            enc.encrypt_last(payload)
        } else {
            let enc = self
                .encryptor
                .as_mut()
                .ok_or_else(|| std::io::Error::other("archive already finished"))?;
            enc.encrypt_next(payload)
        }
        .map_err(|_| std::io::Error::other("archive encryption failed"))?;
        self.inner.write_all(&[u8::from(last)])?;
        self.inner.write_all(&(ct.len() as u32).to_le_bytes())?;
        self.inner.write_all(&ct)
    }

    fn finish(mut self) -> std::io::Result<W> {
        while self.buf.len() > CHUNK {
            self.emit(false)?;
        }
        self.emit(true)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Encrypting<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        // Keep one chunk back: the final chunk must be the one flagged last.
        while self.buf.len() > CHUNK {
            self.emit(false)?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Archive the folder `src` (its `qdrant/` tree) into `out`.
pub(super) fn write_archive(
    src: &Path,
    out: &Path,
    key: &[u8; 32],
    key_id: u32,
    store_id: &uuid::Uuid,
    name: &str,
) -> Result<Written, BackupError> {
    let io = |e: std::io::Error| BackupError::Io {
        path: out.display().to_string(),
        source: e,
    };
    let mut prefix = [0u8; NONCE_PREFIX];
    rand::thread_rng().fill_bytes(&mut prefix);
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.push(FORMAT);
    header.extend_from_slice(&key_id.to_be_bytes());
    header.extend_from_slice(&prefix);
    let file = crate::platform::private_file(out).map_err(io)?;
    let mut hashing = Hashing {
        inner: BufWriter::new(file),
        hasher: Sha256::new(),
        bytes: 0,
    };
    hashing.write_all(&header).map_err(io)?;
    let cipher = Aes256Gcm::new(key.into());
    let encrypting = Encrypting {
        inner: hashing,
        encryptor: Some(EncryptorBE32::from_aead(cipher, (&prefix).into())),
        aad: aad(&header, store_id, name),
        buf: Vec::with_capacity(2 * CHUNK),
    };
    let zstd = zstd::Encoder::new(encrypting, 3).map_err(io)?;
    let mut tar = tar::Builder::new(zstd);
    tar.follow_symlinks(false);
    append_in_stable_order(&mut tar, &src.join("qdrant"), Path::new("qdrant")).map_err(io)?;
    let zstd = tar.into_inner().map_err(io)?;
    let encrypting = zstd.finish().map_err(io)?;
    let mut hashing = encrypting.finish().map_err(io)?;
    hashing.flush().map_err(io)?;
    let digest = hashing.hasher.finalize();
    let bytes = hashing.bytes;
    let file = hashing.inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(Written {
        bytes,
        sha256: hex(&digest),
    })
}

/// Append the tree at `root` under `name`, laid out so that two backups of a store a few
/// writes apart give nearly the same byte stream (what incremental uploads deduplicate):
/// folders first, then files by [`archive_rank`] and path; headers without times or owners
/// (`HeaderMode::Deterministic`: a snapshot's copied files are new every time).
fn append_in_stable_order<W: Write>(tar: &mut tar::Builder<W>, root: &Path, name: &Path) -> std::io::Result<()> {
    tar.mode(tar::HeaderMode::Deterministic);
    let (mut dirs, mut files) = (vec![PathBuf::new()], Vec::new());
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        for entry in std::fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            let child = rel.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(child.clone());
                pending.push(child);
            } else if kind.is_file() {
                files.push((archive_rank(&root.join(&child)), child));
            }
        }
    }
    dirs.sort_unstable();
    files.sort_unstable();
    for dir in dirs {
        tar.append_path_with_name(root.join(&dir), name.join(&dir))?;
    }
    for (_, file) in files {
        tar.append_path_with_name(root.join(&file), name.join(&file))?;
    }
    Ok(())
}

/// SHA-256 of a file, hex.
pub(super) fn sha256_file(path: &Path) -> Result<String, BackupError> {
    let io = |e| BackupError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads decrypted plaintext out of the chunk stream.
struct Decrypting<R: Read> {
    inner: R,
    decryptor: Option<DecryptorBE32<Aes256Gcm>>,
    aad: Vec<u8>,
    plain: Vec<u8>,
    pos: usize,
    done: bool,
}

fn corrupt(reason: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, reason.to_string())
}

impl<R: Read> Decrypting<R> {
    fn next_chunk(&mut self) -> std::io::Result<()> {
        let mut frame = [0u8; 5];
        if let Err(e) = self.inner.read_exact(&mut frame) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                corrupt("archive is truncated (no final chunk)")
            } else {
                e
            });
        }
        let last = match frame[0] {
            0 => false,
            1 => true,
            _ => return Err(corrupt("archive chunk has an invalid flag")),
        };
        let len = u32::from_le_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        if len > CHUNK + TAG {
            return Err(corrupt("archive chunk is too long"));
        }
        let mut ct = vec![0u8; len];
        self.inner
            .read_exact(&mut ct)
            .map_err(|_| corrupt("archive is truncated inside a chunk"))?;
        let payload = Payload {
            msg: &ct,
            aad: &self.aad,
        };
        let fail = |_| corrupt("archive chunk failed authentication (corrupt, reordered, or another key)");
        self.plain = if last {
            let dec = self
                .decryptor
                .take()
                .ok_or_else(|| corrupt("data after the final chunk"))?;
            let plain = dec.decrypt_last(payload).map_err(fail)?;
            let mut extra = [0u8; 1];
            if self.inner.read(&mut extra)? != 0 {
                return Err(corrupt("data after the final chunk"));
            }
            self.done = true;
            plain
        } else {
            let dec = self
                .decryptor
                .as_mut()
                .ok_or_else(|| corrupt("data after the final chunk"))?;
            dec.decrypt_next(payload).map_err(fail)?
        };
        self.pos = 0;
        Ok(())
    }
}

impl<R: Read> Read for Decrypting<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn stream_err<'a>(name: &str, path: &'a Path) -> impl Fn(std::io::Error) -> BackupError + 'a {
    let name = name.to_string();
    move |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            BackupError::Corrupt {
                name: name.clone(),
                reason: e.to_string(),
            }
        } else {
            BackupError::Io {
                path: path.display().to_string(),
                source: e,
            }
        }
    }
}

/// Decrypt, decompress and unpack `archive` into `dest` (holes of zero blocks kept sparse).
pub(super) fn read_archive(
    archive: &Path,
    dest: &Path,
    key_for: impl Fn(u32) -> Option<[u8; 32]>,
    store_id: &uuid::Uuid,
    name: &str,
) -> Result<u64, BackupError> {
    let stream = tar_stream(archive, key_for, store_id, name)?;
    unpack_tar(stream, dest, name, archive)
}

/// The plaintext tar stream of `archive`: decrypted and decompressed as it is read. Reading it
/// to the end checks the final chunk's authentication and that nothing follows it.
pub(super) fn tar_stream(
    archive: &Path,
    key_for: impl Fn(u32) -> Option<[u8; 32]>,
    store_id: &uuid::Uuid,
    name: &str,
) -> Result<impl Read, BackupError> {
    let io = stream_err(name, archive);
    let mut file = BufReader::new(File::open(archive).map_err(&io)?);
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header).map_err(|_| BackupError::Corrupt {
        name: name.to_string(),
        reason: "archive is shorter than its header".into(),
    })?;
    if &header[..4] != MAGIC || header[4] != FORMAT {
        return Err(BackupError::Corrupt {
            name: name.to_string(),
            reason: "not a cloudops-storage archive of a known format".into(),
        });
    }
    let key_id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    let key = key_for(key_id).ok_or(BackupError::UnknownKey { key_id })?;
    let prefix: [u8; NONCE_PREFIX] = header[9..].try_into().map_err(|_| BackupError::Corrupt {
        name: name.to_string(),
        reason: "bad header".into(),
    })?;
    let decrypting = Decrypting {
        inner: file,
        decryptor: Some(DecryptorBE32::from_aead(
            Aes256Gcm::new((&key).into()),
            (&prefix).into(),
        )),
        aad: aad(&header, store_id, name),
        plain: Vec::new(),
        pos: 0,
        done: false,
    };
    zstd::Decoder::new(decrypting).map_err(io)
}

/// Unpack the tar stream `stream` of backup `name` (read from `origin`) into `dest`; entries
/// that would land outside it are refused. Reads the stream to its end. Returns the bytes
/// written.
pub(super) fn unpack_tar(stream: impl Read, dest: &Path, name: &str, origin: &Path) -> Result<u64, BackupError> {
    let io = stream_err(name, origin);
    let mut tar = tar::Archive::new(stream);
    let mut written = 0u64;
    for entry in tar.entries().map_err(&io)? {
        let mut entry = entry.map_err(&io)?;
        let rel = entry.path().map_err(&io)?.into_owned();
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(BackupError::Corrupt {
                name: name.to_string(),
                reason: format!("archive entry {} escapes the restore folder", rel.display()),
            });
        }
        let target = dest.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => crate::platform::private_dir_all(&target).map_err(&io)?,
            // The builder writes files with holes as GNU sparse entries; reading yields the zeros.
            tar::EntryType::Regular | tar::EntryType::GNUSparse | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    crate::platform::private_dir_all(parent).map_err(&io)?;
                }
                written += write_sparse(&mut entry, &target).map_err(&io)?;
            }
            _ => {}
        }
    }
    let mut rest = tar.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(&io)?;
    Ok(written)
}

/// Write `reader` to `path`, seeking over all-zero 64 KiB blocks so they stay holes.
fn write_sparse(reader: &mut impl Read, path: &Path) -> std::io::Result<u64> {
    let file = crate::platform::private_file(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    let mut written = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = reader.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        if buf[..filled].iter().any(|b| *b != 0) {
            crate::platform::write_all_at(&file, &buf[..filled], offset)?;
            written += filled as u64;
        }
        offset += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    file.set_len(offset)?;
    file.sync_all()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) {
        let deep = root.join("qdrant/chat_messages/segments/1d7ea738-329c-42ea-bc60-408f4c0b0c18/payload_index/j9sv9j18rkmv1ava85mfh96j-message_-numeric");
        std::fs::create_dir_all(&deep).unwrap();
        let f = File::create(deep.join("tracker.dat")).unwrap();
        f.set_len(1 << 20).unwrap();
        crate::platform::write_all_at(&f, b"tracker", 0).unwrap();
        let mut big = Vec::new();
        for i in 0..40_000u32 {
            big.extend_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
        }
        std::fs::write(root.join("qdrant/data.bin"), &big).unwrap();
        std::fs::write(root.join("qdrant/empty"), b"").unwrap();
    }

    fn all_files(root: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((
                        p.strip_prefix(root).unwrap().display().to_string(),
                        std::fs::read(&p).unwrap(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn round_trip_keeps_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        tree(&src);
        let key = [5u8; 32];
        let id = uuid::Uuid::new_v4();
        let out = dir.path().join("a.cosb");
        let written = write_archive(&src, &out, &key, 1, &id, "n").unwrap();
        assert_eq!(written.sha256, sha256_file(&out).unwrap());
        let dest = dir.path().join("dest");
        std::fs::create_dir_all(&dest).unwrap();
        read_archive(&out, &dest, |_| Some(key), &id, "n").unwrap();
        let (a, b) = (all_files(&src), all_files(&dest));
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, d)| (n.clone(), d.len())).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b));
        assert!(a == b, "contents differ");
        // Another name (a swapped archive) or key fails.
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        assert!(matches!(
            read_archive(&out, &other, |_| Some(key), &id, "m"),
            Err(BackupError::Corrupt { .. })
        ));
        assert!(matches!(
            read_archive(&out, &other, |_| Some([6u8; 32]), &id, "n"),
            Err(BackupError::Corrupt { .. })
        ));
        // One flipped bit anywhere after the header fails authentication.
        let mut bytes = std::fs::read(&out).unwrap();
        let middle = HEADER_LEN + (bytes.len() - HEADER_LEN) / 2;
        bytes[middle] ^= 1;
        std::fs::write(&out, &bytes).unwrap();
        let flipped = dir.path().join("flipped");
        std::fs::create_dir_all(&flipped).unwrap();
        assert!(matches!(
            read_archive(&out, &flipped, |_| Some(key), &id, "n"),
            Err(BackupError::Corrupt { .. })
        ));
    }

    /// A collection with an immutable segment (its big file written once, a flag file) and an
    /// appendable one, each file with the given modification time.
    fn collection(root: &Path, modified: std::time::SystemTime) {
        let segments = root.join("qdrant/chat_messages/segments");
        let immutable = segments.join("a-immutable");
        let appendable = segments.join("b-appendable");
        let files: [(PathBuf, &[u8]); 6] = [
            (immutable.join("id_tracker.mappings"), b"ids"),
            (immutable.join("vector_storage/matrix.dat"), &[7u8; 5000]),
            (immutable.join("id_tracker.versions"), b"v1"),
            (appendable.join("mutable_id_tracker.mappings"), b"more ids"),
            (appendable.join("payload_storage/page_0.dat"), b"payloads"),
            (root.join("qdrant/chat_messages/wal/closed-9"), b"wal\0seed"),
        ];
        for (path, data) in files {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, data).unwrap();
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(modified)
                .unwrap();
        }
    }

    fn tar_bytes(archive: &Path, key: [u8; 32], id: &uuid::Uuid) -> Vec<u8> {
        let mut bytes = Vec::new();
        tar_stream(archive, |_| Some(key), id, "n")
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    }

    #[test]
    fn the_same_files_copied_anew_archive_to_the_same_bytes_most_stable_first() {
        let dir = tempfile::tempdir().unwrap();
        let (key, id) = ([5u8; 32], uuid::Uuid::new_v4());
        let earlier = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        collection(&dir.path().join("one"), earlier);
        collection(
            &dir.path().join("two"),
            earlier + std::time::Duration::from_secs(86_400),
        );
        for copy in ["one", "two"] {
            write_archive(
                &dir.path().join(copy),
                &dir.path().join(format!("{copy}.cosb")),
                &key,
                1,
                &id,
                "n",
            )
            .unwrap();
        }
        let one = tar_bytes(&dir.path().join("one.cosb"), key, &id);
        assert!(
            one == tar_bytes(&dir.path().join("two.cosb"), key, &id),
            "times leaked into the stream"
        );

        let mut tar = tar::Archive::new(one.as_slice());
        let files: Vec<String> = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.header().entry_type().is_file())
            .map(|e| e.path().unwrap().display().to_string())
            .collect();
        let segment = "qdrant/chat_messages/segments";
        assert_eq!(
            files,
            [
                format!("{segment}/a-immutable/id_tracker.mappings"),
                format!("{segment}/a-immutable/vector_storage/matrix.dat"),
                format!("{segment}/a-immutable/id_tracker.versions"),
                format!("{segment}/b-appendable/mutable_id_tracker.mappings"),
                format!("{segment}/b-appendable/payload_storage/page_0.dat"),
                "qdrant/chat_messages/wal/closed-9".to_string(),
            ]
        );
    }
}
