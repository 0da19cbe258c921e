//! Which files a page may have imported: paths under the folders the app configures
//! ([`crate::Builder::import_roots`], `import_roots` in `tauri.conf.json`, or
//! `CLOUDOPS_IMPORT_ROOTS`), resolved (symlinks, `..`) before the check, and only existing
//! regular files (or, for the Node import, folders). With no folder configured, a page imports
//! nothing. The page picks what to import, never what the app may read.

use std::path::{Path, PathBuf};

use cloudops_storage_service::StorageError;

use crate::error::{Error, Result};

/// Environment variable listing import roots (the OS's path-list separator).
pub const IMPORT_ROOTS_ENV: &str = "CLOUDOPS_IMPORT_ROOTS";

/// The folders a page may import from, resolved.
#[derive(Debug, Clone, Default)]
pub struct ImportScope {
    roots: Vec<PathBuf>,
}

/// What a page-supplied path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    File,
    Folder,
}

impl ImportScope {
    /// A scope of `roots`; those that do not exist are left out (logged).
    pub fn new(roots: impl IntoIterator<Item = PathBuf>) -> Self {
        let roots = roots
            .into_iter()
            .filter_map(|root| match std::fs::canonicalize(&root) {
                Ok(resolved) => Some(resolved),
                Err(e) => {
                    tracing::info!(root = %root.display(), error = %e, "import root left out");
                    None
                }
            })
            .collect();
        ImportScope { roots }
    }

    /// `path` resolved, when it lies under a root and is what `expect` says; the error names
    /// the path as given, never anything read from it.
    pub(crate) fn check(&self, path: &Path, expect: Expect) -> Result<PathBuf> {
        let refuse = |reason: String| {
            Error::Storage(StorageError::InvalidInput {
                field: "path",
                reason: format!("{}: {reason}", path.display()),
            })
        };
        if self.roots.is_empty() {
            return Err(refuse(format!(
                "this app lets pages import nothing (it names the folders they may import from: Builder::import_roots, `import_roots` in tauri.conf.json, or ${IMPORT_ROOTS_ENV})"
            )));
        }
        let resolved = std::fs::canonicalize(path).map_err(|_| refuse("not found".into()))?;
        if !self.roots.iter().any(|root| resolved.starts_with(root)) {
            return Err(refuse("outside the folders this app imports from".into()));
        }
        let kind = std::fs::metadata(&resolved).map_err(|_| refuse("not found".into()))?;
        match expect {
            Expect::File if !kind.is_file() => Err(refuse("not a regular file".into())),
            Expect::Folder if !kind.is_dir() => Err(refuse("not a folder".into())),
            _ => Ok(resolved),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_under_a_root_pass_and_errors_echo_no_content() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.json");
        std::fs::write(&secret, r#"{"aws_secret_access_key": "hunter2"}"#).unwrap();
        let inside = root.path().join("ok.json");
        std::fs::write(&inside, "[]").unwrap();
        let scope = ImportScope::new([root.path().to_path_buf()]);
        assert_eq!(
            scope.check(&inside, Expect::File).unwrap(),
            std::fs::canonicalize(&inside).unwrap()
        );
        assert!(scope.check(root.path(), Expect::Folder).is_ok());
        let dotdot = root
            .path()
            .join("..")
            .join(outside.path().file_name().unwrap())
            .join("secret.json");
        for refused in [
            secret.clone(),
            dotdot,
            root.path().join("missing.json"),
            PathBuf::from("/dev/zero"),
        ] {
            let err = scope.check(&refused, Expect::File).unwrap_err().to_string();
            assert!(!err.contains("hunter2") && !err.contains("aws_secret"), "{err}");
        }
        assert!(scope
            .check(root.path(), Expect::File)
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        assert!(ImportScope::default()
            .check(&inside, Expect::File)
            .unwrap_err()
            .to_string()
            .contains("import nothing"));
    }
}
