//! `shotrouter worker`: a node that runs jobs other nodes' watchers queued, with no rules file
//! and no watcher. It claims due jobs it may run (its `--tags`, each rule's cluster-wide
//! `concurrency`, the rule's `window:` by this node's clock: `windows`) when it has a free slot, runs them through the same executor, runner, verification
//! and publish as `watch`, and records each end with its claim's fencing token; its jobs'
//! progress and `notify:` go where a watcher's would (`report`), and so do their OpenLineage
//! events, from what each plan carries.
//!
//! Its claims are leased while it heartbeats: a worker that dies or stalls past the lease has
//! its jobs queued again by any other node (the attempt counted), and when it comes back its
//! writes are refused and the attempts it still runs are killed (it asks the store which claims
//! it lost every second). A store that cannot be reached is retried with backoff; jobs running
//! keep running and their ends wait in memory until the store answers.

mod drain;
pub mod plan;
mod report;
mod windows;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded, never, unbounded};

use crate::deliver::DeliverError;
use crate::error::Error;
use crate::exec::executor::{AttemptId, Executor, Finished, Report};
use crate::exec::local::QueueFactory;
use crate::exec::openlineage::LineageRun;
use crate::exec::provenance::Provenance;
use crate::exec::runner::{Failure, JobSpec, Outcome};
use crate::rules::{NotifyEvent, NotifyTarget};
use crate::store::queue::{Answer, Claim, ClaimFilter, Ending, JobQueue, Write};
use crate::store::{JobId, StoreError};

use super::node::liveness::Liveness;
use super::node::outbox::Then;
use super::node::{Node, Role};
use plan::{PathMap, Retries};

/// Most time between two heartbeats (and looks for other nodes' expired leases); a short
/// `--lease` heartbeats at a third of it.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Longest it waits between two looks for work when no sign of new work arrives.
const IDLE_POLL: Duration = Duration::from_secs(2);

/// Longest wait between two attempts to reach a store that is not there yet at start.
const MAX_RECONNECT: Duration = Duration::from_secs(10);

/// How many times a node declines one job before it fails it.
const MAX_DECLINES: u32 = 6;

/// How often a worker claims from every root, to learn roots it has not seen in a plan yet.
const ROOT_DISCOVERY: Duration = Duration::from_secs(30);

/// How a worker is run.
#[derive(Clone)]
pub struct WorkerOptions {
    /// Opens a connection to the shared store for this node.
    pub store: QueueFactory,
    /// This node's name (unique in the cluster).
    pub node: String,
    /// Where job logs and sequence views go on this machine.
    pub state_dir: std::path::PathBuf,
    /// Jobs at once on this node.
    pub jobs: usize,
    /// Where the watchers' trees are mounted here.
    pub map: PathMap,
    /// The tags this node holds.
    pub tags: Vec<String>,
    /// Time running jobs get after SIGINT/SIGTERM.
    pub grace: Duration,
    /// A node silent for this long loses its claims to the others.
    pub lease: Duration,
}

/// A claim this node holds.
struct Held {
    claim: Claim,
    /// The executor's handle on the attempt, once a step started.
    job: Option<u64>,
    retries: Retries,
    /// The rule's `notify:` targets, from the job's plan.
    notify: Vec<Arc<NotifyTarget>>,
    /// When its first step started, unix ms.
    started_at_ms: Option<i64>,
    /// Its OpenLineage run, when the plan sends events.
    lineage: Option<LineageRun>,
    /// When its progress was last written to the store, and at which frame.
    progress_written: Option<(Instant, u64)>,
    /// Its declared inputs as the watcher planned them (the store's names for them; this node
    /// looks at its own mounts of them).
    planned_inputs: Vec<PathBuf>,
}

/// The worker's role in the node loop: claims from the store, ends recorded there.
struct Worker {
    options: WorkerOptions,
    /// The executor, the store (reopened when it went away), the committer, liveness and the
    /// notifier: what a worker shares with watchers.
    node: Node,
    /// Claims this node holds.
    held: HashMap<JobId, Held>,
    /// How often this node declined each job (it fails a job it keeps declining).
    declined: HashMap<JobId, u32>,
    /// The watchers' roots seen in plans, and whether this node can map each.
    roots: HashMap<String, bool>,
    /// When a claim last looked at every root (to learn roots it has not seen yet).
    next_unfiltered: Instant,
    /// When to look for work again though no sign of it came.
    next_look: Instant,
    /// SIGUSR1: claim nothing more, exit once the held jobs have ended.
    drain: drain::Drain,
    /// The rules' windows: their jobs are not claimed outside them.
    windows: windows::RuleWindows,
}

/// Runs `shotrouter worker` until SIGINT/SIGTERM, or until drained after SIGUSR1.
///
/// # Errors
/// A store that cannot be opened at start (exit 2) or signal set-up failures.
pub fn run(options: WorkerOptions) -> Result<ExitCode, Error> {
    crate::os::program::become_subreaper();
    let signals = super::lifecycle::signal_channel()?;
    let drain = drain::Drain::listen()?;
    let Some(mut store) = first_connection(&options.store, &signals)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let role = "worker";
    store
        .register_node(role, options.lease.as_millis() as i64, &options.tags)
        .map_err(Error::setup)?;
    let (done_tx, done_rx) = unbounded();
    let executor: Box<dyn Executor> = Box::new(crate::exec::by_plan::ByPlan::new(
        options.jobs,
        Arc::new(Provenance::default()),
        Some(options.store.clone()),
        done_tx,
    ));
    let abandoned = store.recover().map_err(Error::failed)?;
    super::node::reattach::reattach_abandoned(&*executor, &abandoned, "this worker's previous end");
    let wake = waker(options.store.clone());
    tracing::info!(node = %options.node, jobs = options.jobs, tags = %options.tags.join(","), "worker started");
    let node = Node::new(
        options.node.clone(),
        executor,
        Some(store),
        Liveness::new(options.lease, HEARTBEAT),
        options.grace,
    )
    .reconnecting(options.store.clone());
    let worker = Worker {
        options,
        node,
        held: HashMap::new(),
        declined: HashMap::new(),
        roots: HashMap::new(),
        next_unfiltered: Instant::now(),
        next_look: Instant::now(),
        drain,
        windows: windows::RuleWindows::new(),
    };
    super::node::run(worker, &never::<()>(), &wake, &done_rx, &signals, IDLE_POLL)
}

/// The store at start: a store that is not there yet (its watcher has not created it, the
/// database is restarting) is waited for, with backoff; one that can never work (a newer
/// schema, a foreign file) is an error. `None` when stopped while waiting.
fn first_connection(
    open: &QueueFactory,
    signals: &Receiver<i32>,
) -> Result<Option<Box<dyn JobQueue>>, Error> {
    let mut wait = Duration::from_millis(200);
    loop {
        match open() {
            Ok(store) => return Ok(Some(store)),
            Err(e @ (StoreError::TooNew { .. } | StoreError::Foreign { .. })) => {
                return Err(Error::Config(e.to_string()));
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "store not reachable yet; waiting for it");
            }
        }
        if signals.recv_timeout(wait).is_ok() {
            return Ok(None);
        }
        wait = (wait * 2).min(MAX_RECONNECT);
    }
}

/// A thread that waits on the store for signs of new work (PostgreSQL's LISTEN) and passes
/// them on; it reconnects by itself when its connection fails.
fn waker(open: QueueFactory) -> Receiver<()> {
    let (tx, rx) = bounded(1);
    let _ = std::thread::Builder::new()
        .name("work-signals".into())
        .spawn(move || {
            loop {
                let Ok(mut store) = open() else {
                    std::thread::sleep(MAX_RECONNECT);
                    continue;
                };
                loop {
                    match store.wait_for_work(IDLE_POLL) {
                        Ok(true) => {
                            if tx.try_send(()).is_err() && tx.is_empty() {
                                return;
                            }
                        }
                        Ok(false) => {}
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    rx
}

impl Role for Worker {
    type Event = ();

    fn node(&mut self) -> &mut Node {
        &mut self.node
    }

    fn node_ref(&self) -> &Node {
        &self.node
    }

    fn on_event(&mut self, _event: ()) {}

    /// The store says work may be waiting: the turn's fill looks.
    fn on_nudge(&mut self) -> Result<(), Error> {
        self.next_look = Instant::now();
        Ok(())
    }

    fn on_report(&mut self, report: Report) {
        Worker::on_report(self, report);
    }

    fn on_answer(&mut self, then: Then, answer: Answer) {
        match then {
            Then::Started(job) => {
                super::node::liveness::on_started(&*self.node.executor, job, &answer);
            }
            Then::Ended(_, tellings) => {
                super::node::telling::tell_after_end(tellings, &answer, &self.node.notifier);
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, _now: Instant, _quiet: bool) {}

    fn fill(&mut self, now: Instant) {
        Worker::fill(self, now);
    }

    fn next_deadline(&self) -> Option<Instant> {
        Some(self.next_look)
    }

    fn held(&self) -> Vec<(JobId, Option<(AttemptId, Claim)>)> {
        self.held
            .iter()
            .map(|(id, h)| (*id, h.job.map(|job| (job, h.claim))))
            .collect()
    }

    /// Ends are committed at once while a slot is free: the next claim waits for them (the
    /// rule's cluster-wide `concurrency` counts them until then).
    fn wants_commit(&self) -> bool {
        self.held.len() < self.options.jobs
    }

    fn begin_stop(&mut self) {}

    /// A worker's stop is often for good (a drain before maintenance, a machine leaving the
    /// farm): its farm tasks are cancelled with its local attempts, and their jobs queued again
    /// for another node at once, rather than wait out its lease.
    fn leaves_farm_tasks(&self) -> bool {
        false
    }

    fn after_turn(&mut self, _now: Instant, _quiet: bool) {}

    /// Drained: asked to (SIGUSR1), and nothing held or left to write.
    fn finished(&self, _quiet: bool) -> bool {
        self.drain.is_asked() && self.held.is_empty() && self.node.committer.is_empty()
    }

    fn finish(&mut self, _stopped: bool) -> ExitCode {
        tracing::info!("worker stopped");
        ExitCode::SUCCESS
    }

    fn into_node(self) -> Node {
        self.node
    }
}

impl Worker {
    /// Claims as many jobs as there are free slots, and hands them to the executor.
    fn fill(&mut self, now: Instant) {
        if self.node.stopping
            || !self.node.committer.is_empty()
            || self.drain.draining(self.held.len())
        {
            return;
        }
        let free = self.options.jobs.saturating_sub(self.held.len());
        if free == 0 {
            return;
        }
        self.next_look = now + IDLE_POLL;
        let tags = self.options.tags.clone();
        let roots = self.claimable_roots();
        let Some(store) = self.node.store() else {
            return;
        };
        let closed_rules = match self.windows.closed(&**store, now) {
            Ok(closed) => closed,
            Err(e) => return self.node.lose_store(&e),
        };
        let filter = ClaimFilter {
            tags,
            roots,
            closed_rules,
        };
        let claimed = match store.claim_next(&filter, free) {
            Ok(claimed) => claimed,
            Err(e) => return self.node.lose_store(&e),
        };
        for job in claimed {
            self.learn_roots(&job.plan);
            match plan::job_spec(&job, &self.options.map, &self.options.state_dir) {
                Ok((spec, retries, notify)) => {
                    tracing::info!(job = job.claim.id, rule = %job.rule, path = %spec.path.display(), attempt = job.claim.attempt, "claimed");
                    self.declined.remove(&job.claim.id);
                    if spec.plan.steps != job.steps {
                        let steps = spec.plan.steps.clone();
                        let ran = Write::Ran {
                            claim: job.claim,
                            steps,
                        };
                        self.node.committer.push(ran, Then::Nothing);
                    }
                    self.held.insert(
                        job.claim.id,
                        Held {
                            claim: job.claim,
                            job: None,
                            retries,
                            notify,
                            started_at_ms: None,
                            progress_written: None,
                            planned_inputs: plan::planned_inputs(&job),
                            lineage: LineageRun::of(&spec),
                        },
                    );
                    self.node.executor.submit(spec);
                }
                Err(reason) => self.decline(job.claim, &job.rule, reason),
            }
        }
    }

    /// Leaves a job this node cannot run to another node; one it has declined
    /// [`MAX_DECLINES`] times (its input missing here for a minute, a plan it cannot read)
    /// fails, with the reason, rather than go round for ever.
    fn decline(&mut self, claim: Claim, rule: &str, reason: String) {
        let count = self.declined.entry(claim.id).or_default();
        *count += 1;
        let ending = if *count >= MAX_DECLINES {
            tracing::error!(job = claim.id, rule, %reason, declines = *count, "failed: this node declined it too often");
            self.declined.remove(&claim.id);
            Ending::Failed {
                reason: format!(
                    "{reason} (declined {MAX_DECLINES} times by node {})",
                    self.options.node
                ),
            }
        } else {
            tracing::warn!(job = claim.id, rule, %reason, "declined: left to another node");
            Ending::Declined { reason }
        };
        self.node
            .committer
            .push(Write::Finish { claim, ending }, Then::Nothing);
    }

    /// The roots to claim jobs of: those seen in plans that this node can map, except every
    /// [`ROOT_DISCOVERY`], when a claim looks at every root to learn new ones (empty: any).
    fn claimable_roots(&mut self) -> Vec<String> {
        let now = Instant::now();
        if self.roots.is_empty() || now >= self.next_unfiltered {
            self.next_unfiltered = now + ROOT_DISCOVERY;
            return Vec::new();
        }
        let mappable: Vec<String> = self
            .roots
            .iter()
            .filter(|(_, ok)| **ok)
            .map(|(name, _)| name.clone())
            .collect();
        if mappable.is_empty() {
            // No root this node can map: nothing to claim until the next discovery.
            vec![String::from("\0no root")]
        } else {
            mappable
        }
    }

    /// Notes the watcher's roots a job's plan names, and whether this node maps each.
    fn learn_roots(&mut self, text: &str) {
        if let Ok(plan) = super::stored_plan::StoredPlan::from_text(text, &[]) {
            for (name, mappable) in self.options.map.mappable_roots(&plan) {
                self.roots.insert(name, mappable);
            }
        }
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Started {
                claim,
                job,
                temp_output,
                run,
            } => {
                if let Some(held) = self.held.get_mut(&claim.id) {
                    held.job = Some(job);
                    held.started_at_ms.get_or_insert_with(crate::store::now_ms);
                    if let Some(run) = held.lineage.as_mut() {
                        self.node.lineage.start(run);
                    }
                }
                self.node.committer.push(
                    Write::Started {
                        claim,
                        run,
                        temp_output,
                    },
                    Then::Started(job),
                );
            }
            Report::Progress { id, progress } => self.on_progress(&id, progress),
            Report::Finished(finished) => self.on_finished(*finished),
        }
    }

    fn on_finished(&mut self, finished: Finished) {
        let Finished {
            spec,
            outcome,
            duration,
            facts,
        } = finished;
        let Some(claim) = spec.claim else { return };
        let mut held = self.held.remove(&claim.id);
        let retries = held.as_ref().map(|h| h.retries);
        let run = held.as_mut().and_then(|h| h.lineage.take());
        if let Some(run) = run.or_else(|| LineageRun::of(&spec)) {
            let stopping = self.node.stopping;
            self.node.lineage.end(run, &outcome, duration, stopping);
        }
        let ms = duration.as_millis() as u64;
        let mut tellings = Vec::new();
        let mut tell = |event: NotifyEvent, reason: Option<String>| {
            if let Some(held) = &held {
                tellings.extend(self.telling(held, &spec, event, reason, duration));
            }
        };
        if let Outcome::Failed(failure @ Failure::Deliver(DeliverError::Verify(_))) = &outcome {
            tell(NotifyEvent::VerifyFailed, Some(failure.to_string()));
        }
        let ending = match outcome {
            Outcome::Succeeded { .. } => {
                tracing::info!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), status = "ok", duration_ms = ms, "end");
                tell(NotifyEvent::Done, None);
                if let Some(held) = &held {
                    let used = facts.to_use(&held.planned_inputs, &spec.plan.work_hash);
                    self.node.committer.push(
                        Write::Used {
                            claim,
                            used: Box::new(used),
                        },
                        Then::Nothing,
                    );
                }
                Ending::Done
            }
            Outcome::Failed(failure) => {
                let reason = failure.to_string();
                tracing::warn!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), status = %reason, duration_ms = ms, attempt = spec.attempt, log = %spec.log_path.display(), "end");
                let ending = retry_or_fail(&spec, retries, reason, self.node.stopping);
                if let Ending::Failed { reason } = &ending {
                    tell(NotifyEvent::Failed, Some(reason.clone()));
                }
                ending
            }
            Outcome::Cancelled if self.node.stopping => Ending::Interrupted,
            Outcome::Cancelled => {
                tell(NotifyEvent::Failed, Some("cancelled".into()));
                Ending::Cancelled
            }
        };
        self.node.committer.push(
            Write::Finish { claim, ending },
            Then::Ended(Box::new(spec), tellings),
        );
    }
}

/// A failed attempt's end: queued again after an exponential backoff while the job's plan
/// allows retries, failed for good after that.
fn retry_or_fail(
    spec: &JobSpec,
    retries: Option<Retries>,
    reason: String,
    stopping: bool,
) -> Ending {
    let Some(retries) = retries.filter(|r| spec.attempt <= r.retries) else {
        return Ending::Failed { reason };
    };
    let delay = if stopping {
        Duration::ZERO
    } else {
        super::node::pacing::retry_delay(retries.backoff, spec.attempt)
    };
    Ending::Retry {
        reason,
        not_before: crate::store::now_ms() + delay.as_millis() as i64,
    }
}
