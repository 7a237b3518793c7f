//! What the store knows a job by, as the engine hands it over and gets it back: its input as
//! a rooted path, its claim (the fencing token every later write presents), a new job to
//! record, and a job claimed to run (see [`super::queue`]).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::os::version::FileVersion;

use super::JobId;

/// A path as the store records it: a named watch root and the path relative to it, so machines
/// that mount the same tree at different places agree on a file's identity. An output outside
/// every root is recorded with an empty root name and its absolute path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RootedPath {
    /// The root's `name:` (empty for a path outside every root).
    pub root: String,
    /// The path relative to the root (absolute when `root` is empty).
    pub rel: PathBuf,
}

/// The fencing token of one claim: every write for the claimed job must present it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The job.
    pub id: JobId,
    /// Raised by one at every claim of the job; an older token is stale.
    pub token: i64,
    /// Which attempt this claim runs (1 for the first).
    pub attempt: u32,
}

/// A job to record.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The rule's name.
    pub rule: String,
    /// A stable hash of the rule's definition (xxh3, hex).
    pub rule_hash: String,
    /// The input file (or a sequence's `####` path).
    pub input: RootedPath,
    /// The input's version (its device number is not part of the identity).
    pub version: FileVersion,
    /// Each step's argv.
    pub steps: Vec<Vec<OsString>>,
    /// The product, if any (absolute, on this node).
    pub output: Option<PathBuf>,
    /// A job that cannot be planned is recorded as failed at once with this reason.
    pub unplannable: Option<String>,
    /// A job the rule's `frames:` leaves out is recorded as skipped at once with this reason
    /// (a frame outside the cut); it never runs.
    pub skipped: Option<String>,
    /// When this exact version already succeeded for this rule under another path (the file
    /// was renamed, or its folder was), record the move instead of a job
    /// ([`Answer::Moved`](super::queue::Answer::Moved)). False when the rule asks to run again on renames, or the file
    /// has other hard links (the old path still holds the same content).
    pub follow_moves: bool,
    /// Run even when the input's record holds this very version as baseline (present at the
    /// first start, never to run): `watch --once` processes what is there. Otherwise such an
    /// enqueue is a [`Answer::Duplicate`](super::queue::Answer::Duplicate), so a rescan never runs the baseline.
    pub baseline_runs: bool,
    /// Only nodes that hold every one of these tags may run it (`tags:` of the rule).
    pub tags: Vec<String>,
    /// At most this many of the rule's jobs claimed or running across every node
    /// (`concurrency:` of the rule); `None`: no limit beyond each node's `jobs`.
    pub concurrency: Option<u32>,
    /// Queued jobs of a higher priority are claimed first (`priority:` of the rule; `bump`
    /// changes it later).
    pub priority: i32,
    /// What a worker needs to run the job without the rules file (JSON, opaque to the store;
    /// empty when the job cannot be run by a worker).
    pub plan: String,
    /// A job whose declared inputs are not all there is recorded `waiting` for them, not
    /// queued: no node claims it until the watcher releases it ([`Write::Release`](super::write::Write::Release)).
    pub waiting: Option<super::lineage::WaitFor>,
}

/// A job a worker claimed, with everything it needs to run it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The claim.
    pub claim: Claim,
    /// The rule's name.
    pub rule: String,
    /// The input.
    pub input: RootedPath,
    /// Each step's argv, as the watcher planned it.
    pub steps: Vec<Vec<OsString>>,
    /// The product's final path on the watcher, if any.
    pub output: Option<PathBuf>,
    /// The job's plan ([`NewJob::plan`]).
    pub plan: String,
}
