//! The engine's side of the store: a durable job queue with claims and fencing tokens.
//!
//! The engine never drives transactions by hand: it collects the writes of one burst of work in
//! an outbox and hands them to [`JobQueue::commit`], which applies them in one transaction and
//! answers each in order (group commit: one commit for many jobs). A job is claimed *before*
//! anything is spawned; the claim carries a fencing token that every later write for the job
//! presents, and a write with a stale token is refused ([`Answer::Stale`]): another claim
//! superseded it, so whoever made it must stop (the engine kills that attempt's process group).
//! The store itself kills nothing and deletes nothing: it returns what the engine must clean up.

use std::path::{Path, PathBuf};

use crate::os::version::FileVersion;
use crate::store::RunHandle;

use super::{JobId, StoreError};

pub use super::job::{Claim, ClaimedJob, NewJob, RootedPath};
pub use super::write::{DECLINE_MS, Delivered, Ending, Published, RuleDef, Write};

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
