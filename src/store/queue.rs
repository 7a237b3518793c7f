//! The engine's side of the store: a durable job queue with claims and fencing tokens.
//!
//! The engine never drives transactions by hand: it collects the writes of one burst of work in
//! an outbox and hands them to [`JobQueue::commit`], which applies them in one transaction and
//! answers each in order (group commit: one commit for many jobs). A job is claimed *before*
//! anything is spawned; the claim carries a fencing token that every later write for the job
//! presents, and a write with a stale token is refused ([`Answer::Stale`]): another claim
//! superseded it, so whoever made it must stop (the engine kills that attempt's process group).
//! The store itself kills nothing and deletes nothing: it returns what the engine must clean up.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::os::version::FileVersion;
use crate::store::RunHandle;

use super::{JobId, StoreError};

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
    /// ([`Answer::Moved`]). False when the rule asks to run again on renames, or the file
    /// has other hard links (the old path still holds the same content).
    pub follow_moves: bool,
    /// Run even when the input's record holds this very version as baseline (present at the
    /// first start, never to run): `watch --once` processes what is there. Otherwise such an
    /// enqueue is a [`Answer::Duplicate`], so a rescan never runs the baseline.
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
    /// queued: no node claims it until the watcher releases it ([`Write::Release`]).
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

/// What [`JobQueue::publishing`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The job's product, at its final path.
    Product,
    /// Anything else the job delivers (a `copy:`/`move:` of the product or of its input).
    Copy,
}

/// What an earlier attempt of a job published, as [`JobQueue::published_product`] reads it.
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
        used: Box<super::lineage::RunUse>,
    },
    /// A new version of a file some job declared as input arrived: its record is updated, and
    /// the answer ([`Answer::Users`]) names the jobs whose last done run read another version.
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

/// Which queued jobs [`JobQueue::claim_next`] may take: all of them by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimFilter {
    /// The node's tags: a job's tags must all be among them.
    pub tags: Vec<String>,
    /// The roots whose jobs it takes (empty: any).
    pub roots: Vec<String>,
    /// Rules outside their `window:` now: their jobs are skipped unless marked run-now.
    pub closed_rules: Vec<String>,
}

/// The store's answer to one [`Write`], in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Done; nothing to report.
    Ok,
    /// Enqueued: the new job's id and, when a claim was asked for and granted, the claim.
    Enqueued {
        /// The job.
        id: JobId,
        /// The claim.
        claim: Option<Claim>,
        /// Unfinished jobs of the same rule on an older version of the same input, cancelled
        /// by this one: their attempts can no longer publish or record an end, and whoever
        /// runs them should stop them.
        superseded: Vec<JobId>,
    },
    /// The same (rule, input, version) already has a job: nothing was written.
    Duplicate,
    /// This version succeeded for the rule under another path, which the store now records
    /// as this one: the file was moved, nothing is to run.
    Moved {
        /// Where the file was.
        from: RootedPath,
    },
    /// Claimed for this node.
    Claimed(Claim),
    /// Not claimable: cancelled by a user, already claimed or finished, or gone.
    NotClaimable,
    /// A user cancelled the job meanwhile: stop it, record nothing more.
    Cancelled,
    /// The token is stale: another claim superseded this one; the write was refused and the
    /// attempt that made it must be stopped.
    Stale {
        /// The current token.
        current: i64,
    },
    /// The jobs (and their rules) whose last done run read another version of an input.
    Users(Vec<(JobId, String)>),
}

impl Answer {
    /// The answer in a word for the log (its Debug text, `Cancelled`, is Rust's, not ours).
    pub fn word(&self) -> &'static str {
        match self {
            Answer::Ok => "ok",
            Answer::Enqueued { .. } => "enqueued",
            Answer::Duplicate => "duplicate",
            Answer::Moved { .. } => "moved",
            Answer::Claimed(_) => "claimed",
            Answer::NotClaimable => "not claimable",
            Answer::Cancelled => "cancelled",
            Answer::Stale { .. } => "claimed again elsewhere",
            Answer::Users(_) => "users",
        }
    }
}

/// A job queued in the store, as read back (resumed at start, or queued by the CLI).
#[derive(Debug, Clone)]
pub struct QueuedJob {
    /// Its id.
    pub id: JobId,
    /// The rule's name.
    pub rule: String,
    /// The input.
    pub input: RootedPath,
    /// Attempts made so far.
    pub attempts: u32,
    /// Earliest start, unix ms.
    pub not_before: i64,
    /// Where the poll cursor stands after this job (see [`JobQueue::queued_since`]).
    pub cursor: i64,
    /// Its priority (its rule's, or a `bump`'s).
    pub priority: i32,
    /// `shotrouter run-now`: it may start outside its rule's window.
    pub run_now: bool,
}

/// A job waiting for its declared inputs, as the watcher reads them back at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingJob {
    /// Its id.
    pub id: JobId,
    /// Its rule.
    pub rule: String,
    /// Its matched file (or sequence's `####` path).
    pub input: RootedPath,
    /// What it waits for.
    pub wait: super::lineage::WaitFor,
}

/// A claim of this node that a previous run of it left behind (it crashed or was killed).
#[derive(Debug, Clone)]
pub struct Abandoned {
    /// The job.
    pub id: JobId,
    /// Its rule.
    pub rule: String,
    /// Its last run, to stop if still alive (a local group only when provably ours), or to
    /// re-attach to.
    pub run: Option<RunHandle>,
    /// Its temp output, to delete.
    pub temp_output: Option<PathBuf>,
    /// Its product's final path, if it has one: its attempts' temp outputs are named after it
    /// and after their claim token, so they can be found even when no start was recorded.
    pub output: Option<PathBuf>,
    /// The token of its last claim (every earlier one is lower).
    pub token: i64,
    /// Whether its product had been published. Either way it was queued again, the
    /// interrupted attempt counted; one whose product is in place delivers it without running
    /// its commands again (its `copy:` may not have been made).
    pub published: bool,
}

/// The engine's view of the store. One per engine thread; workers open their own for the
/// write that must be durable before a rename ([`JobQueue::publishing`]). It reads the cuts
/// too: the watcher routes frames by the shots' latest ranges.
pub trait JobQueue: Send + super::cuts::CutStore {
    /// This node's name (the claims it makes carry it).
    fn node(&self) -> &str;

    /// Whether this open created the store (the first start on this tree).
    fn is_new(&self) -> bool;

    /// Records where each watch root is on this node, and adopts paths a previous release
    /// stored as absolute ones under them.
    ///
    /// # Errors
    /// Database errors.
    fn register_roots(&mut self, roots: &[(String, PathBuf)]) -> Result<(), StoreError>;

    /// Applies the writes in one transaction and answers each, in order.
    ///
    /// # Errors
    /// Database errors: nothing was written.
    fn commit(&mut self, writes: &[Write]) -> Result<Vec<Answer>, StoreError>;

    /// Records the version of a file about to be renamed into place, before the rename, as an
    /// output of the job. The job's product ([`Delivered::Product`]) is also recorded as the
    /// job's own: recovery and the next attempt recognise it as published, whatever its copy
    /// had reached. A copy ([`Delivered::Copy`]) is recorded as the job's delivery too, until
    /// a product is published again. Refused with a stale token.
    ///
    /// # Errors
    /// [`StoreError::Stale`] when the claim was superseded or cancelled; database errors.
    fn publishing(
        &mut self,
        claim: Claim,
        rule: &str,
        output: &Path,
        version: FileVersion,
        what: Delivered,
    ) -> Result<(), StoreError>;

    /// The version of the product an earlier attempt of the claimed job published, and of its
    /// delivery, if one did: an attempt that finds it still in place delivers it without
    /// running the commands again (the attempt before was cut short after its publish, during
    /// its copy). A retry, or a plan that changed, forgets it.
    ///
    /// # Errors
    /// Database errors.
    fn published_product(&mut self, claim: Claim) -> Result<Option<Published>, StoreError>;

    /// Start-up: resolves this node's claims left by a previous run (published ones are done,
    /// the others queued again) and returns them for the engine to clean up.
    ///
    /// # Errors
    /// Database errors.
    fn recover(&mut self) -> Result<Vec<Abandoned>, StoreError>;

    /// Tells the store this node is alive (its claims stay leased to it) and how well it
    /// covers its tree: `health` is what is wrong (`None`: nothing), shown by `status`.
    ///
    /// # Errors
    /// Database errors.
    fn heartbeat(&mut self, health: Option<&str>) -> Result<(), StoreError>;

    /// Takes the files producers declared complete (`shotrouter notify`) since the last call,
    /// oldest first; each is returned once.
    ///
    /// # Errors
    /// Database errors.
    fn take_notices(&mut self) -> Result<Vec<RootedPath>, StoreError>;

    /// Queues again the claims of nodes whose last heartbeat is older than their lease (as
    /// they registered it, else `lease_ms`), and returns them (their attempt counts). The
    /// store's clock decides, never the caller's.
    ///
    /// # Errors
    /// Database errors.
    fn expire(&mut self, lease_ms: i64) -> Result<Vec<Abandoned>, StoreError>;

    /// Jobs queued whose cursor is past `cursor` (queued by the CLI's `retry` and `rerun`,
    /// by recovery, or by another node), oldest first; a negative `cursor` reads every queued
    /// job, the engine's own enqueues and retries included (in id order).
    ///
    /// # Errors
    /// Database errors.
    fn queued_since(&self, cursor: i64) -> Result<Vec<QueuedJob>, StoreError>;

    /// Jobs of `rules` queued under the roots this node registered last (two watchers of one
    /// root name: only its current owner), due by `now_ms` (one waiting out a retry's backoff
    /// is not waiting for a worker), oldest first, at most `limit`: the jobs a watcher reports
    /// `stuck` while they wait for workers.
    ///
    /// # Errors
    /// Database errors.
    fn queued_due(
        &self,
        rules: &[String],
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<QueuedJob>, StoreError>;

    /// Whether start-up catch-up should run `rule` on this version of `input`: new or changed
    /// since last seen, or its last job for the rule on this version failed.
    ///
    /// # Errors
    /// Database errors.
    fn wants_catch_up(
        &mut self,
        rule: &str,
        input: &RootedPath,
        version: FileVersion,
    ) -> Result<bool, StoreError>;

    /// The rule that published exactly this version of `output`, if shotrouter did.
    ///
    /// # Errors
    /// Database errors.
    fn producer(&self, output: &Path, version: FileVersion) -> Result<Option<String>, StoreError>;

    /// Claims up to `limit` queued jobs that are due, that have a plan, whose tags are all
    /// among the filter's `tags`, whose root is among its `roots` (any root when `roots` is
    /// empty) and whose rule is not among its `closed_rules` (unless marked run-now), keeping
    /// each rule's cluster-wide `concurrency`, higher priority then oldest first. Claims of
    /// other nodes are skipped, never waited for.
    ///
    /// # Errors
    /// Database errors.
    fn claim_next(
        &mut self,
        filter: &ClaimFilter,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError>;

    /// Each rule with a `window:`, and its windows as [`Write::RuleDefs`] recorded them
    /// (workers, which have no rules file, skip the jobs of rules outside them).
    ///
    /// # Errors
    /// Database errors.
    fn rule_windows(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Waits up to `timeout` for a sign that work may have become claimable (another node
    /// committed something); true when woken before the timeout. A worker calls
    /// [`JobQueue::claim_next`] after it either way: a lost sign costs at most `timeout`.
    ///
    /// # Errors
    /// Database errors.
    fn wait_for_work(&mut self, timeout: std::time::Duration) -> Result<bool, StoreError>;

    /// Of these claims, the jobs this node no longer holds: cancelled by a user, superseded by
    /// a newer version, or queued again after the node's lease expired (and perhaps claimed by
    /// another node). Whoever runs them must stop them and record nothing more.
    ///
    /// # Errors
    /// Database errors.
    fn lost_claims(&mut self, claims: &[Claim]) -> Result<Vec<JobId>, StoreError>;

    /// Queues again this node's claims of jobs not in `held` that have not started: a claim
    /// whose commit reached the store but whose answer did not (a connection lost at the
    /// commit) would otherwise stay claimed, and count against its rule's limit, while the node
    /// lives. Their attempt is given back. Returns the ids.
    ///
    /// # Errors
    /// Database errors.
    fn release_unheld(&mut self, held: &[JobId]) -> Result<Vec<JobId>, StoreError>;

    /// Records what this node does (`watcher`, `worker`, `watcher+worker`), shown by `status`,
    /// and its lease: its claims are queued again by [`JobQueue::expire`] once its last
    /// heartbeat is older than `lease_ms` (it heartbeats well within it).
    ///
    /// # Errors
    /// Database errors.
    fn register_node(
        &mut self,
        role: &str,
        lease_ms: i64,
        tags: &[String],
    ) -> Result<(), StoreError>;

    /// The nodes and rules paused: a watcher holds their jobs in its queue (claims by
    /// [`JobQueue::claim_next`] leave them out in the store).
    fn paused(&self) -> Result<Vec<super::control::PauseTarget>, StoreError>;

    /// Every job waiting for its declared inputs (read by the watcher at start).
    fn waiting_jobs(&self) -> Result<Vec<WaitingJob>, StoreError>;

    /// Every file some job's last done run read as a declared input: the watcher looks out
    /// for their new versions.
    fn declared_inputs(&self) -> Result<Vec<RootedPath>, StoreError>;
}
