//! What Linux and macOS (every Unix) share: permission bits, owners, `statvfs`, `O_NOFOLLOW`,
//! positioned I/O and `SEEK_DATA` / `SEEK_HOLE`.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, FileExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use super::{AccessProblem, LinkRefused};

pub(super) fn free_bytes(path: &Path) -> Option<u64> {
    let c = c_path(path).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of a plain C struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    // The field widths differ between Linux and macOS; both are unsigned and fit in u64.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    let bytes = u64::from(stat.f_bavail) * stat.f_frsize as u64;
    Some(bytes)
}

pub(super) fn allocated_bytes(meta: &Metadata) -> u64 {
    meta.blocks() * 512
}

pub(super) fn owner_only(options: &mut OpenOptions) {
    options.mode(0o600);
}

pub(super) fn private_dir_all(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

pub(super) fn tighten_dir(path: &Path) -> io::Result<Option<u32>> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700 | 0o700))?;
    Ok(Some(mode))
}

pub(super) fn open_no_follow(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    match options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(io::Error::other(LinkRefused)),
        other => other,
    }
}

pub(super) fn secret_file_access(meta: &Metadata) -> Result<(), AccessProblem> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(AccessProblem::OtherOwner { owner: meta.uid(), me });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AccessProblem::OpenToOthers { mode });
    }
    Ok(())
}

pub(super) fn file_mode(meta: &Metadata) -> Option<u32> {
    Some(meta.mode() & 0o7777)
}

pub(super) fn set_file_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

pub(super) fn symlink_file(original: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(original, link)
}

pub(super) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    file.write_at(buf, offset)
}

/// `SEEK_DATA` / `SEEK_HOLE` find the data; only it is read and written.
pub(super) fn copy_sparse(src: &Path, dst: &Path) -> io::Result<u64> {
    let input = File::open(src)?;
    let len = input.metadata()?.len();
    let output = super::private_file(dst)?;
    output.set_len(len)?;
    let fd = input.as_raw_fd();
    let mut copied = 0u64;
    let end = libc::off_t::try_from(len).map_err(io::Error::other)?;
    let mut offset: libc::off_t = 0;
    let mut buf = vec![0u8; 1 << 20];
    while offset < end {
        // SAFETY: lseek on a descriptor we own; no memory is passed.
        let data = unsafe { libc::lseek(fd, offset, libc::SEEK_DATA) };
        if data < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole remains
            }
            return Err(err);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let hole = if hole < 0 { end } else { hole.min(end) };
        let (mut pos, stop) = (data as u64, hole as u64);
        while pos < stop {
            let want = usize::try_from(stop - pos).unwrap_or(usize::MAX).min(buf.len());
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
    Ok(copied)
}

pub(super) fn link_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EXDEV | libc::EPERM | libc::EMLINK | libc::EOPNOTSUPP)
    )
}

pub(super) fn is_unsupported_code(error: &io::Error) -> bool {
    // Equal on Linux, apart on macOS.
    error
        .raw_os_error()
        .is_some_and(|code| code == libc::EOPNOTSUPP || code == libc::ENOTSUP)
}

/// Free every block of the file at `path` with `punch` (the OS call, given the descriptor and
/// the file's length; 0 on success), keeping its length. Returns the bytes freed.
#[cfg(any(target_os = "linux", target_vendor = "apple"))]
pub(super) fn punch_whole_file(
    path: &Path,
    punch: impl FnOnce(std::os::fd::RawFd, libc::off_t) -> libc::c_int,
) -> io::Result<u64> {
    let file = OpenOptions::new().write(true).open(path)?;
    let before = allocated_bytes(&file.metadata()?);
    if before == 0 {
        return Ok(0);
    }
    let len =
        libc::off_t::try_from(file.metadata()?.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    check(punch(file.as_raw_fd(), len))?;
    Ok(before.saturating_sub(allocated_bytes(&file.metadata()?)))
}

/// Turn a path into a C string for a system call.
pub(super) fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// `Ok` when a system call returned 0, else the OS error.
pub(super) fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Make the entries of a folder (renames, new files) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(super) fn device_id(meta: &Metadata) -> Option<u64> {
    Some(meta.dev())
}
