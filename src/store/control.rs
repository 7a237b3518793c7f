//! What people change about when queued jobs start: a job's priority (`shotrouter bump`), and
//! the nodes and rules paused (`shotrouter pause`). Kept in the store, so every node and every
//! restart sees them.

use crate::rules::PRIORITY_RANGE;

/// The priority `shotrouter bump` gives queued jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    /// This priority (within the rules' `priority:` range).
    To(i32),
    /// One above every queued job's, so the bumped jobs start next.
    Top,
}

impl Bump {
    /// The priority to give, knowing the highest of the queued jobs: `--top` is one above it,
    /// kept in the range so a later `bump --top` still fits the column.
    pub fn resolve(self, highest_queued: i32) -> i32 {
        match self {
            Bump::To(p) => p.clamp(*PRIORITY_RANGE.start(), *PRIORITY_RANGE.end()),
            Bump::Top => highest_queued
                .saturating_add(1)
                .clamp(*PRIORITY_RANGE.start(), *PRIORITY_RANGE.end()),
        }
    }
}

/// What `shotrouter pause` holds: a node (it finishes what it runs and claims nothing new) or a
/// rule (its jobs stay queued on every node).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum PauseTarget {
    /// A node, by the name `status` lists.
    Node(String),
    /// A rule, by name.
    Rule(String),
}

impl PauseTarget {
    /// The store's `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            PauseTarget::Node(_) => "node",
            PauseTarget::Rule(_) => "rule",
        }
    }

    /// The node's or rule's name.
    pub fn name(&self) -> &str {
        match self {
            PauseTarget::Node(name) | PauseTarget::Rule(name) => name,
        }
    }

    /// From the store's `kind` and `name` columns (`None` for a kind this build does not know).
    pub fn from_row(kind: &str, name: String) -> Option<PauseTarget> {
        match kind {
            "node" => Some(PauseTarget::Node(name)),
            "rule" => Some(PauseTarget::Rule(name)),
            _ => None,
        }
    }
}

impl std::fmt::Display for PauseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// A pause in force, as `status` and the API show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pause {
    /// What is paused.
    #[serde(flatten)]
    pub target: PauseTarget,
    /// Since when, unix ms.
    pub since_ms: i64,
}
