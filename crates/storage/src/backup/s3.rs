//! S3-compatible backup target (AWS S3, MinIO, Garage, R2) through the official AWS SDK.
//!
//! Credentials come from the SDK's default chain (environment, shared profiles, SSO,
//! instance roles). Objects live under `<prefix>/<store_id>/`: chunks, indexes and manifests
//! of incremental backups (see `incremental`), and `<name>.cosb` archives uploaded by earlier
//! versions, which still download and restore. The SDK retries throttling and transient
//! errors with exponential backoff.

use std::path::{Path, PathBuf};

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::AsyncReadExt as _;

use super::manifest::{Listing, MAX_MANIFEST_BYTES};
use super::{BackupError, Manifest, S3Config};

/// An S3 bucket holding one store's backups.
pub struct S3Target {
    client: aws_sdk_s3::Client,
    store_id: uuid::Uuid,
    bucket: String,
    prefix: String,
}

impl std::fmt::Display for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

fn target_err(operation: &'static str, key: &str, err: impl std::error::Error) -> BackupError {
    BackupError::Target {
        target: "s3",
        operation,
        object: key.to_string(),
        message: DisplayErrorContext(err).to_string(),
    }
}

impl S3Target {
    /// Connect (lazily: no request is made until the first operation).
    ///
    /// # Errors
    /// None in this build (the build without the `s3` feature always fails here).
    pub(crate) async fn new(config: &S3Config, store_id: &uuid::Uuid) -> Result<Self, BackupError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let path_style = config.path_style.unwrap_or(config.endpoint.is_some());
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(path_style)
            // Checksums only where S3 requires them: the default (a CRC trailer on streamed,
            // aws-chunked bodies) is refused by some S3-compatible servers (Garage: "Invalid
            // payload signature"). Integrity is checked by size after upload and by SHA-256
            // and AEAD on restore.
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5))
            .build();
        Ok(S3Target {
            client: aws_sdk_s3::Client::from_conf(s3),
            store_id: *store_id,
            bucket: config.bucket.clone(),
            prefix: format!("{}/{}", config.prefix.trim_end_matches('/'), store_id),
        })
    }

    /// Ids of the stores with backups under the configured prefix (from the object keys).
    ///
    /// # Errors
    /// [`BackupError::Target`].
    pub(crate) async fn store_ids(config: &S3Config) -> Result<Vec<uuid::Uuid>, BackupError> {
        let any = S3Target::new(config, &uuid::Uuid::nil()).await?;
        let root = format!("{}/", config.prefix.trim_end_matches('/'));
        let mut ids = Vec::new();
        let mut token = None;
        loop {
            let page = any
                .client
                .list_objects_v2()
                .bucket(&any.bucket)
                .prefix(&root)
                .delimiter("/")
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| target_err("list", &root, e))?;
            ids.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix())
                    .filter_map(|p| p.strip_prefix(&root))
                    .filter_map(|p| uuid::Uuid::parse_str(p.trim_end_matches('/')).ok()),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    fn key(&self, file: &str) -> String {
        format!("{}/{file}", self.prefix)
    }

    /// Manifests of every remote backup, oldest first.
    ///
    /// # Errors
    /// [`BackupError::Target`].
    pub async fn list(&self) -> Result<Vec<Manifest>, BackupError> {
        Ok(self.list_all().await?.manifests)
    }

    /// [`S3Target::list`], with what it refused.
    ///
    /// # Errors
    /// Target errors.
    pub(super) async fn list_all(&self) -> Result<Listing, BackupError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(format!("{}/", self.prefix))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| target_err("list", &self.prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| k.ends_with(".json"))
                    .map(str::to_string),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        let mut out = Listing::default();
        for key in keys {
            let stem = key.rsplit('/').next().unwrap_or_default().trim_end_matches(".json");
            let Some(bytes) = self.get_bounded(&key, MAX_MANIFEST_BYTES).await? else {
                out.refuse(&key, "it is larger than any manifest".into());
                continue;
            };
            match serde_json::from_slice::<Manifest>(&bytes) {
                Ok(m) => out.take(&key, m, stem, &self.store_id),
                Err(e) => out.refuse(&key, format!("it is not a manifest ({e})")),
            }
        }
        Ok(out.sorted())
    }

    /// An object's bytes, or `None` when it is larger than `limit` (never read past it).
    async fn get_bounded(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, BackupError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| target_err("download", key, e))?;
        if out
            .content_length()
            .is_some_and(|n| u64::try_from(n).map_or(true, |n| n > limit))
        {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        let mut body = out.body.into_async_read().take(limit + 1);
        body.read_to_end(&mut bytes)
            .await
            .map_err(|e| target_err("download", key, e))?;
        Ok((bytes.len() as u64 <= limit).then_some(bytes))
    }

    /// Download a backup's archive into `dir`; returns its path.
    ///
    /// # Errors
    /// [`BackupError::Target`] (a missing object included) and I/O errors.
    pub(crate) async fn fetch(&self, manifest: &Manifest, dir: &Path) -> Result<PathBuf, BackupError> {
        let name = &manifest.name;
        let key = self.key(&format!("{name}.cosb"));
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| target_err("download", &key, e))?;
        let too_big = |found: u64| BackupError::Corrupt {
            name: name.clone(),
            reason: format!(
                "the stored archive has {found} bytes or more, the manifest says {}",
                manifest.archive_bytes
            ),
        };
        if let Some(n) = out.content_length() {
            let n = u64::try_from(n).unwrap_or(0);
            if n != manifest.archive_bytes {
                return Err(too_big(n));
            }
        }
        let path = dir.join(format!("{name}.cosb"));
        let io = |e| BackupError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let mut file = tokio::fs::File::from_std(crate::platform::private_file(&path).map_err(io)?);
        // Never more than the manifest's size (plus one byte to notice a longer object).
        let mut body = out
            .body
            .into_async_read()
            .take(manifest.archive_bytes.saturating_add(1));
        let copied = tokio::io::copy(&mut body, &mut file).await.map_err(io)?;
        if copied > manifest.archive_bytes {
            return Err(too_big(copied));
        }
        file.sync_all().await.map_err(io)?;
        Ok(path)
    }

    /// Delete a backup's archive and manifest.
    ///
    /// # Errors
    /// [`BackupError::Target`].
    pub async fn delete(&self, name: &str) -> Result<(), BackupError> {
        // The manifest first: a backup without it is no longer listed; its chunks go at the
        // next sweep.
        for file in [format!("{name}.json"), format!("{name}.cosb"), format!("{name}.cosi")] {
            super::ObjectStore::delete(self, &file).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl super::ObjectStore for S3Target {
    async fn list(&self, prefix: &str) -> Result<Vec<super::objects::ObjectInfo>, BackupError> {
        let root = format!("{}/", self.prefix);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(format!("{root}{prefix}"))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| target_err("list", &self.prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&root)) else {
                    continue;
                };
                out.push(super::objects::ObjectInfo {
                    key: key.to_string(),
                    bytes: object.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    modified_ms: object.last_modified().and_then(|t| t.to_millis().ok()).unwrap_or(0),
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BackupError> {
        let key = self.key(key);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| target_err("upload", &key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str, limit: u64) -> Result<Vec<u8>, BackupError> {
        let full = self.key(key);
        match self.get_bounded(&full, limit).await {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(BackupError::Corrupt {
                name: key.to_string(),
                reason: format!("more than {limit} bytes, more than any such object"),
            }),
            Err(BackupError::Target { message, .. }) if message.contains("NoSuchKey") => {
                Err(BackupError::NotFound(format!("object {full} is missing")))
            }
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), BackupError> {
        let key = self.key(key);
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| target_err("delete", &key, e))?;
        Ok(())
    }
}
