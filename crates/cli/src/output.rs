//! Printing: human tables by default, stable JSON with `--json`. Progress goes to stderr,
//! only on a terminal and never with `--json`.

use std::io::Write as _;

use comfy_table::{Cell, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    /// Print `value` as JSON, or call `human` to print it for people.
    pub(crate) fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce(&T)) -> anyhow::Result<()> {
        if self.json {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, value)?;
            writeln!(out)?;
        } else {
            human(value);
        }
        Ok(())
    }

    /// A progress bar for long work on stderr: hidden with `--json` and when stderr is not
    /// a terminal.
    pub(crate) fn progress(&self, label: &'static str) -> Progress {
        let target = if self.json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(None, target).with_message(label);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({percent}%) {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("#> "),
        );
        Progress { bar }
    }
}

/// A progress bar (indicatif) fed by the library's progress reports.
pub(crate) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Show `done` of `total`; the bar finishes when `done` reaches `total`.
    pub(crate) fn update(&self, done: usize, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        if done >= total {
            self.bar.finish();
        }
    }

    /// Show `done` of `total` of a named phase; a new phase starts the bar again.
    pub(crate) fn phase(&self, phase: &str, done: usize, total: usize) {
        if self.bar.message() != phase {
            self.bar.reset();
            self.bar.set_message(phase.to_string());
        }
        self.update(done, total);
    }

    /// Show a library progress report.
    pub(crate) fn report(&self, p: cloudops_storage_service::Progress) {
        self.update(p.done as usize, p.total as usize);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.abandon();
        }
    }
}

/// A table for people: a header row, then rows, columns aligned, no borders.
pub(crate) fn table<R, C>(header: &[&str], rows: R) -> Table
where
    R: IntoIterator<Item = Vec<C>>,
    C: Into<Cell>,
{
    let mut table = Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    table
}

/// Format unix ms as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn time(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_string()
}

/// Unix milliseconds, or an RFC 3339 time in UTC (`2026-11-26T08:00:00Z`; the `Z` may be
/// omitted); `None` for anything else.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let at = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

/// Human-readable byte size.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Shorten text for one table cell.
pub(crate) fn snippet(text: &str, max: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}…", one_line.chars().take(max.saturating_sub(1)).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_time_bytes_and_snippets() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(snippet("a  b\nc", 10), "a b c");
        assert_eq!(snippet("abcdefghij", 5), "abcd…");
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20"), Some(1_700_000_000_000));
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }
}
