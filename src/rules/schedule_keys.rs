//! Reading a rule's scheduling keys: `priority:` (which queued jobs start first).

use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};

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
}
