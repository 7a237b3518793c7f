//! The writes a node commits through [`JobQueue::commit`](super::queue::JobQueue::commit), one
//! transaction per batch, each answered in order: the whole life of a job (enqueue, claim,
//! start, publish, end) and what people change about it (holds, reruns, the rules' work).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::os::version::FileVersion;

use super::job::{Claim, NewJob, RootedPath};
use super::lineage::RunUse;
use super::{JobId, RunHandle};

/// What [`JobQueue::publishing`](super::queue::JobQueue::publishing) records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The job's product, at its final path.
    Product,
    /// Anything else the job delivers (a `copy:`/`move:` of the product or of its input).
    Copy,
}

/// What an earlier attempt of a job published, as [`JobQueue::published_product`](super::queue::JobQueue::published_product) reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The product's version at its final path.
    pub product: FileVersion,
    /// The version of its `copy:`/`move:` destination, once that was about to be renamed into
    /// place: after a `move:` the product is gone, and this tells the move was done.
    pub delivered: Option<FileVersion>,
}

/// How an attempt ended, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Succeeded; its product, if any, is published.
    Done,
    /// Failed for good.
    Failed {
        /// Exit status or reason.
        reason: String,
    },
    /// Failed; queue it again, not before this time (unix ms). The attempt counts.
    Retry {
        /// Exit status or reason.
        reason: String,
        /// Unix ms.
        not_before: i64,
    },
    /// Stopped by a user's cancel.
    Cancelled,
    /// Cut short by this node's graceful stop (or claimed and never started before it):
    /// queued again for the next start, the attempt not counted.
    Interrupted,
    /// This node cannot run it (its root is not mounted here, its input is missing here):
    /// queued again for another node, the attempt not counted, not claimable for
    /// [`DECLINE_MS`] so the node that declined it does not take it back at once.
    Declined {
        /// Why, recorded as the job's last result.
        reason: String,
    },
}

/// How long a declined job waits before any node may claim it again.
pub const DECLINE_MS: i64 = 10_000;

/// One write in a group commit.
#[derive(Debug, Clone)]
pub enum Write {
    /// Records a job unless the same (rule, input, version) already has one (a unique index,
    /// `INSERT … ON CONFLICT DO NOTHING`); with `claim`, also claims it for this node. A new
    /// version supersedes (cancels) the rule's unfinished jobs on older versions of the input,
    /// so a product of old content is never published over one of new content.
    Enqueue {
        /// The job.
        job: Box<NewJob>,
        /// Claim it in the same write (the engine has a free slot for it now).
        claim: bool,
    },
    /// Claims a queued job for this node (before anything is spawned).
    Claim {
        /// The job.
        id: JobId,
    },
    /// Replaces a queued job's commands (planned again with the current rules).
    Replan {
        /// The job.
        id: JobId,
        /// New rule hash.
        rule_hash: String,
        /// New steps.
        steps: Vec<Vec<OsString>>,
        /// New product.
        output: Option<PathBuf>,
        /// New plan ([`NewJob::plan`]), so a worker that claims the job meanwhile
        /// runs the new commands with their own product, checks and timeout.
        plan: String,
    },
    /// A step of the claimed job started as this run, writing to this temp output.
    Started {
        /// The claim.
        claim: Claim,
        /// The run's handle (a local step's process group), to stop after a crash or a cancel.
        run: Option<RunHandle>,
        /// The hidden temp output, removed after a crash.
        temp_output: Option<PathBuf>,
    },
    /// The argv of each step as this claim runs them, where they differ from the planned
    /// ones (a worker mapped the watcher's paths to its own mounts): shown beside them, with
    /// the node, while this claim is the job's last.
    Ran {
        /// The claim.
        claim: Claim,
        /// Each step's argv, as run.
        steps: Vec<Vec<OsString>>,
    },
    /// How far the claimed job's running ffmpeg step got (recorded while it runs; ignored
    /// once the claim is stale).
    Progress {
        /// The claim.
        claim: Claim,
        /// How far.
        progress: super::JobProgress,
    },
    /// The claimed job's attempt ended.
    Finish {
        /// The claim.
        claim: Claim,
        /// How.
        ending: Ending,
    },
    /// Marks a queued job cancelled (its rule or root left the rules).
    Drop {
        /// The job.
        id: JobId,
        /// Why.
        reason: String,
    },
    /// Sets (or with `None` clears) why a queued job waits, as `jobs` and `job` show it (a
    /// rule's `window:`); a job not queued is left alone.
    Hold {
        /// The job.
        id: JobId,
        /// Why it waits.
        reason: Option<String>,
    },
    /// Sets why every queued job of a rule waits (its window closed: all but those run now),
    /// or with `None` clears that reason from them (it opened): one statement whatever the
    /// backlog, where [`Write::Hold`] is one job's.
    HoldRule {
        /// The rule.
        rule: String,
        /// Why its jobs wait (a reason starting with
        /// [`WINDOW_REASON`](super::control::WINDOW_REASON)).
        reason: Option<String>,
    },
    /// Files present at the first start: known, never run.
    Baseline {
        /// The files and their versions.
        files: Vec<(RootedPath, FileVersion)>,
    },
    /// A queued job planned again whose declared inputs are not all there: `waiting` for them.
    Wait {
        /// The job.
        id: JobId,
        /// What it waits for.
        wait: super::lineage::WaitFor,
    },
    /// A waiting job's inputs are all there: queued for the next claim.
    Release {
        /// The job.
        id: JobId,
    },
    /// A waiting job whose inputs never came in time: failed with this reason.
    GiveUp {
        /// The job.
        id: JobId,
        /// Which input never came, and how long it was waited for.
        reason: String,
    },
    /// What the claimed job's successful run used: its declared inputs at the versions read,
    /// its programs, the rule's work hash. Written just before its [`Ending::Done`].
    Used {
        /// The claim.
        claim: Claim,
        /// What it used.
        used: Box<RunUse>,
    },
    /// A new version of a file some job declared as input arrived: its record is updated, and
    /// the answer ([`Answer::Users`](super::queue::Answer::Users)) names the jobs whose last done run read another version.
    InputSeen {
        /// The file (absolute, on the watcher).
        path: PathBuf,
        /// Its new version.
        version: FileVersion,
    },
    /// Queues each job's file again for its rule (a new generation, planned with the current
    /// rules), unless the rule already has an unfinished job on it.
    Rerun {
        /// The jobs to run again.
        ids: Vec<JobId>,
    },
    /// Each rule's current work hash (at start and after a reload): products made under
    /// another one are stale. Its windows go with it, for workers.
    RuleDefs {
        /// The rules.
        defs: Vec<RuleDef>,
    },
}

/// A rule as the watcher last loaded it, in [`Write::RuleDefs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDef {
    /// Its name.
    pub name: String,
    /// Its work hash.
    pub work_hash: String,
    /// Its `window:`s as [`crate::rules::schedule::list_text`] writes them (empty: none).
    pub windows: String,
}

/// One step of applying a group commit's writes in order (see [`in_commit_order`]).
pub(crate) enum InOrder<'a> {
    /// A write applied on its own.
    One(&'a Write),
    /// A run's [`Write::Used`] and the same claim's [`Write::Finish`] just after it: how the
    /// engine ends every successful run, written by both backends in one statement.
    UsedAndEnd {
        claim: Claim,
        used: &'a RunUse,
        ending: &'a Ending,
    },
}

/// A group commit's writes in order, each run's `Used` paired with its end when that comes
/// next; the backends answer a pair with the two answers the writes would have had.
pub(crate) fn in_commit_order(writes: &[Write]) -> impl Iterator<Item = InOrder<'_>> {
    let mut rest = writes;
    std::iter::from_fn(move || {
        let (write, after) = rest.split_first()?;
        if let (
            Write::Used { claim, used },
            Some(Write::Finish {
                claim: ended,
                ending,
            }),
        ) = (write, after.first())
            && claim == ended
        {
            rest = &after[1..];
            return Some(InOrder::UsedAndEnd {
                claim: *claim,
                used,
                ending,
            });
        }
        rest = after;
        Some(InOrder::One(write))
    })
}
