//! Key sources: where the key-encryption key (KEK) that wraps the data key comes from.
//!
//! Each source either yields a KEK or fails with [`CryptoError::KeySourceUnavailable`] naming
//! the alternatives. Nothing ever falls back to another source on its own.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::config::{KeyConfig, KeySourceKind};
use super::keyring::SecretKey;
use super::CryptoError;

/// Keychain service name under which KEKs are stored (account = store id).
pub(crate) const KEYCHAIN_SERVICE: &str = "cloudops-storage";

/// Argon2id parameters for the passphrase source, stored beside the wrapped key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KdfParams {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Base64 salt (16 bytes).
    pub salt: String,
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Parallelism.
    pub p_cost: u32,
}

/// A freshly made KEK, not yet committed to its source.
pub(crate) struct NewKek {
    pub(crate) kek: SecretKey,
    pub(crate) kdf: Option<KdfParams>,
}

/// One configured key source.
pub(crate) struct KeySource {
    kind: KeySourceKind,
    config: KeyConfig,
}

impl KeySource {
    pub(crate) fn new(config: &KeyConfig) -> Self {
        KeySource {
            kind: config.source,
            config: config.clone(),
        }
    }

    pub(crate) fn kind(&self) -> KeySourceKind {
        self.kind
    }

    /// Where the key lives, for `keys status` (never the key itself).
    pub(crate) fn location(&self, store_id: &uuid::Uuid) -> String {
        match self.kind {
            KeySourceKind::Keychain => {
                format!("OS keychain, service `{KEYCHAIN_SERVICE}`, account `{store_id}`")
            }
            KeySourceKind::Passphrase => {
                format!("passphrase from ${}", self.config.passphrase_env_var)
            }
            KeySourceKind::File => format!("key file {}", self.config.key_file().display()),
            KeySourceKind::Env => format!("environment variable ${}", self.config.env_var),
        }
    }

    fn unavailable(&self, reason: impl Into<String>) -> CryptoError {
        CryptoError::KeySourceUnavailable {
            source_kind: self.kind,
            reason: reason.into(),
            alternatives: alternatives(self.kind, &self.config),
        }
    }

    /// The KEK of an existing store.
    pub(crate) fn load_kek(&self, store_id: &uuid::Uuid, kdf: Option<&KdfParams>) -> Result<SecretKey, CryptoError> {
        match self.kind {
            KeySourceKind::Env => {
                let value = std::env::var(&self.config.env_var)
                    .map_err(|_| self.unavailable(format!("${} is not set", self.config.env_var)))?;
                decode_key(&value).map_err(|r| self.unavailable(format!("${} {r}", self.config.env_var)))
            }
            KeySourceKind::File => {
                let path = self.config.key_file();
                read_key_file(&path).map_err(|e| match e {
                    KeyFileError::Missing => self.unavailable(format!("key file {} does not exist", path.display())),
                    KeyFileError::Other(e) => e,
                })
            }
            KeySourceKind::Passphrase => {
                let kdf = kdf.ok_or_else(|| CryptoError::Key("passphrase-wrapped key has no KDF parameters".into()))?;
                let pass = self.passphrase(&self.config.passphrase_env_var)?;
                derive_from_passphrase(&pass, kdf)
            }
            KeySourceKind::Keychain => {
                let entry = self.keychain_entry(store_id)?;
                let value = entry.get_password().map_err(|e| self.keychain_error(e, store_id))?;
                decode_key(&value).map_err(|r| CryptoError::Key(format!("keychain entry for store {store_id} {r}")))
            }
        }
    }

    /// Make a new KEK. `replacing` is true when this source already holds the current KEK
    /// (rotation in place): the env and passphrase sources then read `<VAR>_NEW`.
    pub(crate) fn create_kek(&self, replacing: bool) -> Result<NewKek, CryptoError> {
        let suffix = if replacing { "_NEW" } else { "" };
        match self.kind {
            KeySourceKind::Env => {
                let var = format!("{}{suffix}", self.config.env_var);
                let value = std::env::var(&var).map_err(|_| {
                    self.unavailable(format!(
                        "${var} is not set (generate one with `openssl rand -base64 32`)"
                    ))
                })?;
                let kek = decode_key(&value).map_err(|r| self.unavailable(format!("${var} {r}")))?;
                Ok(NewKek { kek, kdf: None })
            }
            KeySourceKind::Passphrase => {
                let var = format!("{}{suffix}", self.config.passphrase_env_var);
                let pass = self.passphrase(&var)?;
                let mut salt = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut salt);
                let defaults = argon2::Params::default();
                let kdf = KdfParams {
                    algorithm: "argon2id".into(),
                    salt: B64.encode(salt),
                    m_cost_kib: defaults.m_cost(),
                    t_cost: defaults.t_cost(),
                    p_cost: defaults.p_cost(),
                };
                let kek = derive_from_passphrase(&pass, &kdf)?;
                Ok(NewKek { kek, kdf: Some(kdf) })
            }
            KeySourceKind::File | KeySourceKind::Keychain => {
                if self.kind == KeySourceKind::File && !replacing {
                    // An existing key file is reused (one key file can serve several stores).
                    let path = self.config.key_file();
                    match read_key_file(&path) {
                        Ok(kek) => return Ok(NewKek { kek, kdf: None }),
                        Err(KeyFileError::Missing) => {}
                        Err(KeyFileError::Other(e)) => return Err(e),
                    }
                }
                let mut kek = Zeroizing::new([0u8; 32]);
                rand::thread_rng().fill_bytes(kek.as_mut_slice());
                Ok(NewKek { kek, kdf: None })
            }
        }
    }

    /// Store a new KEK in the source, where the source holds keys (file, keychain).
    pub(crate) fn commit(&self, store_id: &uuid::Uuid, new: &NewKek) -> Result<(), CryptoError> {
        match self.kind {
            KeySourceKind::File => write_key_file(&self.config.key_file(), &new.kek),
            KeySourceKind::Keychain => {
                let entry = self.keychain_entry(store_id)?;
                let encoded = Zeroizing::new(B64.encode(new.kek.as_slice()));
                entry
                    .set_password(&encoded)
                    .map_err(|e| self.keychain_error(e, store_id))
            }
            KeySourceKind::Env | KeySourceKind::Passphrase => Ok(()),
        }
    }

    /// Check that the source can be reached at all, before a store is created with it.
    pub(crate) fn probe(&self, store_id: &uuid::Uuid) -> Result<(), CryptoError> {
        if self.kind == KeySourceKind::Keychain {
            let entry = self.keychain_entry(store_id)?;
            match entry.get_password() {
                Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(self.keychain_error(e, store_id)),
            }
        } else {
            Ok(())
        }
    }

    fn passphrase(&self, var: &str) -> Result<Zeroizing<String>, CryptoError> {
        let pass = std::env::var(var).map_err(|_| self.unavailable(format!("${var} is not set")))?;
        if pass.chars().count() < 8 {
            return Err(self.unavailable(format!("${var} is shorter than 8 characters")));
        }
        Ok(Zeroizing::new(pass))
    }

    fn keychain_entry(&self, store_id: &uuid::Uuid) -> Result<keyring::Entry, CryptoError> {
        keyring::Entry::new(KEYCHAIN_SERVICE, &store_id.to_string()).map_err(|e| self.unavailable(e.to_string()))
    }

    fn keychain_error(&self, err: keyring::Error, store_id: &uuid::Uuid) -> CryptoError {
        match err {
            keyring::Error::NoEntry => self.unavailable(format!("the keychain holds no key for store {store_id}")),
            other => self.unavailable(format!("no usable OS keychain ({other})")),
        }
    }
}

fn alternatives(kind: KeySourceKind, config: &KeyConfig) -> String {
    KeySourceKind::ALL
        .into_iter()
        .filter(|k| *k != kind)
        .map(|k| match k {
            KeySourceKind::Keychain => {
                "`--key-source keychain` (OS keychain; needs a Secret Service on Linux)".to_string()
            }
            KeySourceKind::Passphrase => format!("`--key-source passphrase` (set ${})", config.passphrase_env_var),
            KeySourceKind::File => format!(
                "`--key-source file` (0600 key file, default {})",
                config.key_file().display()
            ),
            KeySourceKind::Env => format!("`--key-source env` (base64 32-byte key in ${})", config.env_var),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn decode_key(value: &str) -> Result<SecretKey, String> {
    let bytes = Zeroizing::new(B64.decode(value.trim()).map_err(|_| "is not base64".to_string())?);
    if bytes.len() != 32 {
        return Err(format!("must hold 32 bytes, found {}", bytes.len()));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&bytes);
    Ok(key)
}

fn derive_from_passphrase(pass: &str, kdf: &KdfParams) -> Result<SecretKey, CryptoError> {
    if kdf.algorithm != "argon2id" {
        return Err(CryptoError::Key(format!("unsupported KDF `{}`", kdf.algorithm)));
    }
    let salt = B64
        .decode(&kdf.salt)
        .map_err(|_| CryptoError::Key("KDF salt is not base64".into()))?;
    let params = argon2::Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(32))
        .map_err(|e| CryptoError::Key(format!("invalid Argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(pass.as_bytes(), &salt, key.as_mut_slice())
        .map_err(|e| CryptoError::Key(format!("Argon2id failed: {e}")))?;
    Ok(key)
}

enum KeyFileError {
    Missing,
    Other(CryptoError),
}

fn read_key_file(path: &Path) -> Result<SecretKey, KeyFileError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(KeyFileError::Missing),
        Err(e) => {
            return Err(KeyFileError::Other(CryptoError::Key(format!(
                "cannot read key file {}: {e}",
                path.display()
            ))))
        }
    };
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Other(CryptoError::InsecureKeyFile {
            path: path.display().to_string(),
            mode,
        }));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        KeyFileError::Other(CryptoError::Key(format!(
            "cannot read key file {}: {e}",
            path.display()
        )))
    })?);
    decode_key(&text).map_err(|r| KeyFileError::Other(CryptoError::Key(format!("key file {} {r}", path.display()))))
}

/// Write a key file atomically with mode 0600 (parent created 0700).
fn write_key_file(path: &Path, key: &SecretKey) -> Result<(), CryptoError> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let err =
        |what: &str, e: std::io::Error| CryptoError::Key(format!("cannot {what} key file {}: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| err("create the folder of", e))?;
    }
    let tmp: PathBuf = path.with_extension("key.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err("write", e))?;
    let encoded = Zeroizing::new(B64.encode(key.as_slice()));
    file.write_all(encoded.as_bytes()).map_err(|e| err("write", e))?;
    file.write_all(b"\n").map_err(|e| err("write", e))?;
    file.sync_all().map_err(|e| err("sync", e))?;
    std::fs::rename(&tmp, path).map_err(|e| err("install", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_key_rejects_wrong_length_and_garbage() {
        assert!(decode_key(&B64.encode([1u8; 32])).is_ok());
        assert!(decode_key(&B64.encode([1u8; 16])).unwrap_err().contains("32 bytes"));
        assert!(decode_key("not base64!").is_err());
    }

    #[test]
    fn key_file_round_trip_and_permission_check() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let key = Zeroizing::new([3u8; 32]);
        write_key_file(&path, &key).unwrap();
        assert_eq!(*read_key_file(&path).ok().unwrap(), [3u8; 32]);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_key_file(&path),
            Err(KeyFileError::Other(CryptoError::InsecureKeyFile { .. }))
        ));
    }
}
