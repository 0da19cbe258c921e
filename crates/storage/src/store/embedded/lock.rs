//! The data-dir lock: one process owns a store at a time.
//!
//! `flock(2)` on `<data_dir>/LOCK`; the kernel drops the lock when the owner exits, even on
//! SIGKILL, so a crash never leaves a stale lock behind. The file holds the owner's PID so a
//! second opener can say who holds it.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::Path;

use crate::store::StoreError;

/// Name of the lock file inside the data dir.
pub const LOCK_FILE: &str = "LOCK";

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
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("opening lock file", e))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("PID {pid}"),
                    Err(_) => "another process".to_string(),
                };
                return Err(StoreError::Locked {
                    path: path.display().to_string(),
                    holder,
                });
            }
            return Err(io("locking", err));
        }
        file.set_len(0).map_err(|e| io("writing lock file", e))?;
        file.rewind().map_err(|e| io("writing lock file", e))?;
        write!(file, "{}", std::process::id()).map_err(|e| io("writing lock file", e))?;
        file.flush().map_err(|e| io("writing lock file", e))?;
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
