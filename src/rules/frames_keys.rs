//! Reading a rule's `frames:` key (see [`FrameScope`]): anything but `all` needs the rule's
//! `shot` capture.

use crate::rules::diag::Diagnostic;
use crate::rules::frames::FrameScope;
use crate::rules::loader::{Loader, MapReader};

impl Loader<'_> {
    /// `frames:`; anything but `all` needs the shot, named by a `shot` capture of `regex`.
    pub(super) fn frame_scope(&mut self, map: &MapReader<'_>, has_shot: bool) -> FrameScope {
        let scope = self.field::<FrameScope>(map, "frames").unwrap_or_default();
        if scope != FrameScope::All && !has_shot && !self.captures_unknown {
            self.error(
                Diagnostic::new(
                    format!(
                        "`frames: {}` needs the file's shot, but the rule names none",
                        scope.as_str()
                    ),
                    map.span_of("frames"),
                )
                .context(map.at("frames"))
                .hint("add a `shot` capture to the rule's `regex`, e.g. `regex: \"^shots/(?P<shot>sh[0-9]+)/\"`"),
            );
        }
        scope
    }
}
