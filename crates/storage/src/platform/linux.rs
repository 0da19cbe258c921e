//! Linux: `renameat2(RENAME_EXCHANGE)`, `fallocate(PUNCH_HOLE)` and glibc's malloc tunables.

use std::io;
use std::os::fd::AsRawFd as _;
use std::path::Path;

use super::unix::{c_path, check};

/// Atomically exchange two paths.
pub(super) fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let (ca, cb) = (c_path(a)?, c_path(b)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them like rename(2).
    check(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    })
}

/// Whether [`exchange`] failed because this file system cannot exchange (a fallback follows).
pub(super) fn exchange_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

pub(super) fn punch_out(path: &Path) -> io::Result<u64> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let before = super::allocated_bytes(&file.metadata()?);
    if before == 0 {
        return Ok(0);
    }
    let len =
        libc::off_t::try_from(file.metadata()?.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `file` is an open descriptor for the duration of the call; no memory is passed.
    check(unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            len,
        )
    })?;
    let after = super::allocated_bytes(&file.metadata()?);
    Ok(before.saturating_sub(after))
}

#[cfg(target_env = "gnu")]
pub(super) fn set_malloc_arena_max(max: usize) -> bool {
    let max = libc::c_int::try_from(max).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only changes a tunable of glibc's allocator; it takes no pointers.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, max) == 1 }
}

#[cfg(not(target_env = "gnu"))]
pub(super) fn set_malloc_arena_max(_max: usize) -> bool {
    false
}

pub(super) fn release_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks and trims glibc's own arenas; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
