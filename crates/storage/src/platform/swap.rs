//! Putting a folder in place of another, the step a restore ends with.
//!
//! Where the OS exchanges two paths in one call (Linux `renameat2`, macOS `renamex_np` on
//! APFS) that call is the commit point. Elsewhere (Windows, HFS+, the BSDs) two renames do it:
//! an intent file beside the live folder names where the old folder goes, then the live folder
//! moves aside, then the incoming one moves in, then the intent file goes. A crash between
//! the renames leaves the intent file, and [`recover_swap`], run by the next open before it
//! reads the folder, finishes or undoes the swap: the live folder is never found missing.

use std::io;
use std::path::{Path, PathBuf};

/// Suffix of the intent file `<parent>/.<live name>.swapping`.
const INTENT_SUFFIX: &str = ".swapping";

/// What [`recover_swap`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SwapRecovery {
    /// No swap was interrupted.
    Nothing,
    /// The swap had put the incoming folder in place; the old one is at the path given.
    Finished(PathBuf),
    /// The live folder had been moved aside only: it is back in place.
    RolledBack,
    /// The swap stopped before moving anything.
    Abandoned,
}

/// Put `incoming` in place of `live` (which exists); the old folder ends at `aside` (which must
/// not exist; its parent is created, and it must be on the same file system).
pub(crate) fn swap_dirs(incoming: &Path, live: &Path, aside: &Path) -> io::Result<()> {
    if let Some(parent) = aside.parent() {
        super::private_dir_all(parent)?;
    }
    match super::os::exchange(incoming, live) {
        // The exchange committed the swap; moving the old folder aside only tidies.
        Ok(()) => std::fs::rename(incoming, aside),
        Err(e) if super::os::exchange_unsupported(&e) => {
            tracing::debug!(error = %e, "no atomic exchange here: swapping in two renames");
            two_step(incoming, live, aside, &|_| {})
        }
        Err(e) => Err(e),
    }
}

/// The swap in two renames, guarded by the intent file. `after` is called after each of the
/// steps 1 (intent written), 2 (live moved aside) and 3 (incoming moved in), for tests that
/// stop the process there.
fn two_step(incoming: &Path, live: &Path, aside: &Path, after: &dyn Fn(u8)) -> io::Result<()> {
    let parent = parent_of(live)?;
    let intent = intent_path(live)?;
    let aside_rel = aside.strip_prefix(parent).ok().and_then(Path::to_str).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the old folder must go beside the live one",
        )
    })?;
    {
        let mut file = super::private_file_new(&intent)?;
        io::Write::write_all(&mut file, aside_rel.as_bytes())?;
        file.sync_all()?;
    }
    super::sync_dir(parent)?;
    after(1);
    std::fs::rename(live, aside)?;
    super::sync_dir(parent)?;
    after(2);
    if let Err(e) = std::fs::rename(incoming, live) {
        // Put the live folder back before reporting; if even that fails, the next open will.
        if std::fs::rename(aside, live).is_ok() {
            let _ = std::fs::remove_file(&intent);
        }
        return Err(e);
    }
    super::sync_dir(parent)?;
    after(3);
    std::fs::remove_file(&intent)?;
    super::sync_dir(parent)
}

/// Finish or undo a swap of `live` that a crash interrupted (see the module doc). Call it
/// before reading `live`, under the lock that guards it.
pub(crate) fn recover_swap(live: &Path) -> io::Result<SwapRecovery> {
    let intent = intent_path(live)?;
    let aside_rel = match std::fs::read(&intent) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SwapRecovery::Nothing),
        Err(e) => return Err(e),
    };
    let aside_rel = std::str::from_utf8(&aside_rel).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a swap intent", intent.display()),
        )
    })?;
    let parent = parent_of(live)?;
    let aside = parent.join(aside_rel);
    let outcome = if live.exists() {
        if aside.exists() {
            SwapRecovery::Finished(aside)
        } else {
            SwapRecovery::Abandoned
        }
    } else if aside.exists() {
        std::fs::rename(&aside, live)?;
        SwapRecovery::RolledBack
    } else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "an interrupted swap left neither {} nor {}; {} is kept for inspection",
                live.display(),
                aside.display(),
                intent.display()
            ),
        ));
    };
    std::fs::remove_file(&intent)?;
    super::sync_dir(parent)?;
    tracing::warn!(live = %live.display(), ?outcome, "completed a folder swap a crash interrupted");
    Ok(outcome)
}

fn parent_of(path: &Path) -> io::Result<&Path> {
    path.parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a folder to swap needs a parent"))
}

fn intent_path(live: &Path) -> io::Result<PathBuf> {
    let name = live
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a folder to swap needs a UTF-8 name"))?;
    Ok(parent_of(live)?.join(format!(".{name}{INTENT_SUFFIX}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `root/live` holding "old", `root/in/live` holding "new".
    fn setup(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let live = root.join("live");
        let incoming = root.join("in").join("live");
        std::fs::create_dir_all(&live).unwrap();
        std::fs::create_dir_all(&incoming).unwrap();
        std::fs::write(live.join("f"), "old").unwrap();
        std::fs::write(incoming.join("f"), "new").unwrap();
        (incoming, live, root.join(".previous-1").join("live"))
    }

    fn content(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("f")).unwrap()
    }

    #[test]
    fn the_os_swap_puts_the_new_folder_in_place_and_the_old_aside() {
        let root = tempfile::tempdir().unwrap();
        let (incoming, live, aside) = setup(root.path());
        swap_dirs(&incoming, &live, &aside).unwrap();
        assert_eq!(content(&live), "new");
        assert_eq!(content(&aside), "old");
        assert!(!incoming.exists());
        assert_eq!(recover_swap(&live).unwrap(), SwapRecovery::Nothing);
    }

    #[test]
    fn the_two_step_swap_completes_and_leaves_no_intent() {
        let root = tempfile::tempdir().unwrap();
        let (incoming, live, aside) = setup(root.path());
        std::fs::create_dir_all(aside.parent().unwrap()).unwrap();
        two_step(&incoming, &live, &aside, &|_| {}).unwrap();
        assert_eq!(content(&live), "new");
        assert_eq!(content(&aside), "old");
        assert_eq!(recover_swap(&live).unwrap(), SwapRecovery::Nothing);
    }

    /// A crash after each step, simulated by a panic there: the next open's recovery leaves
    /// the live folder whole, old before the incoming one moved in, new after.
    #[test]
    fn a_crash_after_any_step_leaves_a_whole_live_folder() {
        for (step, expected, outcome) in [
            (1, "old", "Abandoned"),
            (2, "old", "RolledBack"),
            (3, "new", "Finished"),
        ] {
            let root = tempfile::tempdir().unwrap();
            let (incoming, live, aside) = setup(root.path());
            std::fs::create_dir_all(aside.parent().unwrap()).unwrap();
            let crashed = std::panic::catch_unwind(|| {
                let _ = two_step(&incoming, &live, &aside, &|at| assert_ne!(at, step, "crash"));
            });
            assert!(crashed.is_err(), "step {step}");
            let recovered = recover_swap(&live).unwrap();
            assert!(
                format!("{recovered:?}").starts_with(outcome),
                "step {step}: {recovered:?}"
            );
            assert_eq!(content(&live), expected, "step {step}");
            assert_eq!(recover_swap(&live).unwrap(), SwapRecovery::Nothing, "step {step}");
        }
    }

    /// A damaged intent, or one whose folders are both gone, is a clear error that touches
    /// nothing and keeps the intent for inspection.
    #[test]
    fn a_damaged_or_hopeless_intent_is_an_error_and_is_kept() {
        let root = tempfile::tempdir().unwrap();
        let live = root.path().join("live");
        let intent = intent_path(&live).unwrap();
        std::fs::write(&intent, [0xFF, 0xFE]).unwrap();
        let err = recover_swap(&live).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(intent.exists());
        std::fs::write(&intent, ".previous-1/live").unwrap();
        let err = recover_swap(&live).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("neither"), "{err}");
        assert!(intent.exists() && !live.exists());
    }

    /// The same with a real process death: a child process (this test binary again) aborts
    /// after moving the live folder aside; the recovery here puts it back.
    #[test]
    fn a_killed_swap_is_rolled_back_by_the_next_open() {
        let root = tempfile::tempdir().unwrap();
        let (_, live, _) = setup(root.path());
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "platform::swap::tests::child_that_dies_between_the_renames",
                "--ignored",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env("CLOUDOPS_SWAP_CHILD_ROOT", root.path())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the child must die between the renames");
        assert!(!live.exists(), "the child moved the live folder aside before dying");
        assert_eq!(recover_swap(&live).unwrap(), SwapRecovery::RolledBack);
        assert_eq!(content(&live), "old");
    }

    #[test]
    #[ignore = "run by a_killed_swap_is_rolled_back_by_the_next_open in a child process"]
    fn child_that_dies_between_the_renames() {
        let Some(root) = std::env::var_os("CLOUDOPS_SWAP_CHILD_ROOT") else {
            return;
        };
        let root = PathBuf::from(root);
        let (live, incoming) = (root.join("live"), root.join("in").join("live"));
        let aside = root.join(".previous-1").join("live");
        std::fs::create_dir_all(aside.parent().unwrap()).unwrap();
        let _ = two_step(&incoming, &live, &aside, &|at| {
            if at == 2 {
                std::process::abort();
            }
        });
    }
}
