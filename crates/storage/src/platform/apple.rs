//! macOS: `renamex_np(RENAME_SWAP)` and `fcntl(F_PUNCHHOLE)` (APFS); the system allocator has no
//! arena bound.

use std::io;
use std::os::fd::AsRawFd as _;
use std::path::Path;

use super::unix::{c_path, check};

/// Atomically exchange two paths.
pub(super) fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let (ca, cb) = (c_path(a)?, c_path(b)?);
    // SAFETY: both are valid NUL-terminated paths.
    check(unsafe { libc::renamex_np(ca.as_ptr(), cb.as_ptr(), libc::RENAME_SWAP) })
}

/// Whether [`exchange`] failed because this file system cannot swap (HFS+, network volumes).
pub(super) fn exchange_unsupported(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOTSUP | libc::EINVAL))
}

pub(super) fn punch_out(path: &Path) -> io::Result<u64> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let before = super::allocated_bytes(&file.metadata()?);
    if before == 0 {
        return Ok(0);
    }
    let len =
        libc::off_t::try_from(file.metadata()?.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let hole = libc::fpunchhole_t {
        fp_flags: 0,
        reserved: 0,
        fp_offset: 0,
        fp_length: len,
    };
    // SAFETY: `file` is open for the call and `hole` a valid fpunchhole_t that outlives it.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_PUNCHHOLE, &hole) };
    check(if rc == -1 { -1 } else { 0 })?;
    let after = super::allocated_bytes(&file.metadata()?);
    Ok(before.saturating_sub(after))
}

pub(super) fn set_malloc_arena_max(_max: usize) -> bool {
    false
}

pub(super) fn release_freed_heap() {}
