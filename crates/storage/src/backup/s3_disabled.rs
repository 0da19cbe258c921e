//! Built without the `s3` feature: no S3 target exists. `StorageConfig::validate` refuses a
//! `[backup.s3]` section first, so [`S3Target::new`] is only the last line of that defence.

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use super::{BackupError, Manifest, S3Config};

/// An S3 bucket holding one store's backups; this build cannot make one (no `s3` feature).
pub struct S3Target {
    never: Infallible,
}

impl std::fmt::Display for S3Target {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.never {}
    }
}

impl S3Target {
    /// Always [`BackupError::NotBuiltIn`].
    ///
    /// # Errors
    /// Always: this build has no S3 support.
    pub(crate) async fn new(_: &S3Config, _: &uuid::Uuid) -> Result<Self, BackupError> {
        Err(BackupError::NotBuiltIn { feature: "s3" })
    }

    pub(crate) async fn store_ids(_: &S3Config) -> Result<Vec<uuid::Uuid>, BackupError> {
        Err(BackupError::NotBuiltIn { feature: "s3" })
    }

    pub(crate) async fn list(&self) -> Result<Vec<Manifest>, BackupError> {
        match self.never {}
    }

    pub(super) async fn list_all(&self) -> Result<super::manifest::Listing, BackupError> {
        match self.never {}
    }

    pub(crate) async fn fetch(&self, _: &Manifest, _: &Path) -> Result<PathBuf, BackupError> {
        match self.never {}
    }

    pub(crate) async fn delete(&self, _: &str) -> Result<(), BackupError> {
        match self.never {}
    }
}

#[async_trait::async_trait]
impl super::ObjectStore for S3Target {
    async fn list(&self, _: &str) -> Result<Vec<super::objects::ObjectInfo>, BackupError> {
        match self.never {}
    }

    async fn put(&self, _: &str, _: Vec<u8>) -> Result<(), BackupError> {
        match self.never {}
    }

    async fn get(&self, _: &str, _: u64) -> Result<Vec<u8>, BackupError> {
        match self.never {}
    }

    async fn delete(&self, _: &str) -> Result<(), BackupError> {
        match self.never {}
    }
}
