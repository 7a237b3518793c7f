//! A rule's `frames:` key (`all`, `with_handles`, `in_cut`) and its `{cut.*}` variables: what a
//! rule needs from the cut for the shot a file belongs to. Both name the shot by the rule's
//! `shot` capture, so a rule without one is refused at load (`frames_keys`); the engine does the look-up.

use crate::edit::FrameClass;

/// The variables a rule with a `shot` capture may use: the shot's frames in the latest cut
/// that shows it, and that cut's name and revision.
pub const CUT_VARIABLES: &[&str] = &[
    "cut.head_in",
    "cut.in",
    "cut.out",
    "cut.tail_out",
    "cut.name",
    "cut.revision",
];

/// `frames:` on a rule: which frames of a shot with a cut the rule processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameScope {
    /// Every frame (the default), as if there were no cut.
    #[default]
    All,
    /// Frames from `head_in` to `tail_out`: what the cut shows, and its handles.
    WithHandles,
    /// Only frames the cut shows.
    InCut,
}

impl FrameScope {
    /// The word in the rules file.
    pub fn as_str(self) -> &'static str {
        match self {
            FrameScope::All => "all",
            FrameScope::WithHandles => "with_handles",
            FrameScope::InCut => "in_cut",
        }
    }

    /// Whether a frame of class `class` is processed.
    pub fn allows(self, class: FrameClass) -> bool {
        match self {
            FrameScope::All => true,
            FrameScope::WithHandles => class != FrameClass::Outside,
            FrameScope::InCut => class == FrameClass::InCut,
        }
    }
}

/// Why a `{cut.*}` variable is not available, when the rule has no `shot` capture.
pub(super) fn cut_variable_hint(var: &str, known: &[String]) -> Option<&'static str> {
    (var.starts_with("cut.") && !known.iter().any(|k| k == "cut.in")).then_some(
        "`{cut.*}` variables need the file's shot: add a `shot` capture to the rule's `regex`",
    )
}
