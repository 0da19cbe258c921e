//! Content-defined chunks of a backup: cut with FastCDC, named by a keyed hash of their
//! content, compressed and encrypted one by one.
//!
//! A chunk's name is `HMAC-SHA256(chunk-id subkey, plaintext)` in hex: equal chunks of any
//! backup of the store get the same name and are stored once, and the bucket learns nothing
//! from the names (it cannot hash a guessed plaintext without the key). A sealed chunk is
//! `"COSK" ‖ format (1) ‖ key_id (u32 BE) ‖ nonce (12) ‖ AES-256-GCM(zstd(plaintext))` with
//! the header, the store id and the chunk's name as associated data, so a chunk renamed,
//! moved to another store or altered fails to open; opening also recomputes the name.
//!
//! An index (the list of a backup's chunks) is sealed the same way under `"COSI"`, bound to
//! the store id and the backup's name; a shipment of the journal under `"COSJ"`, bound to the
//! store id and its object key (which names its generation and records).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::BackupError;
use crate::crypto::BackupKeys;

/// Smallest chunk FastCDC cuts (bytes of the tar stream).
pub(super) const MIN_CHUNK: u32 = 64 * 1024;
/// Average chunk.
pub(super) const AVG_CHUNK: u32 = 256 * 1024;
/// Largest chunk.
pub(super) const MAX_CHUNK: u32 = 1024 * 1024;

const CHUNK_MAGIC: &[u8; 4] = b"COSK";
const INDEX_MAGIC: &[u8; 4] = b"COSI";
const JOURNAL_MAGIC: &[u8; 4] = b"COSJ";
const FORMAT: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 4;
const NONCE_LEN: usize = 12;
/// Largest index accepted (a million chunks of about 80 bytes of JSON each).
pub(super) const MAX_INDEX_PLAIN: usize = 256 * 1024 * 1024;

/// The keys of one data key that chunk and name a backup.
pub(super) struct ChunkKeys {
    key_id: u32,
    cipher: Aes256Gcm,
    id_key: [u8; 32],
}

impl ChunkKeys {
    /// The keys of the store's active data key.
    pub(super) fn active(keys: &BackupKeys) -> Result<Self, BackupError> {
        Self::of(keys, keys.active_key_id)
    }

    /// The keys of data key `key_id`.
    pub(super) fn of(keys: &BackupKeys, key_id: u32) -> Result<Self, BackupError> {
        let unknown = || BackupError::UnknownKey { key_id };
        let key = keys.key(key_id).ok_or_else(unknown)?;
        let id_key = keys.chunk_id_key(key_id).ok_or_else(unknown)?;
        Ok(ChunkKeys {
            key_id,
            cipher: Aes256Gcm::new((&key).into()),
            id_key,
        })
    }

    /// The data key these keys derive from.
    pub(super) fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The chunk's name: hex of its keyed hash.
    pub(super) fn chunk_id(&self, plain: &[u8]) -> String {
        hex(&self.mac(plain).finalize().into_bytes())
    }

    fn mac(&self, plain: &[u8]) -> Hmac<Sha256> {
        // A 32-byte key is always a valid HMAC key.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.id_key).unwrap_or_else(|_| unreachable!());
        mac.update(plain);
        mac
    }

    /// Compress and encrypt a chunk named `id`.
    pub(super) fn seal_chunk(&self, store_id: &uuid::Uuid, id: &str, plain: &[u8]) -> Result<Vec<u8>, BackupError> {
        self.seal(CHUNK_MAGIC, &[store_id.as_bytes(), id.as_bytes()], plain)
    }

    /// Decrypt and decompress the chunk named `id`, and check the name is its content's.
    pub(super) fn open_chunk(
        keys: &BackupKeys,
        store_id: &uuid::Uuid,
        id: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, String> {
        let (this, plain) = Self::open(
            keys,
            CHUNK_MAGIC,
            &[store_id.as_bytes(), id.as_bytes()],
            sealed,
            MAX_CHUNK as usize,
        )?;
        let expected = unhex(id).ok_or("the chunk's name is not a hash")?;
        this.mac(&plain)
            .verify_slice(&expected)
            .map_err(|_| "the chunk's content does not match its name".to_string())?;
        Ok(plain)
    }

    /// Compress and encrypt the index of backup `name`.
    pub(super) fn seal_index(&self, store_id: &uuid::Uuid, name: &str, plain: &[u8]) -> Result<Vec<u8>, BackupError> {
        self.seal(INDEX_MAGIC, &[store_id.as_bytes(), name.as_bytes()], plain)
    }

    /// Decrypt and decompress the index of backup `name`.
    pub(super) fn open_index(
        keys: &BackupKeys,
        store_id: &uuid::Uuid,
        name: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, String> {
        Self::open(
            keys,
            INDEX_MAGIC,
            &[store_id.as_bytes(), name.as_bytes()],
            sealed,
            MAX_INDEX_PLAIN,
        )
        .map(|(_, p)| p)
    }

    /// Compress and encrypt a shipment of the journal stored under `key`.
    pub(super) fn seal_journal(&self, store_id: &uuid::Uuid, key: &str, plain: &[u8]) -> Result<Vec<u8>, BackupError> {
        self.seal(JOURNAL_MAGIC, &[store_id.as_bytes(), key.as_bytes()], plain)
    }

    /// Decrypt and decompress the shipment of the journal stored under `key`.
    pub(super) fn open_journal(
        keys: &BackupKeys,
        store_id: &uuid::Uuid,
        key: &str,
        sealed: &[u8],
        max_plain: usize,
    ) -> Result<Vec<u8>, String> {
        Self::open(
            keys,
            JOURNAL_MAGIC,
            &[store_id.as_bytes(), key.as_bytes()],
            sealed,
            max_plain,
        )
        .map(|(_, p)| p)
    }

    /// The data key a sealed object names in its header (not authenticated until opened).
    pub(super) fn sealed_key_id(sealed: &[u8]) -> Option<u32> {
        (sealed.len() >= HEADER_LEN).then(|| u32::from_be_bytes([sealed[5], sealed[6], sealed[7], sealed[8]]))
    }

    fn seal(&self, magic: &[u8; 4], bound: &[&[u8]], plain: &[u8]) -> Result<Vec<u8>, BackupError> {
        let compressed = zstd::bulk::compress(plain, 3).map_err(|e| BackupError::Corrupt {
            name: "chunk".into(),
            reason: format!("compression failed: {e}"),
        })?;
        let mut header = Vec::with_capacity(HEADER_LEN + NONCE_LEN);
        header.extend_from_slice(magic);
        header.push(FORMAT);
        header.extend_from_slice(&self.key_id.to_be_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = associated(&header, bound);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &compressed,
                    aad: &aad,
                },
            )
            .map_err(|_| BackupError::Corrupt {
                name: "chunk".into(),
                reason: "encryption failed".into(),
            })?;
        header.extend_from_slice(&nonce);
        header.extend_from_slice(&ct);
        Ok(header)
    }

    fn open(
        keys: &BackupKeys,
        magic: &[u8; 4],
        bound: &[&[u8]],
        sealed: &[u8],
        max_plain: usize,
    ) -> Result<(Self, Vec<u8>), String> {
        if sealed.len() < HEADER_LEN + NONCE_LEN || &sealed[..4] != magic || sealed[4] != FORMAT {
            return Err("not a sealed object of a known format".into());
        }
        let key_id = u32::from_be_bytes([sealed[5], sealed[6], sealed[7], sealed[8]]);
        let this = Self::of(keys, key_id).map_err(|e| e.to_string())?;
        let nonce = &sealed[HEADER_LEN..HEADER_LEN + NONCE_LEN];
        let aad = associated(&sealed[..HEADER_LEN], bound);
        let compressed = this
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &sealed[HEADER_LEN + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| "failed authentication (altered, moved, or another key)".to_string())?;
        let plain = zstd::bulk::decompress(&compressed, max_plain).map_err(|e| format!("does not decompress: {e}"))?;
        Ok((this, plain))
    }
}

fn associated(header: &[u8], bound: &[&[u8]]) -> Vec<u8> {
    let mut aad = header.to_vec();
    for part in bound {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

/// Lower-case hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Cut `reader` into content-defined chunks, calling `each` with every chunk in order.
pub(super) fn for_each_chunk(
    reader: impl std::io::Read,
    mut each: impl FnMut(&[u8]) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    for chunk in fastcdc::v2020::StreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
        let chunk = chunk.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(source) if source.kind() != std::io::ErrorKind::InvalidData => {
                BackupError::Io {
                    path: "backup stream".into(),
                    source,
                }
            }
            other => BackupError::Corrupt {
                name: "backup stream".into(),
                reason: other.to_string(),
            },
        })?;
        each(&chunk.data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn chunks_round_trip_and_names_are_keyed() {
        let keys = crate::crypto::test_backup_keys();
        let store = uuid::Uuid::new_v4();
        let ck = ChunkKeys::active(&keys).unwrap();
        let plain = data(100_000, 7);
        let id = ck.chunk_id(&plain);
        assert_eq!(id.len(), 64);
        // Not the plain SHA-256: the bucket cannot confirm a guessed content.
        use sha2::Digest as _;
        assert_ne!(id, hex(&Sha256::digest(&plain)));
        let sealed = ck.seal_chunk(&store, &id, &plain).unwrap();
        assert_eq!(ChunkKeys::open_chunk(&keys, &store, &id, &sealed).unwrap(), plain);
        // Another name, another store, one flipped bit: refused.
        let other = ck.chunk_id(b"other");
        assert!(ChunkKeys::open_chunk(&keys, &store, &other, &sealed).is_err());
        assert!(ChunkKeys::open_chunk(&keys, &uuid::Uuid::new_v4(), &id, &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(ChunkKeys::open_chunk(&keys, &store, &id, &tampered).is_err());
        assert!(ChunkKeys::open_chunk(&keys, &store, &id, b"COSK").is_err());
    }

    #[test]
    fn indexes_are_bound_to_their_backup() {
        let keys = crate::crypto::test_backup_keys();
        let store = uuid::Uuid::new_v4();
        let ck = ChunkKeys::active(&keys).unwrap();
        let sealed = ck.seal_index(&store, "b1", b"[]").unwrap();
        assert_eq!(ChunkKeys::open_index(&keys, &store, "b1", &sealed).unwrap(), b"[]");
        assert!(ChunkKeys::open_index(&keys, &store, "b2", &sealed).is_err());
        // A chunk is not an index.
        let id = ck.chunk_id(b"[]");
        let chunk = ck.seal_chunk(&store, &id, b"[]").unwrap();
        assert!(ChunkKeys::open_index(&keys, &store, "b1", &chunk).is_err());
    }

    #[test]
    fn an_insert_changes_only_the_chunks_around_it() {
        let keys = crate::crypto::test_backup_keys();
        let ck = ChunkKeys::active(&keys).unwrap();
        let ids = |bytes: &[u8]| {
            let mut out = Vec::new();
            for_each_chunk(bytes, |c| {
                out.push(ck.chunk_id(c));
                Ok(())
            })
            .unwrap();
            out
        };
        let original = data(8 << 20, 3);
        let mut edited = original.clone();
        edited.splice(3 << 20..3 << 20, b"an inserted message".iter().copied());
        let (a, b) = (ids(&original), ids(&edited));
        assert!(a.len() > 8, "{} chunks", a.len());
        let shared = b.iter().filter(|id| a.contains(id)).count();
        assert!(
            shared + 3 >= a.len(),
            "{shared} of {} chunks shared after one insert",
            a.len()
        );
    }
}
