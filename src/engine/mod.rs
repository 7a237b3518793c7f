//! The routing engine: file events in, settled and gathered into jobs, claimed in the store and
//! handed to the workers, outcomes recorded. One thread owns all routing state; sources,
//! workers, signals and the rules-file watch talk to it over channels. Only the engine reads
//! the clock.
//!
//! What every node that runs jobs does the same way, the watcher and `shotrouter worker` alike,
//! is [`node`]: the loop, the committer (the writes of one burst, committed at once), liveness
//! (heartbeat, leases, lost claims), start-up recovery. The watcher's engine and the
//! [`worker`] are the loop's two roles, side by side.
//!
//! The watcher's engine is split by concept, each file an `impl Engine` block: [`intake`]
//! (events, settling, scans, catch-up), [`sequences`] (frames gathered into sequences),
//! [`dispatch`] (planning, claims; the [`fair_queue`] in a file of its own), [`outcomes`] (ends
//! of attempts, retries, backoff), [`lifecycle`] (start, its role in the node loop, reload),
//! [`retention`] (old job logs deleted, on a thread of its own), [`notify`] (when `notify:`
//! targets are told), [`lineage`] (when OpenLineage run events are sent), [`telemetry`] (a
//! snapshot anyone may read without the database),
//! [`cuts`] (every shot's latest cut ranges, which a rule's `frames:` routes by), [`cut_files`]
//! (cut files dropped into the tree imported, `extended` told), [`outside_cut`] (frames
//! outside the cut told once per shot), [`waste`] (what lies on disk outside each cut,
//! worked out for the dashboard by [`waste_watch`] on a thread of its own) and [`conform`]
//! (the `conform:` block's sequence review, conformed again as a job when its shots change).

pub mod arrivals;
pub mod attempts;
pub mod conform;
mod control;
pub mod cut_files;
pub mod cuts;
pub mod dispatch;
pub mod fair_queue;
pub mod inputs;
pub mod intake;
pub mod ledger;
pub mod lifecycle;
pub mod lineage;
pub mod mounts;
pub mod node;
pub mod notify;
pub mod outcomes;
pub mod outside_cut;
pub mod planned;
pub mod reload;
pub mod retention;
pub mod sequencer;
pub mod sequences;
pub mod settle;
pub mod stored_plan;
pub mod stuck;
pub mod systemd;
pub mod telemetry;
pub mod waste;
pub mod waste_watch;
mod windows;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::exec::provenance::Provenance;
use crate::route::matcher::RuleSet;
use crate::store::queue::RootedPath;

use sequencer::Sequencer;
use telemetry::TelemetryHandle;

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

/// How often this node tells the store it is alive, at most.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// The engine's state; see the module docs for which file owns which part.
pub struct Engine {
    options: Options,
    set: Arc<RuleSet>,
    provenance: Arc<Provenance>,
    /// Files settling, scans, the baseline of a first start, the sources' health.
    arrivals: arrivals::Arrivals,
    /// Frames gathered into sequences.
    sequences: Sequencer,
    /// Every shot's latest cut ranges, refreshed at the store poll when a revision arrives.
    cuts: cuts::Cuts,
    /// The `cuts.files` glob cut files arrive by.
    cut_files: cut_files::CutFiles,
    /// Frames outside the cut, gathered per shot for one `outside_cut` notice.
    outside: outside_cut::OutsideWatch,
    /// The cuts as `conform:` sees them, and the conforms waiting for their settle.
    conforms: conform::Conforms,
    /// The fair queue, planned and held jobs, the look for work queued by others.
    planned: planned::Planned,
    /// Jobs waiting for their declared inputs, and the inputs jobs have read.
    inputs: inputs::InputWatch,
    /// The attempts running, with their claims.
    attempts: attempts::Attempts,
    /// The executor, the store (`None`: jobs are not recorded), the committer, liveness and the
    /// notifier: what the watcher shares with workers.
    node: node::Node,
    /// The file sources, until a stop closes them.
    sources: Option<crate::source::Sources>,
    /// Where routed products go back in as events (`--once` has no watcher to see them land).
    feedback: crossbeam_channel::Sender<crate::source::SourceEvent>,
    /// Counts, jobs in hand, timings and the published snapshot.
    readout: telemetry::Readout,
    /// Queued jobs watched for `stuck` notifications.
    stuck: stuck::StuckWatch,
    /// systemd's notify socket and watchdog.
    systemd: systemd::Systemd,
}

impl Engine {
    /// The store's name for a path under watch root `root`.
    fn rooted(&self, root: usize, rel: &std::path::Path) -> RootedPath {
        RootedPath {
            root: self.set.file.watch[root].name.clone(),
            rel: rel.to_path_buf(),
        }
    }

    /// The earliest moment something of the watcher's is due: a settle, a scanned file, a
    /// sequence, a retry, the store poll, a stuck check, telemetry or systemd's watchdog ping
    /// (the node loop adds its own: heartbeat, lost claims, the commit).
    fn next_deadline(&self) -> Option<Instant> {
        let store = self.node.store.as_ref().map(|_| self.planned.next_poll);
        // Windows open by the clock alone: without a store's poll nothing else would wake us.
        let windows = self
            .set
            .file
            .rules
            .iter()
            .any(|r| !r.windows.is_empty())
            .then_some(self.planned.next_window_check);
        [
            windows,
            self.arrivals.next_deadline(),
            self.sequences.next_deadline(),
            self.planned.queue.next_delayed(),
            self.conforms.next_deadline(),
            store,
            self.systemd.next_ping(),
            self.stuck
                .next_check
                .filter(|_| !self.planned.queue.is_empty() || !self.readout.active.is_empty()),
            self.readout.stale.then_some(self.readout.next_publish),
            self.outside.next_deadline(),
            self.inputs.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn is_idle(&self) -> bool {
        self.planned.outstanding == 0 && self.has_nothing_but_jobs()
    }

    /// No file to route, sequence to gather, conform due or write to commit.
    fn has_nothing_but_jobs(&self) -> bool {
        self.arrivals.is_empty()
            && self.sequences.is_empty()
            && self.conforms.next_deadline().is_none()
            && self.node.committer.is_empty()
    }

    /// Whether every job left waits only for a resume or for its rule's window, the window's
    /// reason recorded: `watch --once` ends then, and leaves them queued in the store.
    fn only_held_left(&self) -> bool {
        let queue = &self.planned.queue;
        let held: usize = queue.held().iter().map(|(_, _, n)| n).sum();
        let unmarked = queue.waiting_ids().any(|(id, rule, run_now)| {
            !run_now && queue.is_closed(rule) && !self.planned.held_for_window.contains(&id)
        });
        held > 0 && held == self.planned.outstanding && !unmarked && self.has_nothing_but_jobs()
    }
}
