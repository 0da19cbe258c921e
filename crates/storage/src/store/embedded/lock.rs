//! The data-dir lock: one process owns a store at a time.
//!
//! An exclusive `File::try_lock` on `<data_dir>/LOCK` (`flock` on Unix, `LockFileEx` on
//! Windows); the OS drops the lock when the owner exits, even when killed, so a crash never
//! leaves a stale lock behind. The owner's PID goes to `LOCK.owner` beside it (Windows bars
//! other processes from reading a locked file) so a second opener can say who holds it.

use std::fs::{File, TryLockError};
use std::io::Write as _;
use std::path::Path;

use crate::store::StoreError;

/// Name of the lock file inside the data dir.
pub const LOCK_FILE: &str = "LOCK";

/// Name of the file beside it that names the lock's holder.
const OWNER_FILE: &str = "LOCK.owner";

/// Holds the exclusive lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Take the lock or fail with [`StoreError::Locked`] naming the holder.
    pub(crate) fn acquire(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |action, source| StoreError::Io {
            action,
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("opening lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(data_dir.join(OWNER_FILE))
                    .ok()
                    .and_then(|text| text.trim().parse::<u32>().ok())
                    .map_or_else(|| "another process".to_string(), |pid| format!("PID {pid}"));
                return Err(StoreError::Locked {
                    path: path.display().to_string(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("locking", e)),
        }
        let owner = data_dir.join(OWNER_FILE);
        crate::platform::private_file(&owner)
            .and_then(|mut f| write!(f, "{}", std::process::id()))
            .map_err(|e| StoreError::Io {
                action: "writing lock owner file",
                path: owner.display().to_string(),
                source: e,
            })?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("PID {}", std::process::id())), "{text}");
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
