//! Reading a rule's `frames:` key (see [`FrameScope`]): anything but `all` needs the rule's
//! `shot` capture.

use crate::rules::diag::Diagnostic;
use crate::rules::frames::{CUT_VARIABLES, FrameScope};
use crate::rules::loader::{Loader, MapReader};

impl Loader<'_> {
    /// `frames:`; anything but `all` needs the shot, named by a `shot` capture of `regex`. A
    /// rule with one may use the `{cut.*}` variables: they join `known`.
    pub(super) fn frame_scope(
        &mut self,
        map: &MapReader<'_>,
        regex: Option<&regex::bytes::Regex>,
        known: &mut Vec<String>,
    ) -> FrameScope {
        let has_shot = regex.is_some_and(|r| r.capture_names().flatten().any(|c| c == "shot"));
        if has_shot {
            known.extend(CUT_VARIABLES.iter().map(|v| v.to_string()));
        }
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
