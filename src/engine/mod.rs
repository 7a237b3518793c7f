//! The routing engine: file events in, settled and gathered into jobs, claimed in the store and
//! handed to the workers, outcomes recorded. One thread owns all routing state; sources,
//! workers, signals and the rules-file watch talk to it over channels. Only the engine reads
//! the clock.
//!
//! Split by concept, each file an `impl Engine` block: [`intake`] (events, settling, scans,
//! catch-up), [`sequences`] (frames gathered into sequences), [`dispatch`] (planning, the fair
//! queue, claims), [`outcomes`] (ends of attempts, retries, backoff), [`lifecycle`] (start,
//! the loop, reload, shutdown), [`retention`] (old job logs deleted, on a thread of its own), [`outbox`] (the writes of one burst of work, committed at once), [`notify`] (when `notify:`
//! targets are told)
//! and [`telemetry`] (a snapshot anyone may read without the database).

pub mod dispatch;
pub mod fair_queue;
pub mod intake;
pub mod ledger;
pub mod lifecycle;
mod liveness;
pub mod mounts;
pub mod notify;
pub mod outbox;
pub mod outcomes;
mod reattach;
pub mod reload;
pub mod retention;
pub mod sequencer;
pub mod sequences;
pub mod settle;
pub mod stored_plan;
pub mod telemetry;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::exec::executor::Executor;
use crate::exec::provenance::Provenance;
use crate::route::matcher::{RuleSet, Scratch};
use crate::store::JobId;
use crate::store::queue::{JobQueue, RootedPath};

pub use lifecycle::run;

use fair_queue::FairQueue;
use intake::Intake;
use ledger::Ledger;
use outbox::Outbox;
use sequencer::Sequencer;
use telemetry::{Counters, TelemetryHandle};

/// How the engine is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The rules file.
    pub rules_path: PathBuf,
    /// Process what is there, then exit.
    pub once: bool,
    /// Time running jobs get after SIGINT/SIGTERM.
    pub grace: Duration,
    /// Where job logs and the job store go.
    pub state_dir: PathBuf,
    /// Whether jobs are recorded in the store (off only for throwaway runs and benchmarks).
    pub store: bool,
    /// Where the store is: the SQLite store in `state_dir`, or a shared PostgreSQL database.
    pub location: crate::store::Location,
    /// Watch and enqueue only (`watch --no-run`): workers run every job.
    pub no_run: bool,
    /// Job logs older than this are deleted at start and hourly ([`retention`]); `None` keeps
    /// them forever.
    pub keep_logs: Option<Duration>,
    /// `--once`'s progress bar, made by the caller so its log can keep the bar below its lines;
    /// `None` draws none.
    pub progress: Option<ProgressBar>,
    /// Where the engine publishes its telemetry snapshot; the caller keeps a clone to read it
    /// (metrics, an HTTP server).
    pub telemetry: TelemetryHandle,
}

/// How often the store is asked for jobs queued by someone else (`retry`, `rerun`): queued
/// work from the CLI starts within this time.
const STORE_POLL: Duration = Duration::from_millis(500);

/// A node whose heartbeat is older than this loses its claims: any other node queues them
/// again (three missed heartbeats of a watcher, six of a worker).
const LEASE: Duration = Duration::from_secs(30);

/// How often this node tells the store it is alive.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// The engine's state; see the module docs for which file owns which part.
pub struct Engine {
    options: Options,
    set: Arc<RuleSet>,
    ledger: Ledger,
    provenance: Arc<Provenance>,
    intake: Intake,
    sequences: Sequencer,
    queue: FairQueue,
    executor: Box<dyn Executor>,
    /// The job store, when jobs are recorded.
    store: Option<Box<dyn JobQueue>>,
    outbox: Outbox,
    counters: Counters,
    /// Jobs in workers' hands, for the telemetry snapshot.
    active: std::collections::BTreeMap<String, telemetry::ActiveJob>,
    telemetry: TelemetryHandle,
    /// Histograms of attempt, commit and poll-pass durations, for the telemetry snapshot.
    timings: telemetry::Timings,
    /// When a busy engine next publishes its telemetry.
    next_telemetry: Instant,
    /// Whether the snapshot lags behind (a publish was skipped): due at `next_telemetry`.
    telemetry_stale: bool,
    /// This node's name in the store.
    node: String,
    started_at_ms: i64,
    /// When a commit that failed is tried again (the database is waited for, never skipped).
    commit_retry: Option<Instant>,
    /// How long attempts take, on average lately: how far ahead to claim.
    typical_attempt: Option<Duration>,
    run_tag: String,
    next_job: u64,
    /// Jobs planned whose last attempt has not finished.
    outstanding: usize,
    /// Store jobs this engine holds (waiting, claimed or running): not resumed twice.
    known: HashSet<JobId>,
    /// The executor's handle on each running attempt and its claim, by job: to stop one the store
    /// superseded, or one cancelled or taken over from another machine.
    attempts: HashMap<JobId, (u64, crate::store::queue::Claim)>,
    /// This node's heartbeat, lost claims and self-fencing, as on a worker.
    liveness: liveness::Liveness,
    /// When each running attempt's progress was last written to the store.
    progress_written: HashMap<JobId, outcomes::Written>,
    /// The mounts of the roots and output folders, recorded in each job's stored plan.
    mounts: mounts::MountCache,
    /// What the sources say is wrong with their coverage, per topic (see
    /// [`SourceEvent::Health`](crate::source::SourceEvent::Health)).
    health: std::collections::BTreeMap<&'static str, String>,
    /// Where the poll for jobs queued by someone else stands.
    cursor: i64,
    next_poll: Instant,
    /// Whether this start records a baseline instead of catching up.
    first_start: bool,
    /// Whether this run began as a first start: a root first listed after the initial scan
    /// (a share that was down) is then a baseline too, not a flood of catch-up work.
    began_first: bool,
    /// Files of the initial scan not yet handed to the outbox as baseline (in chunks of
    /// [`intake::BASELINE_CHUNK`], so a tree of millions never sits in memory at once).
    baseline: Vec<(RootedPath, crate::os::version::FileVersion)>,
    /// Files recorded as the baseline so far.
    baselined: usize,
    /// Whether every source has reported its initial scan (idle is reported only after).
    initial_done: bool,
    scratch: Scratch,
    routed: Vec<usize>,
    progress: Option<ProgressBar>,
    /// Delivers `notify:` notifications on its own thread.
    notifier: crate::exec::notifier::Notifier,
    /// Queued jobs watched for `stuck` notifications.
    stuck: notify::StuckWatch,
    /// systemd's notify socket, when the daemon runs under `Type=notify`.
    sd: Option<crate::os::sd_notify::SdNotify>,
    /// When the next `WATCHDOG=1` is due, when systemd asks for pings.
    next_watchdog: Option<Instant>,
    /// Whether work was pending at the last check, to log the moment the queue drains.
    busy: bool,
    /// Set at SIGINT/SIGTERM: nothing more is handed to a worker; claims granted meanwhile are
    /// given back (queued for the next start).
    stopping: bool,
}

impl Engine {
    /// The store's name for a path under watch root `root`.
    fn rooted(&self, root: usize, rel: &std::path::Path) -> RootedPath {
        RootedPath {
            root: self.set.file.watch[root].name.clone(),
            rel: rel.to_path_buf(),
        }
    }

    /// The earliest moment something is due: a settle, a scanned file, a sequence, a retry,
    /// the store poll, the heartbeat or systemd's watchdog ping.
    fn next_deadline(&self) -> Option<Instant> {
        let store = self
            .store
            .as_ref()
            .map(|_| self.next_poll.min(self.liveness.next_beat()));
        [
            self.intake.next_deadline(),
            self.sequences.next_deadline(),
            self.queue.next_delayed(),
            store,
            self.next_watchdog,
            self.stuck
                .next_check
                .filter(|_| !self.queue.is_empty() || !self.active.is_empty()),
            self.telemetry_stale.then_some(self.next_telemetry),
            // While a failed commit waits for its retry, the outbox's own window is moot.
            self.commit_retry.or(self.outbox.due()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn is_idle(&self) -> bool {
        self.outstanding == 0
            && self.intake.is_empty()
            && self.sequences.is_empty()
            && self.outbox.is_empty()
    }
}
