//! A rule's declared inputs (`inputs:`, `wait_inputs:`, `on_input_change:`) and the file's
//! `lineage:` block: what a job reads besides the file that matched, how long it waits for
//! those files, and what a new version of one does to the jobs that used the old.

use std::time::Duration;

use crate::rules::template::Template;

/// How long a job waits for a declared input when the rule does not say (`wait_inputs:`): a
/// night's work, so a LUT delivered the next morning still finds its job waiting.
pub const DEFAULT_WAIT_INPUTS: Duration = Duration::from_secs(24 * 3600);

/// A rule's `inputs:` and the keys that go with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredInputs {
    /// Path templates of the files each job reads besides its matched file (relative ones are
    /// under the watch root).
    pub paths: Vec<Template>,
    /// Longest a job waits for them before it fails naming the one that never came.
    pub wait: Duration,
    /// What a new version of one does to the jobs whose last run used the old one.
    pub on_change: OnInputChange,
}

/// `on_input_change:` on a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInputChange {
    /// The job runs again on the new version (the default): the old product is replaced.
    #[default]
    Rerun,
    /// The job's products are only marked stale (`shotrouter stale`, `rerun --stale RULE`).
    Stale,
}

impl OnInputChange {
    /// The word in the rules file.
    pub fn as_str(self) -> &'static str {
        match self {
            OnInputChange::Rerun => "rerun",
            OnInputChange::Stale => "stale",
        }
    }
}

/// The file's `lineage:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageSettings {
    /// Whether each run's input versions, program and products are recorded (on by default;
    /// off only to measure what it costs).
    pub record: bool,
    /// Where OpenLineage `RunEvent`s are sent (`openlineage: URL`), when they are.
    pub openlineage: Option<String>,
}

impl Default for LineageSettings {
    fn default() -> Self {
        LineageSettings {
            record: true,
            openlineage: None,
        }
    }
}
