//! Connection settings of the remote store: URL and TLS, API key, timeouts.

use std::time::Duration;

use qdrant_client::Qdrant;

use crate::store::config::{StoreConfig, DEFAULT_COLLECTION_PREFIX};
use crate::store::StoreError;

/// Keychain service and account of the server's API key (used when the configured
/// environment variable is unset).
pub(crate) const API_KEY_KEYCHAIN: (&str, &str) = ("cloudops-storage", "qdrant-api-key");

/// How to reach the server.
#[derive(Clone)]
pub struct RemoteOptions {
    /// gRPC URL (`http://host:6334`, `https://...`).
    pub url: String,
    /// API key sent with every request.
    pub api_key: Option<String>,
    /// TLS: `None` is on for every host but loopback.
    pub tls: Option<bool>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Prefix of this store's collection names on the server.
    pub collection_prefix: String,
    /// Replicas of every shard (collections are created with it).
    pub replication_factor: u32,
}

impl std::fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("collection_prefix", &self.collection_prefix)
            .field("replication_factor", &self.replication_factor)
            .finish()
    }
}

impl RemoteOptions {
    /// Defaults for a server at `url`: no key, TLS by host, 30 s, prefix `cloudops_`, one replica.
    pub fn new(url: &str) -> Self {
        RemoteOptions {
            url: url.to_string(),
            api_key: None,
            tls: None,
            timeout: Duration::from_secs(30),
            collection_prefix: DEFAULT_COLLECTION_PREFIX.to_string(),
            replication_factor: 1,
        }
    }

    /// Options from `[store]`; the API key is read from the configured environment variable,
    /// else from the OS keychain entry [`API_KEY_KEYCHAIN`] when one exists. Blocking (the
    /// keychain is asked over D-Bus): call it off the async executor.
    ///
    /// # Errors
    /// [`StoreError::Unreachable`] when `store.url` is missing.
    pub fn from_config(config: &StoreConfig) -> Result<Self, StoreError> {
        let url = config.url.clone().ok_or_else(|| StoreError::Unreachable {
            url: String::new(),
            reason: "store.mode is remote but store.url is not set (e.g. http://127.0.0.1:6334)".into(),
        })?;
        let api_key = std::env::var(&config.api_key_env)
            .ok()
            .filter(|k| !k.is_empty())
            .or_else(api_key_from_keychain);
        Ok(RemoteOptions {
            url,
            api_key,
            tls: config.tls,
            timeout: Duration::from_secs(config.timeout_seconds.max(1)),
            collection_prefix: config.collection_prefix.clone(),
            replication_factor: config.replication_factor.max(1),
        })
    }
}

fn api_key_from_keychain() -> Option<String> {
    let entry = keyring::Entry::new(API_KEY_KEYCHAIN.0, API_KEY_KEYCHAIN.1).ok()?;
    match entry.get_password() {
        Ok(key) => Some(key),
        Err(keyring::Error::NoEntry) => None,
        Err(e) => {
            tracing::debug!(error = %e, "no Qdrant API key from the keychain");
            None
        }
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The URL to dial: the scheme decides TLS, so `tls` (or, unset, the host) rewrites it.
pub(super) fn effective_url(url: &str, tls: Option<bool>) -> Result<String, StoreError> {
    let bad = |reason: String| StoreError::Unreachable {
        url: url.to_string(),
        reason: reason.into(),
    };
    let uri: tonic::transport::Uri = url.parse().map_err(|e| bad(format!("store.url is not a URL: {e}")))?;
    let host = uri
        .host()
        .ok_or_else(|| bad("store.url has no host (e.g. http://127.0.0.1:6334)".into()))?;
    let scheme = uri.scheme_str().unwrap_or("http");
    if !matches!(scheme, "http" | "https") {
        return Err(bad(format!("store.url has scheme `{scheme}`: use http:// or https://")));
    }
    let want_tls = tls.unwrap_or(scheme == "https" || !is_loopback(host));
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    Ok(format!("{}://{rest}", if want_tls { "https" } else { "http" }))
}

/// Build the client (no request is sent yet).
pub(super) fn client(options: &RemoteOptions) -> Result<(Qdrant, String), StoreError> {
    let url = effective_url(&options.url, options.tls)?;
    if url.starts_with("http://") && options.api_key.is_some() {
        tracing::warn!(%url, "the Qdrant API key is sent without TLS");
    }
    let client = Qdrant::from_url(&url)
        .api_key(options.api_key.clone())
        .timeout(options.timeout)
        .connect_timeout(options.timeout.min(Duration::from_secs(10)))
        .skip_compatibility_check()
        .build()
        .map_err(|e| StoreError::Unreachable {
            url: url.clone(),
            reason: Box::new(e),
        })?;
    Ok((client, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_on_by_default_except_on_loopback() {
        assert_eq!(
            effective_url("http://127.0.0.1:6334", None).unwrap(),
            "http://127.0.0.1:6334"
        );
        assert_eq!(
            effective_url("http://localhost:6334", None).unwrap(),
            "http://localhost:6334"
        );
        assert_eq!(effective_url("http://[::1]:6334", None).unwrap(), "http://[::1]:6334");
        assert_eq!(
            effective_url("http://qdrant.internal:6334", None).unwrap(),
            "https://qdrant.internal:6334"
        );
        assert_eq!(
            effective_url("http://qdrant.internal:6334", Some(false)).unwrap(),
            "http://qdrant.internal:6334"
        );
        assert_eq!(
            effective_url("http://127.0.0.1:6334", Some(true)).unwrap(),
            "https://127.0.0.1:6334"
        );
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, says) in [
            ("not a url", "not a URL"),
            ("ftp://h:1", "scheme"),
            ("/path", "no host"),
        ] {
            let err = effective_url(url, None).unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn debug_never_shows_the_api_key() {
        let mut options = RemoteOptions::new("http://127.0.0.1:6334");
        options.api_key = Some("secret-key-123".into());
        assert!(!format!("{options:?}").contains("secret-key-123"));
    }

    #[test]
    fn missing_url_is_a_clear_error() {
        let config = StoreConfig {
            mode: crate::store::config::StoreMode::Remote,
            ..StoreConfig::default()
        };
        let err = RemoteOptions::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("store.url is not set"), "{err}");
    }
}
