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

/// The reason a queued job of a paused rule waits, as `jobs`, `job` and the dashboard show it.
pub fn paused_reason(rule: &str) -> String {
    format!("rule paused (shotrouter resume --rule {rule})")
}

/// Gives queued jobs of a paused rule that reason: it comes before a window's (the job would
/// not start inside one either) and a tag's.
pub fn explain_pauses(pauses: &[Pause], rows: &mut [super::JobRow]) {
    for row in rows.iter_mut().filter(|r| r.status == "queued") {
        if pauses
            .iter()
            .any(|p| matches!(&p.target, PauseTarget::Rule(name) if *name == row.rule))
        {
            row.result = Some(paused_reason(&row.rule));
        }
    }
}

/// Queued jobs no live node can take: none holds all their `tags:`, as `status` lists them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TagWait {
    /// The tags the jobs need.
    pub tags: Vec<String>,
    /// How many queued jobs need them.
    pub jobs: u64,
    /// The first of them (at most [`TAG_WAIT_IDS`]), oldest first.
    pub ids: Vec<super::JobId>,
    /// The reason as `status` says it: "waiting for a node with tag gpu".
    pub reason: String,
}

/// Queued jobs of one rule held outside its `window:`, as `status` lists them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WindowWait {
    /// The rule.
    pub rule: String,
    /// How many of its queued jobs wait.
    pub jobs: u64,
    /// The reason the watcher recorded: "waiting for window 19:00–07:00".
    pub reason: String,
}

/// How a held job's reason begins (see `rules::schedule::waiting_reason`).
pub const WINDOW_REASON: &str = "waiting for window ";

/// Of the windows the watchers recorded per rule (`rule_defs.windows`), the rules outside them
/// now by this node's clock, with the reason their jobs wait. A watcher records that reason
/// on the jobs it holds itself; the jobs it leaves to workers (`--no-run`, `tags:`) get it
/// here, when they are read.
pub fn closed_windows(
    recorded: Vec<(String, String)>,
) -> std::collections::HashMap<String, String> {
    use crate::rules::schedule::{open_at, parse_list, waiting_reason};
    if recorded.is_empty() {
        return std::collections::HashMap::new();
    }
    let minute = crate::rules::clock::local_minute();
    recorded
        .into_iter()
        .filter_map(|(rule, text)| {
            let windows = parse_list(&text).ok()?;
            (!open_at(&windows, minute)).then(|| (rule, waiting_reason(&windows)))
        })
        .collect()
}

/// Adds queued jobs held for a window that recorded no reason to `status`'s count.
pub fn count_unrecorded(waits: &mut Vec<WindowWait>, rule: &str, reason: &str, jobs: u64) {
    if jobs == 0 {
        return;
    }
    match waits
        .iter_mut()
        .find(|w| w.rule == rule && w.reason == reason)
    {
        Some(wait) => wait.jobs += jobs,
        None => {
            waits.push(WindowWait {
                rule: rule.to_string(),
                jobs,
                reason: reason.to_string(),
            });
            waits.sort_by(|a, b| a.rule.cmp(&b.rule));
        }
    }
}

/// How many of the jobs waiting for a tag `status` names.
pub const TAG_WAIT_IDS: usize = 20;

/// How long since its last heartbeat a node still counts as live (as `status` reads it).
pub const LIVE_MS: i64 = 60_000;

/// Of the tag sets queued jobs need (with their counts), those no live node's tags cover.
pub fn unplaceable(queued: Vec<(Vec<String>, u64)>, live: &[Vec<String>]) -> Vec<TagWait> {
    queued
        .into_iter()
        .filter(|(tags, _)| {
            !tags.is_empty()
                && !live
                    .iter()
                    .any(|node| tags.iter().all(|t| node.contains(t)))
        })
        .map(|(tags, jobs)| TagWait {
            reason: format!(
                "waiting for a node with tag{} {}",
                if tags.len() == 1 { "" } else { "s" },
                tags.join(", ")
            ),
            tags,
            jobs,
            ids: Vec::new(),
        })
        .collect()
}
