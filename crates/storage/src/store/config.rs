//! `[store]`: engine settings.

use serde::{Deserialize, Serialize};

/// Store settings (`[store]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Free space kept on the data dir's file system; writes are refused below it.
    /// Default: 64 MiB.
    pub min_free_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            min_free_bytes: super::DEFAULT_MIN_FREE_BYTES,
        }
    }
}
