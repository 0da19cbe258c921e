//! Group commit for the journal (`[store] sync = "always"`).
//!
//! A writer that must not be acknowledged before its journal entry is on stable storage calls
//! [`GroupSync::sync_to`] with the journal position after its entry. One caller at a time
//! runs the `fsync`; every writer whose entry was in the file when that `fsync` started is
//! covered by it and returns without one of its own. Writers that arrive during an `fsync`
//! wait, then the first of them syncs for all of them. With eight writers an `fsync` covers
//! several appends, so the cost per write falls as load rises.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// The `fsync` itself (the journal file's `sync_data`, or a stand-in in tests).
type SyncFn = Box<dyn Fn() -> std::io::Result<()> + Send + Sync>;

#[derive(Debug, Default)]
struct State {
    /// Every journal position up to this one is on stable storage.
    synced: u64,
    /// An `fsync` is running.
    syncing: bool,
}

/// Shared by the journal (which reports what it wrote) and the writers (which wait).
pub(super) struct GroupSync {
    sync: SyncFn,
    /// Journal position (bytes ever appended by this process) after the last complete write.
    written: AtomicU64,
    state: Mutex<State>,
    done: Condvar,
    /// `fsync` calls made, for tests and benchmarks.
    syncs: AtomicU64,
}

impl std::fmt::Debug for GroupSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSync")
            .field("written", &self.written)
            .field("syncs", &self.syncs)
            .finish_non_exhaustive()
    }
}

impl GroupSync {
    /// Group commits that call `sync` to make the journal durable.
    pub(super) fn new(sync: impl Fn() -> std::io::Result<()> + Send + Sync + 'static) -> Self {
        GroupSync {
            sync: Box::new(sync),
            written: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            done: Condvar::new(),
            syncs: AtomicU64::new(0),
        }
    }

    /// The journal wrote everything up to `position` (called after each complete append).
    pub(super) fn wrote(&self, position: u64) {
        self.written.fetch_max(position, Ordering::AcqRel);
    }

    /// Everything up to `position` is durable without an `fsync` (the journal was truncated
    /// after a checkpoint that flushed the engine, and the truncation was synced).
    pub(super) fn durable(&self, position: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.synced = state.synced.max(position);
        self.done.notify_all();
    }

    /// Return once every journal byte up to `position` is on stable storage, running the
    /// `fsync` for everyone waiting when no other caller is.
    ///
    /// # Errors
    /// The `fsync`'s error: the write is not known to be durable and must not be acknowledged.
    pub(super) fn sync_to(&self, position: u64) -> std::io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.synced >= position {
                return Ok(());
            }
            if state.syncing {
                state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.syncing = true;
            // Everything written before this load is in the file, so this fsync covers it.
            let covers = self.written.load(Ordering::Acquire);
            drop(state);
            let result = (self.sync)();
            self.syncs.fetch_add(1, Ordering::Relaxed);
            state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.syncing = false;
            if result.is_ok() {
                state.synced = state.synced.max(covers);
            }
            self.done.notify_all();
            result?;
        }
    }

    /// `fsync` calls made so far.
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_caller_covered_by_an_earlier_sync_does_not_sync_again() {
        let group = GroupSync::new(|| Ok(()));
        group.wrote(10);
        group.sync_to(10).unwrap();
        group.sync_to(4).unwrap();
        assert_eq!(group.syncs(), 1);
        group.wrote(20);
        group.sync_to(20).unwrap();
        assert_eq!(group.syncs(), 2);
    }

    #[test]
    fn writers_arriving_during_a_sync_share_the_next_one() {
        // A slow disk: each fsync takes 100 ms, so the other seven writers arrive while the
        // first one's fsync runs and are all covered by the one after it.
        let group = Arc::new(GroupSync::new(|| {
            std::thread::sleep(Duration::from_millis(100));
            Ok(())
        }));
        group.wrote(1);
        let first = {
            let group = group.clone();
            std::thread::spawn(move || group.sync_to(1))
        };
        std::thread::sleep(Duration::from_millis(20));
        let others: Vec<_> = (2..=8u64)
            .map(|position| {
                group.wrote(position);
                let group = group.clone();
                std::thread::spawn(move || group.sync_to(position))
            })
            .collect();
        first.join().unwrap().unwrap();
        for other in others {
            other.join().unwrap().unwrap();
        }
        // Two when the first fsync started before the others wrote (the usual case); one when
        // a busy machine delayed it until they had.
        assert!(
            (1..=2).contains(&group.syncs()),
            "eight writers, {} fsyncs",
            group.syncs()
        );
    }

    #[test]
    fn a_failed_sync_is_an_error_for_its_caller_and_the_next_caller_tries_again() {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let group = {
            let fail = fail.clone();
            GroupSync::new(move || {
                if fail.load(Ordering::SeqCst) {
                    Err(std::io::Error::other("EIO"))
                } else {
                    Ok(())
                }
            })
        };
        group.wrote(5);
        assert!(group.sync_to(5).is_err());
        fail.store(false, Ordering::SeqCst);
        group.sync_to(5).unwrap();
        assert_eq!(group.syncs(), 2);
    }

    #[test]
    fn a_synced_truncation_makes_earlier_positions_durable_without_a_sync() {
        let group = GroupSync::new(|| Ok(()));
        group.wrote(7);
        group.durable(7);
        group.sync_to(7).unwrap();
        assert_eq!(group.syncs(), 0);
    }
}
