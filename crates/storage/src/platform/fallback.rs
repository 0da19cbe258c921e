//! Systems without a folder exchange or hole punching of their own (Windows, the BSDs): the
//! callers' fallbacks run instead.

use std::io;
use std::path::Path;

pub(super) fn exchange(_a: &Path, _b: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

pub(super) fn exchange_unsupported(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::Unsupported
}

pub(super) fn punch_out(_path: &Path) -> io::Result<u64> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

pub(super) fn set_malloc_arena_max(_max: usize) -> bool {
    false
}

pub(super) fn release_freed_heap() {}
