//! Times, durations and sizes as a supervisor reads them: local wall-clock times (the
//! system's time zone, `TZ` honoured, via jiff's tz database reader), `3m12s`, `1.4 GiB`.
//! JSON keeps the raw numbers; only text output goes through here.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// `1h02m`, `3m12s`, `45s`: the two largest units, enough to act on.
pub fn duration_ms(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// A moment (milliseconds since the epoch) in local time: `21:03:12` today, `Nov 28 21:03`
/// within the year, `2025-11-28 21:03` before. Falls back to UTC if no zone can be read.
pub fn local_time_ms(ms: i64, now_ms: i64) -> String {
    time_ms_in(ms, now_ms, &local_zone())
}

/// The system's time zone (`TZ` honoured), UTC when none can be read. Reading it costs a file
/// read and a parse: a command that shows many times reads it once.
pub fn local_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// [`local_time_ms`] in a zone read once.
pub fn time_ms_in(ms: i64, now_ms: i64, tz: &TimeZone) -> String {
    let Ok(at) = Timestamp::from_millisecond(ms) else {
        return ms.to_string();
    };
    let tz = tz.clone();
    let at = at.to_zoned_datetime(tz.clone());
    let now = Timestamp::from_millisecond(now_ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz);
    if at.date() == now.date() {
        at.strftime("%H:%M:%S").to_string()
    } else if at.year() == now.year() {
        at.strftime("%b %d %H:%M").to_string()
    } else {
        at.strftime("%Y-%m-%d %H:%M").to_string()
    }
}

/// A full local date and time with its offset, for one job's detail: `2026-11-29 21:03:12 +01:00`.
pub fn local_datetime_ns(ns: i64) -> String {
    datetime_ns_in(ns, &local_zone())
}

/// [`local_datetime_ns`] in a zone read once.
pub fn datetime_ns_in(ns: i64, tz: &TimeZone) -> String {
    let Ok(at) = Timestamp::from_nanosecond(i128::from(ns)) else {
        return ns.to_string();
    };
    at.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// `812 B`, `14.2 KiB`, `1.4 GiB`: binary units, as `ls -lh` and `du -h` count.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }

    #[test]
    fn durations_keep_two_units() {
        assert_eq!(duration_ms(45_000), "45s");
        assert_eq!(duration_ms(192_000), "3m12s");
        assert_eq!(duration_ms(3_720_000), "1h02m");
        assert_eq!(duration_ms(-5), "0s");
    }

    #[test]
    fn local_times_shorten_with_recency() {
        // Whatever the zone, a time 10 s ago today has no date and one from 2001 has its year.
        let now = 1_800_000_000_000;
        let recent = local_time_ms(now - 10_000, now);
        assert!(recent.len() == 8 || recent.contains(' '), "{recent}");
        assert!(local_time_ms(1_000_000_000_000, now).starts_with("2001-"));
    }
}
