//! Linux: `renameat2(RENAME_EXCHANGE)`, `fallocate(PUNCH_HOLE)` and glibc's malloc tunables.

use std::io;
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
    super::unix::punch_whole_file(path, |fd, len| {
        // SAFETY: `fd` is open for the call; no memory is passed.
        unsafe { libc::fallocate(fd, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 0, len) }
    })
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
