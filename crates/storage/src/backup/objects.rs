//! Where incremental backups keep their objects: a flat namespace of keys (`chunks/<id>`,
//! `<name>.cosi`, `<name>.json`, `locks/<name>`) in an S3 bucket, or in a local folder
//! ([`LocalObjects`], used by `bench` to measure what a bucket would hold, and by tests).

use std::path::{Path, PathBuf};

use super::BackupError;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectInfo {
    /// Its key, relative to the store's prefix.
    pub(crate) key: String,
    /// Stored bytes.
    pub(crate) bytes: u64,
    /// Last written, unix ms (0 when the target does not say).
    pub(crate) modified_ms: i64,
}

/// A flat object namespace for one store's backups.
#[async_trait::async_trait]
pub(crate) trait ObjectStore: Send + Sync + std::fmt::Display {
    /// Every object whose key starts with `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackupError>;
    /// Write an object (replacing one of that key).
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BackupError>;
    /// An object's bytes; [`BackupError::NotFound`] when missing, [`BackupError::Corrupt`]
    /// when larger than `limit`.
    async fn get(&self, key: &str, limit: u64) -> Result<Vec<u8>, BackupError>;
    /// Delete an object (no error when it is already gone).
    async fn delete(&self, key: &str) -> Result<(), BackupError>;
}

/// Objects as files under a local folder (`chunks/<id>` becomes `<root>/chunks/<id>`).
#[derive(Debug, Clone)]
pub(crate) struct LocalObjects {
    root: PathBuf,
}

impl std::fmt::Display for LocalObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.root.display())
    }
}

impl LocalObjects {
    /// Objects under `root` (created when first written).
    pub(crate) fn new(root: &Path) -> Self {
        LocalObjects {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, BackupError> {
        let rel = Path::new(key);
        if key.is_empty() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(BackupError::Corrupt {
                name: key.to_string(),
                reason: "not a valid object key".into(),
            });
        }
        Ok(self.root.join(rel))
    }
}

/// The object key of a file at `relative` under the root: its names joined with `/` on every
/// OS (Windows paths use `\`); `None` for a name that is not UTF-8, which no key maps to.
fn object_key(relative: &Path) -> Option<String> {
    let names = relative
        .components()
        .map(|c| match c {
            std::path::Component::Normal(name) => name.to_str(),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(names.join("/"))
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[async_trait::async_trait]
impl ObjectStore for LocalObjects {
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackupError> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        super::blocking(move || {
            let mut out = Vec::new();
            let mut dirs = vec![root.clone()];
            while let Some(dir) = dirs.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_at(&dir)(e)),
                };
                for entry in entries {
                    let entry = entry.map_err(io_at(&dir))?;
                    let path = entry.path();
                    let meta = entry.metadata().map_err(io_at(&path))?;
                    if meta.is_dir() {
                        dirs.push(path);
                        continue;
                    }
                    let Some(key) = path.strip_prefix(&root).ok().and_then(object_key) else {
                        continue;
                    };
                    if key.starts_with(&prefix) && !key.ends_with(".tmp") {
                        let modified_ms = meta
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_millis() as i64);
                        out.push(ObjectInfo {
                            key,
                            bytes: meta.len(),
                            modified_ms,
                        });
                    }
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BackupError> {
        let path = self.path(key)?;
        super::blocking(move || {
            if let Some(parent) = path.parent() {
                crate::platform::private_dir_all(parent).map_err(io_at(parent))?;
            }
            let tmp = path.with_extension("tmp");
            let mut file = crate::platform::private_file(&tmp).map_err(io_at(&tmp))?;
            std::io::Write::write_all(&mut file, &bytes)
                .and_then(|()| file.sync_all())
                .map_err(io_at(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io_at(&path))
        })
        .await
    }

    async fn get(&self, key: &str, limit: u64) -> Result<Vec<u8>, BackupError> {
        let path = self.path(key)?;
        let key = key.to_string();
        super::blocking(move || {
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(BackupError::NotFound(format!("object {key} is missing")))
                }
                Err(e) => return Err(io_at(&path)(e)),
            };
            if meta.len() > limit {
                return Err(BackupError::Corrupt {
                    name: key,
                    reason: format!("{} bytes, more than any such object ({limit})", meta.len()),
                });
            }
            std::fs::read(&path).map_err(io_at(&path))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), BackupError> {
        let path = self.path(key)?;
        super::blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(&path)(e)),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_objects_put_list_get_delete() {
        let dir = tempfile::tempdir().unwrap();
        let objects = LocalObjects::new(dir.path());
        objects.put("chunks/ab", b"one".to_vec()).await.unwrap();
        objects.put("b1.cosi", b"index".to_vec()).await.unwrap();
        let chunks = objects.list("chunks/").await.unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!((chunks[0].key.as_str(), chunks[0].bytes), ("chunks/ab", 3));
        assert_eq!(objects.get("chunks/ab", 3).await.unwrap(), b"one");
        assert!(matches!(
            objects.get("chunks/ab", 2).await,
            Err(BackupError::Corrupt { .. })
        ));
        assert!(matches!(
            objects.get("chunks/cd", 9).await,
            Err(BackupError::NotFound(_))
        ));
        assert!(objects.put("../escape", Vec::new()).await.is_err());
        objects.delete("chunks/ab").await.unwrap();
        objects.delete("chunks/ab").await.unwrap();
        assert_eq!(objects.list("").await.unwrap().len(), 1);
    }
}
