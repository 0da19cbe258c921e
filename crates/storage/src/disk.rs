//! Disk usage of the data dir: free space on its file system, bytes it occupies.

use std::path::Path;

/// Free bytes available to this user on the file system holding `path`.
pub(crate) fn disk_free_bytes(path: &Path) -> Option<u64> {
    crate::platform::free_bytes(path)
}

/// Bytes allocated on disk by the files under `path` (sparse, preallocated engine files
/// count only for what they really occupy, where the OS tells).
pub(crate) fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| crate::platform::allocated_bytes(&m)),
            Err(_) => 0,
        })
        .sum()
}
