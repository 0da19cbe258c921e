//! Wall-clock time in unix milliseconds, the one time unit stored in payloads, and its UTC
//! text forms (no time-zone database needed: everything is UTC).

/// Milliseconds since the unix epoch (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// (year, month, day, hour, minute, second) of unix `ms`, UTC.
fn parts(ms: i64) -> (i64, u32, u32, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), for people.
pub(crate) fn format_utc(ms: i64) -> String {
    let (y, m, d, h, mi, s) = parts(ms);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `YYYYMMDDTHHMMSSZ` (UTC): sorts as text in time order.
pub(crate) fn compact_utc(ms: i64) -> String {
    let (y, m, d, h, mi, s) = parts(ms);
    format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Parse unix milliseconds or `YYYY-MM-DDTHH:MM:SS[Z]` (UTC).
pub(crate) fn parse_utc(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let (date, time) = text.trim_end_matches('Z').split_once('T')?;
    let d: Vec<i64> = date.split('-').map(str::parse).collect::<Result<_, _>>().ok()?;
    let t: Vec<i64> = time.split(':').map(str::parse).collect::<Result<_, _>>().ok()?;
    let valid = d.len() == 3
        && t.len() == 3
        && (0..=9999).contains(&d[0])
        && (1..=12).contains(&d[1])
        && (1..=31).contains(&d[2])
        && (0..24).contains(&t[0])
        && (0..60).contains(&t[1])
        && (0..61).contains(&t[2]);
    valid.then(|| (days_from_civil(d[0], d[1], d[2]) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) * 1000)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Howard Hinnant's civil-to-days algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(compact_utc(1_700_000_000_000), "20231114T221320Z");
        assert_eq!(parse_utc("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_utc("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_utc("2023-13-01T00:00:00Z"), None);
        assert_eq!(parse_utc("yesterday"), None);
        // Absurd years are refused, not overflowed.
        assert_eq!(parse_utc("99999999999999-01-01T00:00:00Z"), None);
        assert_eq!(parse_utc("-5-01-01T00:00:00Z"), None);
        for ms in [0, 951_782_400_000, 1_709_164_800_000, 4_102_444_800_000] {
            let text = format_utc(ms).replace(' ', "T");
            assert_eq!(parse_utc(&text), Some(ms), "{text}");
        }
    }
}
