//! A rule's `thumbnail:` key: a small poster frame of each verified product, for the dashboard.
//!
//! It is not part of either hash: a thumbnail is a picture of the product for people looking at
//! the dashboard, not the product, so turning it on or off neither marks products stale nor
//! changes what a rule is said to run.

use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};

impl Loader<'_> {
    /// `thumbnail: true`; a rule without `output:` has no product to draw, which is a warning
    /// (the rule still loads and simply makes none).
    pub(super) fn thumbnail(&mut self, map: &MapReader<'_>, has_output: bool) -> bool {
        let thumbnail = self.field::<bool>(map, "thumbnail").unwrap_or(false);
        if thumbnail && !has_output {
            self.warn(
                Diagnostic::new(
                    "`thumbnail` draws the product, but the rule declares no `output`: no thumbnail will be made",
                    map.span_of("thumbnail"),
                )
                .context(map.at("thumbnail"))
                .hint("declare `output:`, or remove `thumbnail:`"),
            );
        }
        thumbnail
    }
}
