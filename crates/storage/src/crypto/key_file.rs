//! The key file of the `file` source: one base64 KEK per line, `0600`, owned by the user.
//!
//! One key file may serve several stores (the default path is shared), so a key is never
//! removed or replaced: a new KEK (a new store's, or a rotation's) is **added** as a line,
//! under an exclusive lock, through an exclusively created temp file, fsynced with its folder
//! and read back. Each store's envelope names its KEK by fingerprint, so every store keeps
//! finding its own. The file is opened without following symlinks and checked on the open
//! descriptor (a regular file, owned by this user, no group or other access; on Windows, where
//! links are reparse points and the profile's ACL guards the file, a reparse point is refused).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore as _;
use zeroize::Zeroizing;

use super::keyring::SecretKey;
use super::CryptoError;

/// Largest key file read (a key is 45 bytes a line; thousands of stores fit).
const MAX_KEY_FILE_BYTES: u64 = 256 * 1024;

/// Why a key file could not be read.
pub(crate) enum KeyFileError {
    /// There is no file at the path.
    Missing,
    /// Anything else, as the error to report.
    Other(CryptoError),
}

fn key_err(path: &Path, what: &str, e: impl std::fmt::Display) -> CryptoError {
    CryptoError::Key(format!("cannot {what} key file {}: {e}", path.display()))
}

/// Every key in the file at `path`, in file order.
pub(crate) fn read(path: &Path) -> Result<Vec<SecretKey>, KeyFileError> {
    let file = match crate::platform::open_no_follow(std::fs::OpenOptions::new().read(true), path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(KeyFileError::Missing),
        Err(e) if crate::platform::is_link_refusal(&e) => {
            return Err(KeyFileError::Other(CryptoError::Key(format!(
                "key file {} is a symbolic link (or another kind of link); refusing to follow it (point the configuration at the real file)",
                path.display()
            ))))
        }
        Err(e) => return Err(KeyFileError::Other(key_err(path, "open", e))),
    };
    let meta = file
        .metadata()
        .map_err(|e| KeyFileError::Other(key_err(path, "inspect", e)))?;
    check_owner_and_mode(path, &meta).map_err(KeyFileError::Other)?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| KeyFileError::Other(key_err(path, "read", e)))?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::Other(CryptoError::Key(format!(
            "key file {} is larger than any key file",
            path.display()
        ))));
    }
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            super::key_source::decode_key(line)
                .map_err(|r| CryptoError::Key(format!("key file {} line {} {r}", path.display(), i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(KeyFileError::Other)?;
    if keys.is_empty() {
        return Err(KeyFileError::Other(CryptoError::Key(format!(
            "key file {} holds no key",
            path.display()
        ))));
    }
    Ok(keys)
}

/// A regular file owned by this user with no group or other access.
fn check_owner_and_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), CryptoError> {
    use crate::platform::AccessProblem;
    if !meta.is_file() {
        return Err(CryptoError::Key(format!(
            "key file {} is not a regular file",
            path.display()
        )));
    }
    match crate::platform::secret_file_access(meta) {
        Ok(()) => Ok(()),
        Err(AccessProblem::OtherOwner { owner, me }) => Err(CryptoError::Key(format!(
            "key file {} is owned by uid {owner}, not by this user (uid {me}); refusing to use it",
            path.display(),
        ))),
        Err(AccessProblem::OpenToOthers { mode }) => Err(CryptoError::InsecureKeyFile {
            path: path.display().to_string(),
            mode,
        }),
    }
}

/// Add `key` to the key file at `path` (created `0600`, its folder `0700`), keeping every key
/// already there; then read the file back and prove the key is in it.
pub(crate) fn add(path: &Path, key: &SecretKey) -> Result<(), CryptoError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    crate::platform::private_dir_all(&parent).map_err(|e| key_err(path, "create the folder of", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CryptoError::Key(format!("key file path {} names no file", path.display())))?;
    // One writer at a time: two `init`s or rotations must never drop each other's key.
    let lock = crate::platform::open_no_follow(
        crate::platform::owner_only(std::fs::OpenOptions::new().write(true).create(true).truncate(false)),
        &parent.join(format!(".{name}.lock")),
    )
    .map_err(|e| key_err(path, "lock", e))?;
    lock.lock().map_err(|e| key_err(path, "lock", e))?;
    let mut keys = match read(path) {
        Ok(keys) => keys,
        Err(KeyFileError::Missing) => Vec::new(),
        Err(KeyFileError::Other(e)) => return Err(e),
    };
    if !keys.iter().any(|k| **k == **key) {
        keys.push(key.clone());
        replace_with(path, &parent, &name, &keys)?;
    }
    match read(path) {
        Ok(back) if back.iter().any(|k| **k == **key) => Ok(()),
        Ok(_) | Err(KeyFileError::Missing) => Err(CryptoError::Key(format!(
            "key file {} does not hold the new key after writing it",
            path.display()
        ))),
        Err(KeyFileError::Other(e)) => Err(e),
    }
}

/// Write `keys` to an exclusively created temp file beside `path`, fsync it, rename it over
/// `path` and fsync the folder.
fn replace_with(path: &Path, parent: &Path, name: &str, keys: &[SecretKey]) -> Result<(), CryptoError> {
    let mut suffix = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut suffix);
    let tmp: PathBuf = parent.join(format!(
        ".{name}.{}.tmp",
        suffix.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let written = (|| {
        // create_new never follows a link: an existing name, link or not, is an error.
        let mut file = crate::platform::private_file_new(&tmp)?;
        let mut text = Zeroizing::new(String::new());
        for key in keys {
            text.push_str(&B64.encode(key.as_slice()));
            text.push('\n');
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        crate::platform::sync_dir(parent)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        key_err(path, "write", e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(path: &Path) -> Vec<[u8; 32]> {
        match read(path) {
            Ok(keys) => keys.iter().map(|k| **k).collect(),
            Err(_) => panic!("unreadable key file"),
        }
    }

    #[test]
    fn keys_are_added_never_replaced_and_the_file_stays_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        add(&path, &Zeroizing::new([3u8; 32])).unwrap();
        add(&path, &Zeroizing::new([4u8; 32])).unwrap();
        add(&path, &Zeroizing::new([3u8; 32])).unwrap();
        assert_eq!(keys_of(&path), vec![[3u8; 32], [4u8; 32]]);
        let mode = |p: &Path| crate::platform::file_mode(&std::fs::metadata(p).unwrap()).map(|m| m & 0o777);
        if crate::platform::HAS_FILE_MODES {
            assert_eq!(mode(&path), Some(0o600));
            assert_eq!(mode(path.parent().unwrap()), Some(0o700));
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        if !crate::platform::HAS_FILE_MODES {
            return;
        }
        crate::platform::set_file_mode(&path, 0o644).unwrap();
        assert!(matches!(
            read(&path),
            Err(KeyFileError::Other(CryptoError::InsecureKeyFile { .. }))
        ));
    }

    #[test]
    fn a_symlinked_or_odd_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.key");
        add(&real, &Zeroizing::new([5u8; 32])).unwrap();
        let link = dir.path().join("link.key");
        // Windows creates links only with developer mode on; the check runs where it can.
        if crate::platform::symlink_file(&real, &link).is_ok() && crate::platform::link_leads_to_its_target(&link) {
            match read(&link) {
                Err(KeyFileError::Other(e)) => assert!(e.to_string().contains("symbolic link"), "{e}"),
                _ => panic!("a symlink was followed"),
            }
            assert!(add(&link, &Zeroizing::new([6u8; 32])).is_err());
            assert_eq!(keys_of(&real), vec![[5u8; 32]], "the link target changed");
        }
        let folder = dir.path().join("folder.key");
        std::fs::create_dir(&folder).unwrap();
        assert!(matches!(read(&folder), Err(KeyFileError::Other(_))));
        assert!(matches!(read(&dir.path().join("none.key")), Err(KeyFileError::Missing)));
    }

    #[test]
    fn concurrent_adds_keep_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.key");
        let threads: Vec<_> = (0..8u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || add(&path, &Zeroizing::new([i + 10; 32])).is_ok())
            })
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
        let mut keys = keys_of(&path);
        keys.sort();
        assert_eq!(keys, (0..8u8).map(|i| [i + 10; 32]).collect::<Vec<_>>());
    }
}
