//! The process's allocator arenas, which decide how much of the store's freed memory stays
//! resident.
//!
//! glibc gives each thread that allocates its own arena (up to eight per core) and keeps what
//! is freed in an arena for that arena's later use. The embedded engine works on tokio's
//! blocking pool, whose threads come and go, so a long write load spreads its garbage over
//! many arenas: a 200k-message fill held 158 MiB of anonymous memory with glibc's default and
//! 84 MiB with two arenas (docs/PERFORMANCE.md, "Fifth pass"), for ~10% fewer appends per
//! second. The bound is process-wide, so it belongs to the program that embeds the store (the
//! CLI calls it first thing; an app decides for itself).

/// Arenas [`bound_malloc_arenas`] keeps by default.
pub const DEFAULT_MALLOC_ARENAS: usize = 2;

/// Limit glibc's malloc to `max` arenas for the threads created from now on. Returns whether
/// the bound was set: not when `MALLOC_ARENA_MAX` is already in the environment (glibc applied
/// it at start-up and it wins), and never on other allocators or systems. Call it before the
/// program starts its threads.
pub fn bound_malloc_arenas(max: usize) -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    set_arena_max(max.max(1))
}

fn set_arena_max(max: usize) -> bool {
    let set = crate::platform::set_malloc_arena_max(max);
    tracing::debug!(max, set, "malloc arenas bounded");
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_takes_the_bound_unless_the_environment_set_one() {
        let expected = crate::platform::BOUNDS_MALLOC_ARENAS && std::env::var_os("MALLOC_ARENA_MAX").is_none();
        // A bound of zero would mean "glibc's default": it is raised to one.
        assert_eq!(bound_malloc_arenas(0), expected);
        // Last, so the rest of the test process runs with the CLI's bound.
        assert_eq!(bound_malloc_arenas(DEFAULT_MALLOC_ARENAS), expected);
    }
}
