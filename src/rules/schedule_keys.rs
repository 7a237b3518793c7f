//! Reading a rule's scheduling keys: `priority:` (which queued jobs start first) and `window:`
//! (the local times of day they may start).

use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};
use crate::rules::schedule::Window;

/// Bounds of `priority:`, so a bump above every queued job (`bump --top`) still fits the
/// store's 32-bit column.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -1_000_000..=1_000_000;

impl Loader<'_> {
    /// `priority:`: a whole number, 0 when absent; higher starts first.
    pub(super) fn priority(&mut self, map: &MapReader<'_>) -> i32 {
        let Some(priority) = self.field::<i64>(map, "priority") else {
            return 0;
        };
        match i32::try_from(priority) {
            Ok(p) if PRIORITY_RANGE.contains(&p) => p,
            _ => {
                self.error(
                    Diagnostic::new(
                        format!(
                            "`priority` {priority} is out of range ({} to {})",
                            PRIORITY_RANGE.start(),
                            PRIORITY_RANGE.end()
                        ),
                        map.span_of("priority"),
                    )
                    .context(map.at("priority"))
                    .hint("e.g. `priority: 10`; higher starts first, the default is 0"),
                );
                0
            }
        }
    }

    /// `window:`: one `HH:MM-HH:MM` or a list; each checked here, at its own place.
    pub(super) fn windows(&mut self, map: &MapReader<'_>) -> Vec<Window> {
        let Some(node) = map.node.get("window") else {
            return Vec::new();
        };
        let mut windows = Vec::new();
        for item in node.items() {
            let parsed = match item.as_scalar() {
                Some(text) => Window::parse(text),
                None => Err("a window is a string like \"19:00-07:00\"".to_string()),
            };
            match parsed {
                Ok(window) => windows.push(window),
                Err(message) => self.error(
                    Diagnostic::new(format!("`window`: {message}"), item.span)
                        .context(map.at("window"))
                        .hint(
                            "local times of day, e.g. `window: \"19:00-07:00\"` or a list of them",
                        ),
                ),
            }
        }
        windows
    }
}
