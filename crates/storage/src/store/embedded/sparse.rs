//! Copying files without filling their holes.
//!
//! qdrant-edge preallocates large sparse files (32 MiB WAL segments and payload pages) and
//! fills them lazily. A plain copy would write every hole as zeros: slower, and it would
//! lengthen the writer pause of a snapshot. `SEEK_DATA`/`SEEK_HOLE` copy only the data.
//! (The copies are not synced: a snapshot is read once into its archive, which is.)

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

/// Copy `src` to `dst` (created or truncated), keeping holes. Returns the bytes copied.
pub(super) fn copy_sparse(src: &Path, dst: &Path) -> std::io::Result<u64> {
    let input = File::open(src)?;
    let len = input.metadata()?.len();
    let output = crate::disk::private_file(dst)?;
    output.set_len(len)?;
    let fd = input.as_raw_fd();
    let mut copied = 0u64;
    let mut offset: i64 = 0;
    let mut buf = vec![0u8; 1 << 20];
    let end = i64::try_from(len).map_err(std::io::Error::other)?;
    while offset < end {
        // SAFETY: lseek on a descriptor we own; no memory is passed.
        let data = unsafe { libc::lseek(fd, offset, libc::SEEK_DATA) };
        if data < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole remains
            }
            return Err(err);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let hole = if hole < 0 { end } else { hole.min(end) };
        let mut pos = data as u64;
        while pos < hole as u64 {
            let want = ((hole as u64 - pos) as usize).min(buf.len());
            let n = input.read_at(&mut buf[..want], pos)?;
            if n == 0 {
                break;
            }
            output.write_all_at(&buf[..n], pos)?;
            pos += n as u64;
            copied += n as u64;
        }
        offset = hole;
    }
    // No fsync: a snapshot's copy is read once into its archive, and the archive is synced.
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn holes_stay_holes_and_data_is_equal() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let f = File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"tail", (64 << 20) - 4).unwrap();
        drop(f);
        let dst = dir.path().join("dst");
        let copied = copy_sparse(&src, &dst).unwrap();
        assert!(copied < 1 << 20, "copied {copied} bytes of a mostly empty file");
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
        assert!(std::fs::metadata(&dst).unwrap().blocks() * 512 < 4 << 20);
    }
}
