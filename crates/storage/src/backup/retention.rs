//! Which backups retention removes: older than `keep_days`, but never the newest `keep_last`
//! (at least one), so the newest good backup always survives.

use super::Manifest;

/// Names of backups to delete at `now_ms`, oldest first.
pub(super) fn prunable(backups: &[Manifest], now_ms: i64, keep_days: u32, keep_last: usize) -> Vec<String> {
    let keep_last = keep_last.max(1);
    let cutoff = now_ms - i64::from(keep_days) * 86_400_000;
    let mut sorted: Vec<&Manifest> = backups.iter().collect();
    sorted.sort_by_key(|m| std::cmp::Reverse(m.created_at_ms));
    sorted
        .iter()
        .skip(keep_last)
        .filter(|m| m.created_at_ms < cutoff)
        .rev()
        .map(|m| m.name.clone())
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A manifest named `name`, created `days_ago` before `now`.
    pub(in crate::backup) fn backup(name: &str, days_ago: i64, now: i64) -> Manifest {
        Manifest {
            name: name.into(),
            store_id: uuid::Uuid::nil(),
            created_at_ms: now - days_ago * 86_400_000,
            collections: vec![],
            data_bytes: 0,
            archive_bytes: 0,
            sha256: String::new(),
            key_id: 1,
            format: 1,
            app_version: String::new(),
            writer_pause_ms: 0.0,
            verified_at_ms: None,
            keys: None,
            journal: None,
            head: false,
            mac: String::new(),
        }
    }

    #[test]
    fn keeps_recent_and_the_newest() {
        let now = 1_000 * 86_400_000;
        let all = vec![
            backup("a", 30, now),
            backup("b", 10, now),
            backup("c", 3, now),
            backup("d", 1, now),
        ];
        assert_eq!(prunable(&all, now, 7, 1), vec!["a", "b"]);
        assert_eq!(prunable(&all, now, 2, 1), vec!["a", "b", "c"]);
        // All old: the newest survives anyway; keep_last 0 is treated as 1.
        let old = vec![backup("x", 40, now), backup("y", 20, now)];
        assert_eq!(prunable(&old, now, 7, 0), vec!["x"]);
        assert_eq!(prunable(&old, now, 7, 2), Vec::<String>::new());
        assert!(prunable(&[], now, 7, 1).is_empty());
    }
}
