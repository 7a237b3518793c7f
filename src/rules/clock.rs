//! The local time of day rules' `window:` are read against (by watchers, workers, `jobs` and
//! the dashboard), each node by its own time zone (`TZ`). Tests set
//! `SHOTROUTER_FAKE_NOW` (read only when set) to `HH:MM`, or to the path of a file holding
//! `HH:MM` that they rewrite to move the clock; nothing ever sleeps until a wall-clock time.

use super::schedule::Window;

/// The variable that replaces the clock.
pub const FAKE_NOW: &str = "SHOTROUTER_FAKE_NOW";

/// Minutes since local midnight, now (or as `SHOTROUTER_FAKE_NOW` says).
pub fn local_minute() -> u16 {
    if let Some(fake) = std::env::var_os(FAKE_NOW) {
        let fake = fake.to_string_lossy().into_owned();
        let text = if fake.starts_with('/') {
            std::fs::read_to_string(&fake).unwrap_or_default()
        } else {
            fake
        };
        // `HH:MM` as the start of a one-minute window.
        match Window::parse(&format!("{}-24:00", text.trim())) {
            Ok(w) => return w.start,
            Err(e) => tracing::warn!(value = %text.trim(), error = %e, "{FAKE_NOW} ignored"),
        }
    }
    let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
    let now = jiff::Timestamp::now().to_zoned_datetime(tz);
    now.hour() as u16 * 60 + now.minute() as u16
}
