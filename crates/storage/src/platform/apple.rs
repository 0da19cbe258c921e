//! macOS: `renamex_np(RENAME_SWAP)` and `fcntl(F_PUNCHHOLE)` (APFS); the system allocator has no
//! arena bound.

use std::io;
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
    super::unix::punch_whole_file(path, |fd, len| {
        let hole = libc::fpunchhole_t {
            fp_flags: 0,
            reserved: 0,
            fp_offset: 0,
            fp_length: len,
        };
        // SAFETY: `fd` is open for the call and `hole` a valid fpunchhole_t that outlives it.
        let rc = unsafe { libc::fcntl(fd, libc::F_PUNCHHOLE, &hole) };
        if rc == -1 {
            -1
        } else {
            0
        }
    })
}

pub(super) fn set_malloc_arena_max(_max: usize) -> bool {
    false
}

pub(super) fn release_freed_heap() {}
