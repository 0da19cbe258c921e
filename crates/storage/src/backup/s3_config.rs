//! `[backup.s3]`: the S3 target's configuration (present in every build; the target itself
//! needs the `s3` feature).

use serde::{Deserialize, Serialize};

/// `[backup.s3]`: where remote backups go. Absent = no remote target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket. Default: `cloudops-storage`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Region; default from the SDK chain (`AWS_REGION`, profile).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint for S3-compatible stores, e.g. `https://s3.example.com` or
    /// `http://127.0.0.1:3900` (plain HTTP only on this machine, unless
    /// [`S3Config::allow_insecure_http`]).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Accept a plain `http://` endpoint on another machine: anyone on the path then sees
    /// object names, sizes and times, and can drop or replay requests (contents stay sealed).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Path-style addressing (MinIO, Garage). Default: true when an endpoint is set.
    #[serde(default)]
    pub path_style: Option<bool>,
    /// Delete remote backups older than this many days. Default: 30.
    #[serde(default = "default_keep_days")]
    pub keep_days: u32,
}

fn default_prefix() -> String {
    "cloudops-storage".to_string()
}

fn default_keep_days() -> u32 {
    30
}

impl S3Config {
    /// A config for `bucket` with the defaults.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: default_prefix(),
            region: None,
            endpoint: None,
            allow_insecure_http: false,
            path_style: None,
            keep_days: default_keep_days(),
        }
    }
}
