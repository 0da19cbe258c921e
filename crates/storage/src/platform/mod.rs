//! Everything that differs between the operating systems the store runs on (Linux, macOS,
//! Windows), in one place: the rest of the crate calls these functions and never names an OS.
//!
//! | what | Linux | macOS | Windows |
//! | --- | --- | --- | --- |
//! | private files and folders | `0600` / `0700` | `0600` / `0700` | the ACL inherited from the user's profile folder |
//! | key file: no links, owner, mode | `O_NOFOLLOW`, uid, mode | `O_NOFOLLOW`, uid, mode | reparse points refused; the ACL guards it |
//! | free space | `statvfs` | `statvfs` | `GetDiskFreeSpaceExW` |
//! | bytes a file occupies | allocated blocks | allocated blocks | its length |
//! | copy keeping holes | `SEEK_DATA` / `SEEK_HOLE` | `SEEK_DATA` / `SEEK_HOLE` | plain copy |
//! | freeing a file's blocks | `fallocate(PUNCH_HOLE)` | `F_PUNCHHOLE` | unsupported: the caller's fallback |
//! | swapping two folders | `renameat2(RENAME_EXCHANGE)` | `renamex_np(RENAME_SWAP)` | two renames the next open completes or rolls back |
//! | malloc arenas | glibc `M_ARENA_MAX` | no-op | no-op |
//! | default folders | XDG | `~/Library/…` | `%LOCALAPPDATA%`, `%APPDATA%` |
//!
//! Tests of each function are here too; the rest of the crate's tests call these functions
//! rather than name an OS.
//!
//! The data-dir lock needs nothing here: `File::try_lock` is `flock` on Unix and `LockFileEx`
//! on Windows, released by the OS when the owner dies.

mod dirs;
mod swap;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as os;

#[cfg(target_vendor = "apple")]
mod apple;
#[cfg(target_vendor = "apple")]
use apple as os;

#[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
mod fallback;
#[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
use fallback as os;

#[cfg(unix)]
use unix as family;
#[cfg(windows)]
use windows as family;

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::path::Path;

pub(crate) use dirs::{cache_home, config_home, data_home};
pub(crate) use swap::{recover_swap, swap_dirs};

/// Whether [`punch_out`] can free a file's blocks here (Linux and macOS).
pub const PUNCHES_HOLES: bool = cfg!(any(target_os = "linux", target_vendor = "apple"));

/// Whether the allocator's arenas can be bounded here (glibc).
pub const BOUNDS_MALLOC_ARENAS: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// Whether files carry Unix permission bits (and [`file_mode`] returns them).
pub const HAS_FILE_MODES: bool = cfg!(unix);

/// Free bytes available to this user on the file system holding `path`.
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    family::free_bytes(path)
}

/// Bytes a file occupies on disk: its allocated blocks where the OS reports them (the engine's
/// sparse, preallocated files count only for what they hold), else its length.
pub fn allocated_bytes(meta: &Metadata) -> u64 {
    family::allocated_bytes(meta)
}

/// Make `options` create files only their owner can read and write (a no-op on Windows).
pub(crate) fn owner_only(options: &mut OpenOptions) -> &mut OpenOptions {
    family::owner_only(options);
    options
}

/// Create (or truncate) a file only its owner can read and write.
pub(crate) fn private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    family::owner_only(&mut options);
    options.open(path)
}

/// Create a new file only its owner can read and write; an existing file is an error
/// (`AlreadyExists`), never replaced.
pub fn private_file_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    family::owner_only(&mut options);
    options.open(path)
}

/// Create a folder and its missing parents, each only its owner can list and enter.
pub(crate) fn private_dir_all(path: &Path) -> io::Result<()> {
    family::private_dir_all(path)
}

/// Take group and other access away from an existing folder. Returns the mode it had when it
/// was changed (never on Windows, whose folders have no mode bits).
pub(crate) fn tighten_dir(path: &Path) -> io::Result<Option<u32>> {
    family::tighten_dir(path)
}

/// Open `path` with `options` unless it is a link (a symbolic link on Unix, any reparse point
/// on Windows): then fail with an error that [`is_link_refusal`] recognises.
pub(crate) fn open_no_follow(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    family::open_no_follow(options, path)
}

/// Whether `error` came from [`open_no_follow`] refusing a link.
pub(crate) fn is_link_refusal(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<LinkRefused>())
}

/// The error [`open_no_follow`] returns for a link.
#[derive(Debug)]
struct LinkRefused;

impl std::fmt::Display for LinkRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("is a link; refusing to follow it")
    }
}

impl std::error::Error for LinkRefused {}

/// Why a secret file's access is unsafe.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(windows, allow(dead_code))] // Windows checks neither
pub(crate) enum AccessProblem {
    /// Owned by another user (uids).
    OtherOwner { owner: u32, me: u32 },
    /// Group or other may access it (the permission bits).
    OpenToOthers { mode: u32 },
}

/// Whether a secret file (a key file) is owned by this user and closed to everyone else.
/// Always fine on Windows, where the ACL inherited from the user's profile guards it.
pub(crate) fn secret_file_access(meta: &Metadata) -> Result<(), AccessProblem> {
    family::secret_file_access(meta)
}

/// The permission bits of a file (`None` where files have none: Windows).
pub fn file_mode(meta: &Metadata) -> Option<u32> {
    family::file_mode(meta)
}

/// The device (file system) a file is on, where the OS numbers them (Unix).
pub fn device_id(meta: &Metadata) -> Option<u64> {
    family::device_id(meta)
}

/// Set the permission bits of a file (for tests and tools; `Unsupported` on Windows).
pub fn set_file_mode(path: &Path, mode: u32) -> io::Result<()> {
    family::set_file_mode(path, mode)
}

/// Create a symbolic link to a file (on Windows this needs developer mode or the privilege).
pub fn symlink_file(original: &Path, link: &Path) -> io::Result<()> {
    family::symlink_file(original, link)
}

/// Whether a link made by [`symlink_file`] reaches its target when followed (tests: Wine 8
/// creates Windows links that lead nowhere, so there is no reaching through them to refuse).
pub fn link_leads_to_its_target(link: &Path) -> bool {
    let leads = std::fs::metadata(link).is_ok();
    if !leads {
        tracing::warn!(link = %link.display(), "this system made a link that leads nowhere: the link refusal is not checked here");
    }
    leads
}

/// Write all of `buf` at `offset`.
pub(crate) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match family::write_at(file, buf, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copy `src` to `dst` (created or truncated, private), keeping holes where the OS reports
/// them. Returns the bytes copied.
pub(crate) fn copy_sparse(src: &Path, dst: &Path) -> io::Result<u64> {
    family::copy_sparse(src, dst)
}

/// Make a folder's entries (renames, new files) durable. A no-op on Windows, where NTFS
/// journals them and `std` cannot flush a folder.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    family::sync_dir(dir)
}

/// Whether a hard link failed because this file system (or this pair of them) cannot link,
/// so that a copy is the answer.
pub(crate) fn link_unsupported(error: &io::Error) -> bool {
    family::link_unsupported(error)
}

/// Deallocate every block of the file at `path`, keeping its length. Returns the bytes freed.
/// [`is_unsupported`] errors where the OS or file system cannot ([`PUNCHES_HOLES`]).
pub(crate) fn punch_out(path: &Path) -> io::Result<u64> {
    os::punch_out(path)
}

/// Whether `error` says the operation is not supported here (rather than that it failed).
pub(crate) fn is_unsupported(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::Unsupported || family::is_unsupported_code(error)
}

/// Limit the allocator to `max` arenas for threads created from now on; whether it was set
/// (only with glibc, [`BOUNDS_MALLOC_ARENAS`]).
pub(crate) fn set_malloc_arena_max(max: usize) -> bool {
    os::set_malloc_arena_max(max)
}

/// Hand the heap freed so far back to the OS (glibc keeps it otherwise; a no-op elsewhere).
pub fn release_freed_heap() {
    os::release_freed_heap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_copy_keeps_the_data_and_where_the_os_allows_the_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let f = File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        write_all_at(&f, b"head", 0).unwrap();
        write_all_at(&f, b"tail", (64 << 20) - 4).unwrap();
        drop(f);
        let dst = dir.path().join("dst");
        let copied = copy_sparse(&src, &dst).unwrap();
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
        if cfg!(unix) {
            assert!(copied < 1 << 20, "copied {copied} bytes of a mostly empty file");
            assert!(allocated_bytes(&std::fs::metadata(&dst).unwrap()) < 4 << 20);
        }
    }

    #[test]
    fn a_link_is_refused_and_the_real_file_opens() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, b"key").unwrap();
        let link = dir.path().join("link");
        if let Err(e) = symlink_file(&real, &link) {
            // Windows without developer mode may not create links: nothing to refuse then.
            if HAS_FILE_MODES {
                panic!("{e}");
            }
            return;
        }
        if !link_leads_to_its_target(&link) {
            return;
        }
        let err = open_no_follow(OpenOptions::new().read(true), &link).unwrap_err();
        assert!(is_link_refusal(&err), "{err}");
        open_no_follow(OpenOptions::new().read(true), &real).unwrap();
        let missing = open_no_follow(OpenOptions::new().read(true), &dir.path().join("none")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(!is_link_refusal(&missing));
    }

    #[test]
    fn private_files_and_folders_are_closed_to_others() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        private_file(&file).unwrap();
        let new = dir.path().join("n");
        private_file_new(&new).unwrap();
        assert_eq!(private_file_new(&new).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        let folder = dir.path().join("a").join("b");
        private_dir_all(&folder).unwrap();
        for path in [&file, &new] {
            let meta = std::fs::metadata(path).unwrap();
            assert_eq!(secret_file_access(&meta), Ok(()));
            if let Some(mode) = file_mode(&meta) {
                assert_eq!(mode & 0o777, 0o600, "{}", path.display());
            }
        }
        if let Some(mode) = file_mode(&std::fs::metadata(&folder).unwrap()) {
            assert_eq!(mode & 0o777, 0o700);
        }
        if HAS_FILE_MODES {
            set_file_mode(&file, 0o644).unwrap();
            let meta = std::fs::metadata(&file).unwrap();
            assert_eq!(
                secret_file_access(&meta),
                Err(AccessProblem::OpenToOthers { mode: 0o644 })
            );
            set_file_mode(dir.path(), 0o755).unwrap();
            assert_eq!(tighten_dir(dir.path()).unwrap(), Some(0o755));
            assert_eq!(tighten_dir(dir.path()).unwrap(), None);
        }
    }

    #[test]
    fn free_space_is_reported_for_folders_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(free_bytes(dir.path()).is_some_and(|b| b > 0));
        assert!(free_bytes(&file).is_some_and(|b| b > 0));
        assert_eq!(free_bytes(&dir.path().join("missing")), None);
    }

    #[test]
    fn punching_frees_blocks_where_supported_and_keeps_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        std::fs::write(&path, vec![0xA5u8; 1 << 20]).unwrap();
        match punch_out(&path) {
            Ok(freed) => {
                assert!(freed > 0);
                let meta = std::fs::metadata(&path).unwrap();
                assert_eq!(meta.len(), 1 << 20);
                assert_eq!(allocated_bytes(&meta), 0);
            }
            Err(e) => assert!(is_unsupported(&e), "{e}"),
        }
    }
}

/// The rule this module exists for, checked on the sources: no other file of the workspace
/// names an OS (`std::os::unix`, `libc::`, `windows_sys::`, a `cfg` on the OS).
#[cfg(test)]
mod only_here {
    use std::path::{Path, PathBuf};

    const OS_SPECIFIC: [&str; 9] = [
        "std::os::unix",
        "std::os::windows",
        "std::os::fd",
        "libc::",
        "windows_sys::",
        "target_os",
        "target_vendor",
        "cfg(unix)",
        "cfg(windows)",
    ];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if !matches!(name.to_str(), Some("target" | "node_modules" | "gen" | ".git")) {
                    rust_files(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_file_outside_the_platform_module_names_an_os() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
        let platform = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join("platform");
        if !workspace.join("Cargo.toml").is_file() {
            return; // built from a packaged crate: no workspace sources to read
        }
        let mut files = Vec::new();
        for top in ["crates", "examples"] {
            rust_files(&workspace.join(top), &mut files);
        }
        assert!(files.len() > 100, "found only {} Rust files", files.len());
        let platform = platform.canonicalize().unwrap();
        let offenders: Vec<String> = files
            .iter()
            .filter(|f| !f.canonicalize().unwrap().starts_with(&platform))
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                text.lines()
                    .enumerate()
                    .filter(|(_, line)| OS_SPECIFIC.iter().any(|word| line.contains(word)))
                    .map(|(i, line)| format!("{}:{}: {}", f.display(), i + 1, line.trim()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(
            offenders.is_empty(),
            "OS-specific code outside src/platform/:\n{}",
            offenders.join("\n")
        );
    }
}
