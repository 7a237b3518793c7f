//! The seam between the engine and whatever runs a job: the [`Executor`] trait. The engine
//! claims a job, hands its planned attempt to an executor, and hears back through
//! [`Report`]s, in order: the run's start (with the [`RunHandle`] the store keeps with the
//! claim), its progress, its end. After a restart the node gives each handle the store recorded
//! back to its executor ([`Executor::reattach`]); `shotrouter cancel` and the API, which hold no
//! executor, stop a run from its handle alone ([`crate::exec::terminate`]).
//!
//! The local process-group pool ([`crate::exec::local`]) is the first executor; a farm
//! scheduler is another. Every executor passes the same contract suite, with real processes
//! (`tests/integration/executor.rs`).

use std::path::PathBuf;
use std::time::Duration;

use crate::exec::runner::{JobSpec, Outcome};
use crate::store::RunHandle;
use crate::store::queue::{Abandoned, Claim};

/// An executor's own number for one attempt it was handed, to cancel it by.
pub type AttemptId = u64;

/// What an executor tells the engine, in order: each step's start, then the attempt's end.
#[derive(Debug)]
pub enum Report {
    /// A step of a claimed job started as this run.
    Started {
        /// The job's claim.
        claim: Claim,
        /// The executor's handle on the attempt, to stop it if the claim turns out cancelled
        /// or stale.
        job: AttemptId,
        /// Its hidden temp output, removed at recovery if the node dies.
        temp_output: Option<PathBuf>,
        /// The run, recorded with the claim: stopped or re-attached to after a crash.
        run: Option<RunHandle>,
    },
    /// An ffmpeg step of a running job reported how far it got (`progress: ffmpeg`).
    Progress {
        /// The job's id (as in its spec).
        id: String,
        /// How far it got.
        progress: crate::exec::progress::StepProgress,
    },
    /// An attempt ended.
    Finished(Box<Finished>),
}

/// A finished attempt, sent back to the engine.
#[derive(Debug)]
pub struct Finished {
    /// What ran.
    pub spec: JobSpec,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it ran.
    pub duration: Duration,
    /// What it used: its declared inputs' versions when it started, its programs.
    pub facts: crate::exec::lineage::RunFacts,
}

/// What became of a run a previous life of this node recorded, once handed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reattach {
    /// Nothing of the run is left to follow (a local process group cannot be waited for by
    /// a new daemon: its exit status went with the old one). Whatever still ran of it was
    /// stopped, this many processes; the store has queued the job again.
    Stopped {
        /// Processes signalled.
        processes: usize,
    },
    /// The run goes on elsewhere (a farm task) and is followed: when the store queues its job
    /// again and this node claims it, the executor adopts the run instead of starting a new
    /// one, and publishes what it makes. Its temp output must not be swept.
    Following,
    /// Another executor made this run; this one leaves it alone.
    NotMine,
}

/// Runs claimed jobs. Reports go to the channel the executor was built with.
///
/// The contract (checked for every executor by `tests/integration/executor.rs`): a submitted attempt
/// reports `Started` with a handle before its commands run and exactly one `Finished`; a
/// command's failure, a timeout and a cancel are outcomes, never errors; a cancelled or
/// timed-out run leaves no process behind; an attempt whose claim is stale publishes nothing;
/// a handle from a node that was SIGKILLed is stopped by [`Executor::reattach`] on the next.
pub trait Executor: Send {
    /// Runs a claimed attempt as soon as the executor has room.
    fn submit(&self, spec: JobSpec);

    /// How many attempts may run at once (after a rules reload).
    fn set_limit(&mut self, limit: usize);

    /// Attempts handed over and not started yet.
    fn waiting(&self) -> usize;

    /// Attempts running.
    fn running(&self) -> usize;

    /// Takes back every attempt not yet started.
    fn drain_queued(&self) -> Vec<JobSpec>;

    /// Stops one attempt (a user cancelled it, or its claim was superseded); its end is
    /// reported as usual.
    fn cancel(&self, attempt: AttemptId);

    /// Stops every running attempt: asks now, forces after `kill_after`.
    fn cancel_running(&self, kill_after: Duration);

    /// At a stop: lets go of the runs that go on without this node (farm tasks), so they are
    /// neither waited for nor cancelled; their claims stay recorded and the next start follows
    /// them ([`Reattach::Following`]). No end is reported for them. Answers how many.
    fn leave_running(&self) -> usize {
        0
    }

    /// Takes back the run of a claim that a previous life of this node left (see
    /// [`Reattach`]); `job.run` is the run.
    fn reattach(&self, job: &Abandoned) -> Reattach;

    /// Stops the executor once idle; a run still going (stuck in the kernel) is left for the
    /// next start to recover.
    fn shutdown(self: Box<Self>);
}
