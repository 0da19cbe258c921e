//! Files named by outside input (a page of the Tauri app, a command line): read only when
//! they are regular files, and only up to a size limit, so that `/dev/zero`, a FIFO, a folder
//! or a huge file can neither hang nor exhaust the process.

use std::io::Read as _;
use std::path::Path;

/// The bytes of the regular file at `path`, at most `limit` of them; the error says why not
/// (never anything read from the file).
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    // Checked before opening: opening a FIFO for reading blocks until a writer comes.
    let meta = std::fs::metadata(path).map_err(|e| format!("unreadable: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file (a folder, device or FIFO)".into());
    }
    if meta.len() > limit {
        return Err(format!("{} bytes, more than the {limit}-byte limit", meta.len()));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("unreadable: {e}"))?;
    // It may have grown (or been replaced) since: never read past the limit.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("unreadable: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("more than the {limit}-byte limit"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(&file, b"[1,2,3]").unwrap();
        assert_eq!(read_bounded(&file, 7).unwrap(), b"[1,2,3]");
        assert!(read_bounded(&file, 6).unwrap_err().contains("limit"));
        assert!(read_bounded(dir.path(), 1 << 20)
            .unwrap_err()
            .contains("not a regular file"));
        assert!(read_bounded(&dir.path().join("missing"), 1)
            .unwrap_err()
            .contains("unreadable"));
        if Path::new("/dev/zero").exists() {
            assert!(read_bounded(Path::new("/dev/zero"), 1 << 20)
                .unwrap_err()
                .contains("not a regular file"));
        }
    }
}
