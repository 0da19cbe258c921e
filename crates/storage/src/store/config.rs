//! `[store]`: engine settings.

use serde::{Deserialize, Serialize};

/// Where the collections live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreMode {
    /// qdrant-edge inside this process, files under the data dir (the default).
    #[default]
    Embedded,
    /// A Qdrant server or cluster over gRPC (`store.url`).
    Remote,
}

impl StoreMode {
    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreMode::Embedded => "embedded",
            StoreMode::Remote => "remote",
        }
    }
}

impl std::fmt::Display for StoreMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StoreMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "embedded" => Ok(StoreMode::Embedded),
            "remote" => Ok(StoreMode::Remote),
            other => Err(format!("`{other}` is not a store mode: use embedded or remote")),
        }
    }
}

/// When an acknowledged write reaches stable storage (embedded store).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreSync {
    /// At the next checkpoint (every 8 MiB of journal, on `flush` and on shutdown). An
    /// acknowledged write survives a killed process, not a power loss before that checkpoint.
    /// The default: no `fsync` on the write path.
    #[default]
    Checkpoint,
    /// Before the write is acknowledged: the journal is `fsync`ed, one `fsync` covering every
    /// write that arrived while the previous one ran (group commit). Survives a power loss.
    Always,
}

impl StoreSync {
    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreSync::Checkpoint => "checkpoint",
            StoreSync::Always => "always",
        }
    }
}

impl std::fmt::Display for StoreSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StoreSync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "checkpoint" => Ok(StoreSync::Checkpoint),
            "always" => Ok(StoreSync::Always),
            other => Err(format!("`{other}` is not a sync setting: use checkpoint or always")),
        }
    }
}

/// Default environment variable holding the Qdrant API key.
pub(crate) const DEFAULT_API_KEY_ENV: &str = "CLOUDOPS_STORE_API_KEY";
/// Default prefix of every collection name on a server.
pub(crate) const DEFAULT_COLLECTION_PREFIX: &str = "cloudops_";

/// Store settings (`[store]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Free space kept on the data dir's file system; writes are refused below it.
    /// Default: 64 MiB.
    pub min_free_bytes: u64,
    /// `embedded` (default) or `remote`.
    pub mode: StoreMode,
    /// gRPC URL of the Qdrant server (remote mode), e.g. `http://127.0.0.1:6334`.
    pub url: Option<String>,
    /// Environment variable holding the server's API key (never the key itself: keys stay out
    /// of config files). When it is unset, the OS keychain entry `cloudops-storage` /
    /// `qdrant-api-key` is used if present; else no key is sent. Default:
    /// `CLOUDOPS_STORE_API_KEY`.
    pub api_key_env: String,
    /// Use TLS. Default (unset): on for every host but loopback.
    pub tls: Option<bool>,
    /// Timeout of one request to the server, in seconds. Default: 30.
    pub timeout_seconds: u64,
    /// Prefix of every collection this store creates on the server, so several stores (or
    /// test runs) can share one server. Default: `cloudops_`.
    pub collection_prefix: String,
    /// Copies of every shard on a cluster (collections are created with it). Default: 1.
    pub replication_factor: u32,
    /// Embedded store: `checkpoint` (default) or `always` (see [`StoreSync`]). A server
    /// decides its own durability.
    pub sync: StoreSync,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            min_free_bytes: super::DEFAULT_MIN_FREE_BYTES,
            mode: StoreMode::Embedded,
            url: None,
            api_key_env: DEFAULT_API_KEY_ENV.to_string(),
            tls: None,
            timeout_seconds: 30,
            collection_prefix: DEFAULT_COLLECTION_PREFIX.to_string(),
            replication_factor: 1,
            sync: StoreSync::Checkpoint,
        }
    }
}

impl StoreConfig {
    /// Settings of a remote store at `url`, the rest default.
    pub fn remote(url: impl Into<String>) -> Self {
        StoreConfig {
            mode: StoreMode::Remote,
            url: Some(url.into()),
            ..StoreConfig::default()
        }
    }
}
