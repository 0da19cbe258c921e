//! Windows: files have no mode bits (what the store writes under the user's profile inherits
//! its ACL, which grants the user, SYSTEM and Administrators only), reparse points stand for
//! links, and files are not sparse unless asked to be, so copies are plain.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::windows::ffi::OsStrExt as _;
use std::os::windows::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use windows_sys::Win32::Foundation::{
    ERROR_INVALID_FUNCTION, ERROR_NOT_SAME_DEVICE, ERROR_NOT_SUPPORTED, ERROR_TOO_MANY_LINKS,
};
use windows_sys::Win32::Storage::FileSystem::{
    GetDiskFreeSpaceExW, FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_OPEN_REPARSE_POINT,
};

use super::{AccessProblem, LinkRefused};

pub(super) fn free_bytes(path: &Path) -> Option<u64> {
    // The call takes a folder; a file's free space is its folder's.
    let dir = if path.is_file() { path.parent()? } else { path };
    let wide: Vec<u16> = dir.as_os_str().encode_wide().chain(Some(0)).collect();
    let mut available = 0u64;
    // SAFETY: `wide` is a NUL-terminated UTF-16 path; the out-pointer is valid, the others may
    // be null.
    let ok = unsafe {
        GetDiskFreeSpaceExW(
            wide.as_ptr(),
            &mut available,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    (ok != 0).then_some(available)
}

pub(super) fn allocated_bytes(meta: &Metadata) -> u64 {
    meta.len()
}

pub(super) fn owner_only(_options: &mut OpenOptions) {}

pub(super) fn private_dir_all(path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(path)
}

pub(super) fn tighten_dir(_path: &Path) -> io::Result<Option<u32>> {
    Ok(None)
}

/// Opens the reparse point itself, not what it points to, and refuses it.
pub(super) fn open_no_follow(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let file = options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT).open(path)?;
    if file.metadata()?.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        return Err(io::Error::other(LinkRefused));
    }
    Ok(file)
}

pub(super) fn secret_file_access(_meta: &Metadata) -> Result<(), AccessProblem> {
    Ok(())
}

pub(super) fn file_mode(_meta: &Metadata) -> Option<u32> {
    None
}

pub(super) fn set_file_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

pub(super) fn symlink_file(original: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(original, link)
}

pub(super) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    file.seek_write(buf, offset)
}

pub(super) fn copy_sparse(src: &Path, dst: &Path) -> io::Result<u64> {
    let mut input = File::open(src)?;
    let mut output = super::private_file(dst)?;
    io::copy(&mut input, &mut output)
}

pub(super) fn link_unsupported(error: &io::Error) -> bool {
    error
        .raw_os_error()
        .and_then(|code| u32::try_from(code).ok())
        .is_some_and(|code| {
            matches!(
                code,
                ERROR_NOT_SAME_DEVICE | ERROR_TOO_MANY_LINKS | ERROR_INVALID_FUNCTION | ERROR_NOT_SUPPORTED
            )
        })
}

pub(super) fn is_unsupported_code(error: &io::Error) -> bool {
    error
        .raw_os_error()
        .and_then(|code| u32::try_from(code).ok())
        .is_some_and(|code| matches!(code, ERROR_NOT_SUPPORTED | ERROR_INVALID_FUNCTION))
}

/// Folder entries need no sync of their own: NTFS journals renames and creations, and a
/// folder cannot be flushed through `std`.
pub(super) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

pub(super) fn device_id(_meta: &Metadata) -> Option<u64> {
    None
}
