//! The recovery key: a second way to unwrap the data keys, kept on paper or in a password
//! manager, so that a backup can be restored on a machine that has neither `keys.json` nor
//! the KEK (as 1Password's emergency kit or BitLocker's recovery key).
//!
//! 256 random bits plus a 16-bit checksum, written in Crockford base32 as eleven groups of
//! five characters. The checksum catches a mistyped key before any unwrapping; letters a
//! person confuses (`O`/`0`, `I`/`L`/`1`) read as the same digit. The key itself is never
//! stored: the envelope keeps only data keys wrapped under a KEK derived from it with HKDF
//! (the key has full entropy, so no slow KDF is needed).

use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::keyring::SecretKey;
use super::CryptoError;

const SECRET_BYTES: usize = 32;
const CHECK_BYTES: usize = 2;
const ENCODED_CHARS: usize = ((SECRET_BYTES + CHECK_BYTES) * 8).div_ceil(5);
const GROUP: usize = 5;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A store's recovery key. Never printed by `Debug`; [`RecoveryKey::reveal`] is the one way
/// to see it, for the moment it is handed to its owner.
#[derive(Clone)]
pub struct RecoveryKey {
    secret: SecretKey,
}

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey(…)")
    }
}

impl PartialEq for RecoveryKey {
    fn eq(&self, other: &Self) -> bool {
        // Not a secret-dependent branch an attacker can time from outside: both are local.
        *self.secret == *other.secret
    }
}

impl Eq for RecoveryKey {}

impl RecoveryKey {
    /// A new random recovery key.
    pub(crate) fn generate() -> Self {
        let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
        rand::thread_rng().fill_bytes(secret.as_mut_slice());
        RecoveryKey { secret }
    }

    /// Read a recovery key as a person typed or pasted it: groups separated by dashes or
    /// spaces, any case, `O` for `0` and `I`/`L` for `1` accepted. A whole kit document
    /// ([`RecoveryKit::document`]) reads as the key on its `recovery key` line.
    ///
    /// # Errors
    /// [`CryptoError::BadRecoveryKey`] when it has the wrong length, a character outside the
    /// alphabet, or fails its checksum (a typo).
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let text = text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("recovery key"))
            .unwrap_or(text);
        let bad = |reason: String| CryptoError::BadRecoveryKey { reason };
        let mut digits = Zeroizing::new(Vec::with_capacity(ENCODED_CHARS));
        for c in text.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            let d = digit(c).ok_or_else(|| bad(format!("{c:?} is not a character of a recovery key")))?;
            digits.push(d);
        }
        if digits.len() != ENCODED_CHARS {
            return Err(bad(format!(
                "it has {} characters, a recovery key has {ENCODED_CHARS} (11 groups of 5)",
                digits.len()
            )));
        }
        let bytes = Zeroizing::new(from_base32(&digits));
        let (secret_bytes, check) = bytes.split_at(SECRET_BYTES);
        if check != checksum(secret_bytes) {
            return Err(bad("it fails its checksum: a character was mistyped".into()));
        }
        let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
        secret.copy_from_slice(secret_bytes);
        Ok(RecoveryKey { secret })
    }

    /// The key as its owner writes it down: eleven groups of five characters.
    pub fn reveal(&self) -> String {
        let mut bytes = Zeroizing::new(self.secret.to_vec());
        bytes.extend_from_slice(&checksum(self.secret.as_slice()));
        let chars = Zeroizing::new(to_base32(&bytes));
        chars
            .chunks(GROUP)
            .map(|g| g.iter().map(|&c| c as char).collect::<String>())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The KEK this key yields for store `store_id`.
    pub(crate) fn kek(&self, store_id: &uuid::Uuid) -> SecretKey {
        let hk = Hkdf::<Sha256>::new(Some(store_id.as_bytes()), self.secret.as_slice());
        let mut out = Zeroizing::new([0u8; 32]);
        if hk
            .expand(b"cloudops-storage/recovery-kek/v1", out.as_mut_slice())
            .is_err()
        {
            unreachable!("HKDF expand of 32 bytes cannot fail");
        }
        out
    }
}

impl RecoveryKey {
    /// The X25519 secret this key yields for store `store_id`: its public half, kept in the
    /// envelope, lets the store wrap a data key made later for this kit without holding it.
    pub(crate) fn agreement_secret(&self, store_id: &uuid::Uuid) -> x25519_dalek::StaticSecret {
        let hk = Hkdf::<Sha256>::new(Some(store_id.as_bytes()), self.secret.as_slice());
        let mut out = Zeroizing::new([0u8; 32]);
        if hk
            .expand(b"cloudops-storage/recovery-x25519/v2", out.as_mut_slice())
            .is_err()
        {
            unreachable!("HKDF expand of 32 bytes cannot fail");
        }
        x25519_dalek::StaticSecret::from(*out)
    }
}

impl std::str::FromStr for RecoveryKey {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecoveryKey::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for RecoveryKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        RecoveryKey::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A recovery kit: the recovery key of one store, handed to its owner once. `Serialize`
/// writes the key in clear (for `--json` output the owner asked for); keep it out of logs.
#[derive(Debug, Clone)]
pub struct RecoveryKit {
    /// The store it opens.
    pub store_id: uuid::Uuid,
    /// When it was issued (unix ms); kits issued later replace it for later backups.
    pub created_at_ms: i64,
    /// The key.
    pub key: RecoveryKey,
}

impl RecoveryKit {
    /// The kit as a page to print or store in a password manager.
    pub fn document(&self) -> String {
        format!(
            "cloudops-storage recovery kit\n\
             \n\
             store id      {}\n\
             issued        {} UTC\n\
             recovery key  {}\n\
             \n\
             With this key and the backup bucket, the store can be restored on a new machine:\n\
             \n\
             \x20   cloudops-storage --data-dir NEW_DIR backup restore --from-s3 --recovery-key-file THIS_FILE\n\
             \n\
             Keep it offline or in a password manager, away from this machine and the bucket.\n\
             Anyone holding it and the bucket can read every backup taken while it is the\n\
             store's kit. Issuing a new kit (`keys recovery-kit`) starts a new data key: this\n\
             kit opens nothing written after that; backups taken before still open with it.\n",
            self.store_id,
            crate::clock::format_utc(self.created_at_ms),
            self.key.reveal()
        )
    }
}

impl serde::Serialize for RecoveryKit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("RecoveryKit", 3)?;
        st.serialize_field("store_id", &self.store_id)?;
        st.serialize_field("created_at_ms", &self.created_at_ms)?;
        st.serialize_field("recovery_key", &*Zeroizing::new(self.key.reveal()))?;
        st.end()
    }
}

fn checksum(secret: &[u8]) -> [u8; CHECK_BYTES] {
    let digest = Sha256::new()
        .chain_update(b"cloudops-storage/recovery-check/v1")
        .chain_update(secret)
        .finalize();
    [digest[0], digest[1]]
}

fn digit(c: char) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    ALPHABET.iter().position(|&a| a as char == c).map(|p| p as u8)
}

/// Base32 digits (values 0..32) of `bytes`, most significant bit first, zero-padded.
fn to_base32(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENCODED_CHARS);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize]);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize]);
    }
    out
}

/// The bytes of `ENCODED_CHARS` base32 digit values (the trailing pad bits are dropped).
fn from_base32(digits: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SECRET_BYTES + CHECK_BYTES);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &d in digits {
        acc = (acc << 5) | u32::from(d);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    out.truncate(SECRET_BYTES + CHECK_BYTES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revealed_key_reads_back_in_any_case_and_with_confusable_letters() {
        let key = RecoveryKey::generate();
        let text = key.reveal();
        assert_eq!(text.len(), 11 * 5 + 10, "{text}");
        assert_eq!(RecoveryKey::parse(&text).unwrap(), key);
        assert_eq!(RecoveryKey::parse(&text.to_lowercase()).unwrap(), key);
        let spaced = text.replace('-', " ").replace('0', "o").replace('1', "I");
        assert_eq!(RecoveryKey::parse(&spaced).unwrap(), key);
        assert_ne!(RecoveryKey::generate(), key);
    }

    #[test]
    fn a_mistyped_key_is_caught_by_its_checksum() {
        let text = RecoveryKey::generate().reveal();
        let mut chars: Vec<char> = text.chars().collect();
        // Change one character of the secret part to another digit of the alphabet.
        chars[7] = if chars[7] == '7' { '8' } else { '7' };
        let typo: String = chars.into_iter().collect();
        let err = RecoveryKey::parse(&typo).unwrap_err();
        assert!(err.to_string().contains("mistyped"), "{err}");
        let short = RecoveryKey::parse(&text[..text.len() - 2]).unwrap_err();
        assert!(short.to_string().contains("55"), "{short}");
        let alien = RecoveryKey::parse(&text.replace(text.chars().next().unwrap(), "U")).unwrap_err();
        assert!(alien.to_string().contains("'U'"), "{alien}");
    }

    #[test]
    fn a_kit_document_reads_back_as_its_key() {
        let kit = RecoveryKit {
            store_id: uuid::Uuid::from_u128(7),
            created_at_ms: 1_700_000_000_000,
            key: RecoveryKey::generate(),
        };
        let doc = kit.document();
        assert!(doc.contains("2023-11-14 22:13:20 UTC"), "{doc}");
        assert_eq!(RecoveryKey::parse(&doc).unwrap(), kit.key);
        assert_eq!(RecoveryKey::parse(&format!("{}\n", kit.key.reveal())).unwrap(), kit.key);
        let json = serde_json::to_value(&kit).unwrap();
        assert_eq!(json["recovery_key"], kit.key.reveal());
    }

    #[test]
    fn the_kek_depends_on_key_and_store() {
        let key = RecoveryKey::generate();
        let (a, b) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        assert_eq!(*key.kek(&a), *key.kek(&a));
        assert_ne!(*key.kek(&a), *key.kek(&b));
        assert_ne!(*key.kek(&a), *RecoveryKey::generate().kek(&a));
        assert!(!format!("{key:?}").contains(&key.reveal()[..5]));
    }
}
