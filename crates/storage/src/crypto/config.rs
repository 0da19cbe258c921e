//! `[keys]`: where the key-encryption key comes from.

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Default environment variable holding a base64 key for the `env` key source.
pub const DEFAULT_KEY_ENV_VAR: &str = "CLOUDOPS_KEY";
/// Default environment variable holding the passphrase for the `passphrase` key source.
pub const DEFAULT_PASSPHRASE_ENV_VAR: &str = "CLOUDOPS_PASSPHRASE";
/// Where the key-encryption key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum KeySourceKind {
    /// The OS keychain (Secret Service, macOS Keychain, Windows Credential Manager).
    Keychain,
    /// A passphrase stretched with Argon2id.
    Passphrase,
    /// A 0600 key file outside the data dir.
    File,
    /// A base64 key in an environment variable (servers and CI).
    Env,
}

impl KeySourceKind {
    /// All key sources, for error messages naming alternatives.
    pub const ALL: [KeySourceKind; 4] = [
        KeySourceKind::Keychain,
        KeySourceKind::Passphrase,
        KeySourceKind::File,
        KeySourceKind::Env,
    ];

    /// The name used in config files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySourceKind::Keychain => "keychain",
            KeySourceKind::Passphrase => "passphrase",
            KeySourceKind::File => "file",
            KeySourceKind::Env => "env",
        }
    }
}

impl std::fmt::Display for KeySourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeySourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeySourceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| "expected one of keychain, passphrase, file, env".to_string())
    }
}

/// Key management settings (`[keys]`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    /// Where the key-encryption key comes from. Default: `keychain`.
    pub source: KeySourceKind,
    /// Key file for the `file` source. Default: `cloudops-storage/master.key` in the platform's config folder (`default_key_file()`),
    /// deliberately outside the data dir so a copied data dir never carries its key.
    pub file: Option<PathBuf>,
    /// Environment variable for the `env` source. Default: `CLOUDOPS_KEY`.
    pub env_var: String,
    /// Environment variable for the `passphrase` source. Default: `CLOUDOPS_PASSPHRASE`.
    pub passphrase_env_var: String,
    /// The passphrase itself, when the application read it from stdin, a file descriptor or
    /// a prompt; it then takes precedence over `passphrase_env_var`. Never read from or
    /// written to a config file.
    #[serde(skip)]
    pub passphrase: Option<Passphrase>,
}

/// A passphrase held in memory (wiped on drop, never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(zeroize::Zeroizing<String>);

impl Passphrase {
    /// Wrap a passphrase: its first line (a pipe or a file ends it with a line break).
    pub fn new(text: impl Into<String>) -> Self {
        let mut text = zeroize::Zeroizing::new(text.into());
        let first_line = text.split(['\n', '\r']).next().map_or(0, str::len);
        text.truncate(first_line);
        Passphrase(text)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(…)")
    }
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the values behind these variables are secrets and never printed.
        f.debug_struct("KeyConfig")
            .field("source", &self.source)
            .field("file", &self.file)
            .field("env_var", &self.env_var)
            .field("passphrase_env_var", &self.passphrase_env_var)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "(given)"))
            .finish()
    }
}

impl Default for KeyConfig {
    fn default() -> Self {
        KeyConfig {
            source: KeySourceKind::Keychain,
            file: None,
            env_var: DEFAULT_KEY_ENV_VAR.to_string(),
            passphrase_env_var: DEFAULT_PASSPHRASE_ENV_VAR.to_string(),
            passphrase: None,
        }
    }
}

impl KeyConfig {
    /// The key file path in effect (configured or default).
    pub fn key_file(&self) -> PathBuf {
        self.file.clone().unwrap_or_else(default_key_file)
    }
}

/// `cloudops-storage/master.key` in the platform's configuration folder: `$XDG_CONFIG_HOME` or
/// `~/.config` on Linux, `~/Library/Application Support` on macOS, `%APPDATA%` on Windows.
pub fn default_key_file() -> PathBuf {
    crate::platform::config_home()
        .join("cloudops-storage")
        .join("master.key")
}
