//! Printing: human tables by default, stable JSON with `--json`. Progress goes to stderr,
//! only on a terminal and never with `--json`.

use std::io::{IsTerminal as _, Write as _};

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

    /// A progress reporter for long work.
    pub(crate) fn progress(&self, label: &'static str) -> Progress {
        Progress {
            label,
            enabled: !self.json && std::io::stderr().is_terminal(),
        }
    }
}

/// A one-line progress display on stderr.
pub(crate) struct Progress {
    label: &'static str,
    enabled: bool,
}

impl Progress {
    pub(crate) fn update(&self, done: usize, total: usize) {
        if !self.enabled {
            return;
        }
        let pct = if total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / total as f64
        };
        let width = 30usize;
        let filled = ((pct / 100.0) * width as f64) as usize;
        eprint!(
            "\r{} [{}{}] {done}/{total} ({pct:.0}%)",
            self.label,
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
        if done >= total {
            eprintln!();
        }
    }
}

/// Format unix ms as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn time(ms: i64) -> String {
    cloudops_storage_service::clock::format_utc(ms)
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
    }
}
