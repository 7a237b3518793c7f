//! What people change about when queued jobs start: a job's priority (`shotrouter bump`).
//! Kept in the store, so every node and every restart sees it.

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
