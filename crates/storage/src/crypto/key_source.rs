//! Key sources: where the key-encryption key (KEK) that wraps the data key comes from.
//!
//! Each source either yields a KEK or fails with [`CryptoError::KeySourceUnavailable`] naming
//! the alternatives. Nothing ever falls back to another source on its own.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::config::{KeyConfig, KeySourceKind};
use super::key_file::{self, KeyFileError};
use super::keyring::SecretKey;
use super::CryptoError;

/// Argon2id memory cost of new passphrase wraps: 64 MiB (OWASP's first recommendation).
const ARGON2_M_COST_KIB: u32 = 64 * 1024;
/// Argon2id passes of new passphrase wraps.
const ARGON2_T_COST: u32 = 3;
/// Argon2id lanes of new passphrase wraps.
const ARGON2_P_COST: u32 = 1;
const _: () = assert!(
    ARGON2_M_COST_KIB >= 64 * 1024 && ARGON2_T_COST >= 3,
    "new passphrase wraps use at least 64 MiB and 3 passes"
);
/// Bounds on stored parameters (older stores used 19 MiB and 2 passes, still accepted).
const MIN_M_COST_KIB: u32 = 8 * 1024;
const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;

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

impl KdfParams {
    /// Weaker than what a new wrap gets (an older store's 19 MiB and 2 passes).
    pub(crate) fn below_current(&self) -> bool {
        self.m_cost_kib < ARGON2_M_COST_KIB || self.t_cost < ARGON2_T_COST
    }
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

    /// The candidate KEKs of an existing store (a key file may hold several; the envelope's
    /// fingerprint picks the store's own).
    pub(crate) fn load_keks(
        &self,
        store_id: &uuid::Uuid,
        kdf: Option<&KdfParams>,
    ) -> Result<Vec<SecretKey>, CryptoError> {
        match self.kind {
            KeySourceKind::Env => {
                let value = super::secret_env::var(&self.config.env_var)
                    .ok_or_else(|| self.unavailable(format!("${} is not set", self.config.env_var)))?;
                let key = decode_key(&value).map_err(|r| self.unavailable(format!("${} {r}", self.config.env_var)))?;
                Ok(vec![key])
            }
            KeySourceKind::File => {
                let path = self.config.key_file();
                key_file::read(&path).map_err(|e| match e {
                    KeyFileError::Missing => self.unavailable(format!("key file {} does not exist", path.display())),
                    KeyFileError::Other(e) => e,
                })
            }
            KeySourceKind::Passphrase => {
                let kdf = kdf.ok_or_else(|| CryptoError::Key("passphrase-wrapped key has no KDF parameters".into()))?;
                let pass = self.current_passphrase()?;
                Ok(vec![derive_from_passphrase(&pass, kdf)?])
            }
            KeySourceKind::Keychain => Ok(vec![self.keychain_kek(store_id)?]),
        }
    }

    fn keychain_kek(&self, store_id: &uuid::Uuid) -> Result<SecretKey, CryptoError> {
        let entry = self.keychain_entry(store_id)?;
        let value = Zeroizing::new(entry.get_password().map_err(|e| self.keychain_error(e, store_id))?);
        decode_key(&value).map_err(|r| CryptoError::Key(format!("keychain entry for store {store_id} {r}")))
    }

    /// Make a new KEK. `replacing` is true when this source already holds the current KEK
    /// (rotation in place): the env and passphrase sources then read `<VAR>_NEW`.
    pub(crate) fn create_kek(&self, replacing: bool) -> Result<NewKek, CryptoError> {
        let suffix = if replacing { "_NEW" } else { "" };
        match self.kind {
            KeySourceKind::Env => {
                let var = format!("{}{suffix}", self.config.env_var);
                let value = super::secret_env::var(&var).ok_or_else(|| {
                    self.unavailable(format!(
                        "${var} is not set (generate one with `openssl rand -base64 32`)"
                    ))
                })?;
                let kek = decode_key(&value).map_err(|r| self.unavailable(format!("${var} {r}")))?;
                Ok(NewKek { kek, kdf: None })
            }
            KeySourceKind::Passphrase => {
                let pass = if replacing {
                    self.passphrase(&format!("{}_NEW", self.config.passphrase_env_var))?
                } else {
                    self.current_passphrase()?
                };
                // Only a new wrap is held to it: a store made under an older rule still opens
                // (and can rotate to a stronger passphrase).
                strong_enough(&pass).map_err(|reason| self.unavailable(reason))?;
                let mut salt = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut salt);
                let kdf = KdfParams {
                    algorithm: "argon2id".into(),
                    salt: B64.encode(salt),
                    m_cost_kib: ARGON2_M_COST_KIB,
                    t_cost: ARGON2_T_COST,
                    p_cost: ARGON2_P_COST,
                };
                let kek = derive_from_passphrase(&pass, &kdf)?;
                Ok(NewKek { kek, kdf: Some(kdf) })
            }
            KeySourceKind::File | KeySourceKind::Keychain => {
                if self.kind == KeySourceKind::File && !replacing {
                    // An existing key file is reused (one key file can serve several stores).
                    let path = self.config.key_file();
                    match key_file::read(&path) {
                        Ok(keys) => {
                            if let Some(kek) = keys.into_iter().next() {
                                return Ok(NewKek { kek, kdf: None });
                            }
                        }
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

    /// Store a new KEK in the source, where the source holds keys (file, keychain), and read
    /// it back: a key store that drops writes (a mock keychain, a full disk) fails here,
    /// before anything depends on the key.
    pub(crate) fn commit(&self, store_id: &uuid::Uuid, new: &NewKek) -> Result<(), CryptoError> {
        match self.kind {
            // Added beside the keys other stores may use; never replacing one.
            KeySourceKind::File => key_file::add(&self.config.key_file(), &new.kek),
            KeySourceKind::Keychain => {
                let entry = self.keychain_entry(store_id)?;
                let encoded = Zeroizing::new(B64.encode(new.kek.as_slice()));
                entry
                    .set_password(&encoded)
                    .map_err(|e| self.keychain_error(e, store_id))?;
                match self.keychain_kek(store_id) {
                    Ok(back) if *back == *new.kek => Ok(()),
                    Ok(_) => Err(self.unavailable(format!(
                        "the keychain returned another key for store {store_id} right after saving one"
                    ))),
                    Err(e) => Err(self.unavailable(format!(
                        "the keychain did not keep the key it was given for store {store_id} ({e})"
                    ))),
                }
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

    /// The current passphrase: the one the application handed over (read from stdin or a file
    /// descriptor), else the configured environment variable.
    fn current_passphrase(&self) -> Result<Zeroizing<String>, CryptoError> {
        match &self.config.passphrase {
            Some(given) => {
                checked_passphrase(given.expose().to_string(), "the given passphrase").map_err(|r| self.unavailable(r))
            }
            None => self.passphrase(&self.config.passphrase_env_var),
        }
    }

    fn passphrase(&self, var: &str) -> Result<Zeroizing<String>, CryptoError> {
        let pass = super::secret_env::var(var).ok_or_else(|| self.unavailable(format!("${var} is not set")))?;
        checked_passphrase(pass, &format!("${var}")).map_err(|r| self.unavailable(r))
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

fn checked_passphrase(pass: impl Into<Zeroizing<String>>, what: &str) -> Result<Zeroizing<String>, String> {
    let pass: Zeroizing<String> = pass.into();
    if pass.chars().count() < 8 {
        return Err(format!("{what} is shorter than 8 characters"));
    }
    Ok(pass)
}

/// Least zxcvbn score (0–4) of a passphrase for a new wrap: 3 is "safely unguessable" for an
/// offline attack on a slow hash (about 10^10 guesses), which Argon2id at 64 MiB makes costly.
const MIN_PASSPHRASE_SCORE: u8 = 3;

/// Refuse a passphrase a guesser would find: too short, or weak by zxcvbn's estimate (common
/// words, names, dates, keyboard patterns, repeats), saying why and what would help.
fn strong_enough(pass: &str) -> Result<(), String> {
    let estimate = zxcvbn::zxcvbn(pass, &["cloudops", "cloudops-storage", "storage", "passphrase"]);
    let score = u8::from(estimate.score());
    if score >= MIN_PASSPHRASE_SCORE {
        return Ok(());
    }
    let mut reason = format!(
        "the passphrase is too weak for a new key: about 10^{:.0} guesses (strength {score}/4, at least {MIN_PASSPHRASE_SCORE} needed)",
        estimate.guesses_log10()
    );
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            reason.push_str(&format!("; {warning}"));
        }
        for suggestion in feedback.suggestions() {
            reason.push_str(&format!("; {suggestion}"));
        }
    }
    reason.push_str("; four or more random words, or a key file or the OS keychain, are strong");
    Err(reason)
}

/// A base64 32-byte key.
pub(super) fn decode_key(value: &str) -> Result<SecretKey, String> {
    let bytes = Zeroizing::new(B64.decode(value.trim()).map_err(|_| "is not base64".to_string())?);
    if bytes.len() != 32 {
        return Err(format!("must hold 32 bytes, found {}", bytes.len()));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&bytes);
    Ok(key)
}

pub(super) fn derive_from_passphrase(pass: &str, kdf: &KdfParams) -> Result<SecretKey, CryptoError> {
    if kdf.algorithm != "argon2id" {
        return Err(CryptoError::Key(format!("unsupported KDF `{}`", kdf.algorithm)));
    }
    // Stored parameters are outside input: a huge memory cost would exhaust the machine, a
    // tiny one would make the passphrase cheap to guess.
    if !(MIN_M_COST_KIB..=MAX_M_COST_KIB).contains(&kdf.m_cost_kib)
        || !(1..=MAX_T_COST).contains(&kdf.t_cost)
        || !(1..=MAX_P_COST).contains(&kdf.p_cost)
    {
        return Err(CryptoError::Key(format!(
            "refusing stored Argon2id parameters m={} KiB, t={}, p={} (accepted: m {MIN_M_COST_KIB}..={MAX_M_COST_KIB} KiB, t 1..={MAX_T_COST}, p 1..={MAX_P_COST})",
            kdf.m_cost_kib, kdf.t_cost, kdf.p_cost
        )));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passphrases_are_refused_with_the_reason_and_strong_ones_pass() {
        for weak in [
            "password1",
            "Summer2026!",
            "qwertyuiop",
            "aaaaaaaaaaaa",
            "cloudops-storage",
        ] {
            let reason = strong_enough(weak).unwrap_err();
            assert!(reason.contains("too weak") && reason.contains("/4"), "{weak}: {reason}");
        }
        for strong in ["correct horse battery staple", "vivid-tundra-oboe-lantern-mosaic"] {
            strong_enough(strong).unwrap();
        }
    }

    #[test]
    fn decode_key_rejects_wrong_length_and_garbage() {
        assert!(decode_key(&B64.encode([1u8; 32])).is_ok());
        assert!(decode_key(&B64.encode([1u8; 16])).unwrap_err().contains("32 bytes"));
        assert!(decode_key("not base64!").is_err());
    }

    #[test]
    fn absurd_stored_argon2_parameters_are_refused_before_any_work() {
        let kdf = |m: u32, t: u32, p: u32| KdfParams {
            algorithm: "argon2id".into(),
            salt: B64.encode([1u8; 16]),
            m_cost_kib: m,
            t_cost: t,
            p_cost: p,
        };
        for (m, t, p) in [
            (u32::MAX, 3, 1),
            (8, 3, 1),
            (65_536, 0, 1),
            (65_536, 1_000_000, 1),
            (65_536, 3, 255),
        ] {
            let err = derive_from_passphrase("correct horse", &kdf(m, t, p)).unwrap_err();
            assert!(err.to_string().contains("refusing stored Argon2id"), "{err}");
        }
        // The parameters new wraps get are accepted.
        let key = derive_from_passphrase("correct horse", &kdf(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST));
        assert!(key.is_ok());
    }
}
