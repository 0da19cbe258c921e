//! The data key (DEK) and the purpose-bound subkeys derived from it with HKDF-SHA256.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// A 256-bit secret key, wiped from memory on drop.
pub(crate) type SecretKey = Zeroizing<[u8; 32]>;

/// Purposes of subkeys: each gets its own key so one use can never be confused with another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Sealing message, conversation and resource fields.
    Content,
    /// Keyed hashes of keyword tokens and index tokens.
    KeywordIndex,
    /// The secret rotation protecting dense vectors.
    VectorProtection,
    /// Encrypting backup archives.
    Backup,
    /// Authenticating backup manifests.
    BackupManifest,
    /// Naming backup chunks by a keyed hash of their content.
    BackupChunkId,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::Content => b"cloudops-storage/v1/content",
            Purpose::KeywordIndex => b"cloudops-storage/v1/keyword-index",
            Purpose::VectorProtection => b"cloudops-storage/v1/vector-protection",
            Purpose::Backup => b"cloudops-storage/v1/backup",
            Purpose::BackupManifest => b"cloudops-storage/v1/backup-manifest",
            Purpose::BackupChunkId => b"cloudops-storage/v1/backup-chunk-id",
        }
    }
}

/// One data key with its id, from which subkeys are derived.
pub(crate) struct DataKey {
    pub(crate) key_id: u32,
    secret: SecretKey,
    salt: Vec<u8>,
}

impl DataKey {
    pub(crate) fn new(key_id: u32, secret: SecretKey, store_id: &uuid::Uuid) -> Self {
        DataKey {
            key_id,
            secret,
            salt: store_id.as_bytes().to_vec(),
        }
    }

    /// The raw data key, for re-wrapping only.
    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// Derive the subkey for `purpose` (salt = store id, info = purpose label).
    pub(crate) fn subkey(&self, purpose: Purpose) -> SecretKey {
        let hk = Hkdf::<Sha256>::new(Some(&self.salt), self.secret.as_slice());
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
        if hk.expand(purpose.info(), out.as_mut_slice()).is_err() {
            unreachable!("HKDF expand of 32 bytes cannot fail");
        }
        out
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_differ_by_purpose_and_store() {
        let secret = Zeroizing::new([7u8; 32]);
        let a = DataKey::new(1, secret.clone(), &uuid::Uuid::from_u128(1));
        let b = DataKey::new(1, secret, &uuid::Uuid::from_u128(2));
        assert_ne!(*a.subkey(Purpose::Content), *a.subkey(Purpose::KeywordIndex));
        assert_ne!(*a.subkey(Purpose::Content), *b.subkey(Purpose::Content));
        assert_eq!(*a.subkey(Purpose::Backup), *a.subkey(Purpose::Backup));
    }
}
