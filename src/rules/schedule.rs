//! A rule's time windows (`window: "19:00-07:00"`): the local times of day its jobs may start.
//! Outside them its jobs stay queued, with the window as their reason.

use std::fmt;

/// One window, in minutes of the local day; `start > end` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// First minute inside.
    pub start: u16,
    /// First minute outside.
    pub end: u16,
}

/// Minutes in a day.
const DAY: u16 = 24 * 60;

impl Window {
    /// Parses `HH:MM-HH:MM` (24-hour local times; an en dash is taken too).
    ///
    /// # Errors
    /// What is wrong, for a diagnostic.
    pub fn parse(text: &str) -> Result<Window, String> {
        let (start, end) = text
            .split_once('-')
            .or_else(|| text.split_once('–'))
            .ok_or_else(|| format!("`{text}` is not a window"))?;
        let (start, end) = (minute(start.trim())?, minute(end.trim())?);
        if start == end {
            return Err(format!("`{text}` is empty: it starts where it ends"));
        }
        if start == DAY {
            return Err(format!(
                "`{text}` starts at 24:00, the end of the day: write 00:00"
            ));
        }
        Ok(Window { start, end })
    }

    /// Whether `minute` (of the local day) is inside.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// `HH:MM` as minutes of the day.
fn minute(text: &str) -> Result<u16, String> {
    let bad = || format!("`{text}` is not a time of day (HH:MM, 00:00 to 24:00)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) => Ok(DAY),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}–{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// How the store keeps a rule's windows, for workers: `19:00-07:00,12:00-13:00` (empty when
/// it has none); [`parse_list`] reads it back.
pub fn list_text(windows: &[Window]) -> String {
    let list: Vec<String> = windows
        .iter()
        .map(|w| {
            format!(
                "{:02}:{:02}-{:02}:{:02}",
                w.start / 60,
                w.start % 60,
                w.end / 60,
                w.end % 60
            )
        })
        .collect();
    list.join(",")
}

/// Reads what [`list_text`] wrote.
///
/// # Errors
/// What is wrong with a window, for a diagnostic.
pub fn parse_list(text: &str) -> Result<Vec<Window>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(Window::parse)
        .collect()
}

/// Whether `minute` is inside any of `windows` (none: always).
pub fn open_at(windows: &[Window], minute: u16) -> bool {
    windows.is_empty() || windows.iter().any(|w| w.contains(minute))
}

/// The reason a job of a rule with these windows waits: "waiting for window 19:00–07:00".
pub fn waiting_reason(windows: &[Window]) -> String {
    let list: Vec<String> = windows.iter().map(ToString::to_string).collect();
    format!("waiting for window {}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_cross_midnight() {
        let night = Window::parse("19:00-07:00").expect("valid");
        assert_eq!(night.to_string(), "19:00–07:00");
        assert!(night.contains(19 * 60) && night.contains(3 * 60) && !night.contains(7 * 60));
        assert!(!night.contains(12 * 60));
        let day = Window::parse("09:30–24:00").expect("an en dash, and 24:00");
        assert!(day.contains(23 * 60 + 59) && !day.contains(9 * 60 + 29));
        for bad in [
            "19:00",
            "25:00-01:00",
            "7-8",
            "07:60-08:00",
            "08:00-08:00",
            "24:00-00:00",
            "24:00-07:00",
            "a:bc-d",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
        assert!(open_at(&[], 0));
        assert_eq!(list_text(&[night, day]), "19:00-07:00,09:30-24:00");
        assert_eq!(
            parse_list(&list_text(&[night, day])).expect("read back"),
            [night, day]
        );
        assert_eq!(parse_list("").expect("none"), []);
        assert_eq!(
            waiting_reason(&[night, day]),
            "waiting for window 19:00–07:00, 09:30–24:00"
        );
    }
}
