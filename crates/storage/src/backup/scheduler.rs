//! Automatic backups: a tokio task that runs the backup cycle every interval, skips when
//! nothing was written since the last good backup, retries failures with exponential backoff
//! (capped at the interval), and reports its state for `health()`.
//!
//! Stopping waits for a cycle in progress to finish, so a backup is never left half-made.
//!
//! With journal shipping on, a second task ships the writes made since the last shipment
//! every `ship_interval_seconds`.

use std::time::Duration;

use serde::Serialize;

use super::BackupManager;

/// First retry delay after a failure; doubles per consecutive failure up to the interval.
const FIRST_RETRY: Duration = Duration::from_secs(30);

/// What the scheduler last did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct BackupStatus {
    /// Whether the scheduler runs.
    pub scheduled: bool,
    /// Last successful backup time, unix ms.
    pub last_success_ms: Option<i64>,
    /// Its name.
    pub last_backup: Option<String>,
    /// Last failure time, unix ms.
    pub last_failure_ms: Option<i64>,
    /// Why it failed.
    pub last_error: Option<String>,
    /// Consecutive failures since the last success.
    pub consecutive_failures: u32,
    /// When the next run is due, unix ms.
    pub next_run_ms: Option<i64>,
    /// Runs skipped because nothing changed.
    pub skipped_unchanged: u64,
    /// Whether writes are shipped to the S3 target between backups.
    pub journal_shipping: bool,
    /// When writes were last shipped, unix ms (kept across restarts).
    pub journal_shipped_at_ms: Option<i64>,
    /// The oldest write not shipped yet, unix ms: the recovery point (every write before it is
    /// in the bucket). `None`: every write is shipped.
    pub journal_unshipped_since_ms: Option<i64>,
    /// Records shipped since the store was opened.
    pub journal_shipped_records: u64,
    /// Why the last shipment failed (cleared by the next that succeeds).
    pub journal_error: Option<String>,
}

/// A running scheduler; dropping it without [`AutoBackup::stop`] aborts the task.
#[derive(Debug)]
pub(crate) struct AutoBackup {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    shipper: Option<tokio::task::JoinHandle<()>>,
}

impl AutoBackup {
    /// Start running `manager`'s cycle every `interval` (first run after one interval).
    pub(crate) fn start(manager: BackupManager, interval: Duration) -> Self {
        Self::start_with_retry(manager, interval, FIRST_RETRY)
    }

    /// As [`AutoBackup::start`], with the first retry delay after a failure.
    pub(crate) fn start_with_retry(manager: BackupManager, interval: Duration, first_retry: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let shipper = manager
            .ship_interval()
            .map(|every| tokio::spawn(ship_every(manager.clone(), every, stopped.clone())));
        let status = manager.status_handle();
        let set = move |f: &dyn Fn(&mut BackupStatus)| f(&mut status.lock().unwrap_or_else(|p| p.into_inner()));
        let task = tokio::spawn(async move {
            set(&|s| s.scheduled = true);
            let mut last_writes: Option<u64> = None;
            let mut delay = interval;
            let mut failures: u32 = 0;
            loop {
                let due = manager.now() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                set(&|s| s.next_run_ms = Some(due));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped.changed() => break,
                }
                let writes = manager.store_writes();
                if last_writes == Some(writes) {
                    set(&|s| s.skipped_unchanged += 1);
                    delay = interval;
                    continue;
                }
                match manager.run_cycle().await {
                    Ok(m) => {
                        failures = 0;
                        delay = interval;
                        last_writes = Some(writes);
                        let (now, name) = (manager.now(), m.name.clone());
                        set(&|s| {
                            s.last_success_ms = Some(now);
                            s.last_backup = Some(name.clone());
                            s.consecutive_failures = 0;
                        });
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        delay = first_retry
                            .saturating_mul(1 << failures.saturating_sub(1).min(16))
                            .min(interval);
                        tracing::warn!(error = %e, retry_in_s = delay.as_secs(), "scheduled backup failed");
                        let (now, reason) = (manager.now(), format!("{e}"));
                        set(&|s| {
                            s.last_failure_ms = Some(now);
                            s.last_error = Some(reason.clone());
                            s.consecutive_failures = failures;
                        });
                    }
                }
            }
            set(&|s| {
                s.scheduled = false;
                s.next_run_ms = None;
            });
        });
        AutoBackup {
            stop,
            task: Some(task),
            shipper,
        }
    }

    /// Stop after any cycle in progress finishes.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in [self.task.take(), self.shipper.take()].into_iter().flatten() {
            let _ = task.await;
        }
    }
}

impl Drop for AutoBackup {
    fn drop(&mut self) {
        for task in [self.task.take(), self.shipper.take()].into_iter().flatten() {
            task.abort();
        }
    }
}

/// Ship the journal every `interval` until stopped (`shutdown()` ships what is left, with a
/// time limit). A failed shipment keeps its records for the next (the status says why).
async fn ship_every(manager: BackupManager, interval: Duration, mut stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => break,
        }
        if let Err(e) = manager.ship_journal().await {
            tracing::warn!(error = %e, "shipping the journal failed; its records go with the next shipment");
        }
    }
}
