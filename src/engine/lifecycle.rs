//! Start, the loop, reload and stop.
//!
//! Start-up first cleans up after a previous run of this node that died (its claims are
//! resolved in the store; their process groups, if provably ours, are killed and temp outputs
//! removed), resumes the queued jobs, then catches up with files that arrived or changed while
//! it was down. The loop handles a burst of messages, fires what is due, takes free slots, and
//! commits the burst's writes at once. SIGINT/SIGTERM stop intake, give running jobs `--grace`,
//! then kill them; jobs cut short are queued again for the next start.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select, unbounded};

use crate::error::Error;
use crate::exec::executor::{Executor, Report};
use crate::exec::local::QueueFactory;
use crate::exec::provenance::Provenance;
use crate::os::owner_lock::{LockError, OwnerLock};
use crate::route::matcher::{RuleSet, Scratch};
use crate::rules;
use crate::source::{SourceEvent, Sources, WatchConfig};
use crate::store::queue::JobQueue;

use super::dispatch::{roots_of, rule_limits};
use super::fair_queue::FairQueue;
use super::outbox::{self, Then};
use super::{Engine, HEARTBEAT, Options, STORE_POLL};

/// Most messages handled in one burst before its writes are committed (group commit).
const BATCH: usize = 64;

/// Most writes one commit carries before it is made at once.
const MAX_OUTBOX: usize = 4096;

/// How long to wait before trying a failed commit again.
const COMMIT_RETRY: Duration = Duration::from_secs(1);

/// At a stop, how long a job's group has between the SIGTERM that ends its grace and SIGKILL.
/// The grace was its time to finish; the whole stop must end within `--grace` plus a second.
const STOP_KILL_AFTER: Duration = Duration::from_millis(400);

/// At a stop, how long after the grace the daemon waits for killed jobs to report before it
/// records what it has and exits (the rest is recovered at the next start).
const STOP_REPORT_WAIT: Duration = Duration::from_millis(700);

/// At exit, how long notifications still waiting may take to be delivered.
const NOTIFY_GRACE: Duration = Duration::from_secs(2);

/// Runs `shotrouter watch`.
///
/// # Errors
/// Invalid rules (exit 2), an unusable store or watch limits (exit 2), or signal set-up
/// failures (exit 1).
pub fn run(options: Options) -> Result<ExitCode, Error> {
    crate::os::program::become_subreaper();
    let set = Arc::new(RuleSet::compile(rules::load(&options.rules_path)?)?);
    // Warnings do not stop the daemon (a missing root is waited for): each is logged once.
    for warning in set.file.warnings.one_line_each() {
        tracing::warn!("rules: {warning}");
    }
    let node = crate::store::sqlite::node_name();
    // Held until this function returns: the kernel releases it however the daemon ends.
    let _owner = if options.store {
        Some(own_store(&options.state_dir, &node)?)
    } else {
        None
    };
    if let Some(keep) = options.keep_logs {
        super::retention::start(options.state_dir.join("logs"), keep);
    }
    let store: Option<Box<dyn JobQueue>> = if options.store {
        let mut store = crate::store::open_queue(&options.location, &node).map_err(Error::setup)?;
        store
            .register_roots(&roots_of(&set))
            .map_err(Error::setup)?;
        let role = if options.no_run {
            "watcher"
        } else {
            "watcher+worker"
        };
        store
            .register_node(role, super::LEASE.as_millis() as i64)
            .map_err(Error::setup)?;
        Some(store)
    } else {
        None
    };
    let factory: Option<QueueFactory> = options.store.then(|| {
        let location = options.location.clone();
        let node = node.clone();
        Arc::new(move || crate::store::open_worker_queue(&location, &node)) as QueueFactory
    });
    let first_start = store.as_ref().is_none_or(|s| s.is_new());
    let (source_tx, source_rx) = unbounded();
    let (done_tx, done_rx) = unbounded();
    let signals = signal_channel()?;
    let provenance = Arc::new(Provenance::default());
    let executor: Box<dyn Executor> = Box::new(crate::exec::by_plan::ByPlan::new(
        set.file.jobs,
        provenance.clone(),
        factory,
        done_tx,
    ));
    let progress = options.progress.clone().filter(|_| options.once);
    let now = Instant::now();
    let telemetry = options.telemetry.clone();
    let mut queue = FairQueue::new(set.file.jobs, rule_limits(&set));
    let (farm_rules, farm_limit) = super::dispatch::farm_lane(&set);
    queue.set_farm(farm_rules, farm_limit);
    let mut engine = Engine {
        run_tag: format!("{}", std::process::id()),
        queue,
        options,
        set,
        ledger: Default::default(),
        provenance,
        intake: Default::default(),
        sequences: Default::default(),
        executor,
        store,
        outbox: Default::default(),
        counters: Default::default(),
        active: Default::default(),
        telemetry,
        timings: super::telemetry::Timings::new(),
        next_telemetry: now,
        telemetry_stale: false,
        node,
        started_at_ms: crate::store::now_ms(),
        commit_retry: None,
        typical_attempt: None,
        next_job: 0,
        outstanding: 0,
        known: HashSet::new(),
        attempts: HashMap::new(),
        progress_written: HashMap::new(),
        liveness: super::liveness::Liveness::new(super::LEASE),
        mounts: super::mounts::MountCache::default(),
        health: Default::default(),
        cursor: 0,
        next_poll: now + STORE_POLL,
        first_start,
        began_first: first_start,
        baseline: Vec::new(),
        baselined: 0,
        initial_done: false,
        scratch: Scratch::default(),
        routed: Vec::new(),
        progress,
        busy: false,
        stopping: false,
        sd: None,
        next_watchdog: None,
        notifier: Default::default(),
        stuck: Default::default(),
    };
    engine.recover()?;
    let mut watcher = None;
    let mut reloads = crossbeam_channel::never();
    if engine.options.once {
        for event in crate::source::scan(&watch_config(&engine.set)) {
            let _ = source_tx.send(SourceEvent::File(event));
        }
    } else {
        watcher = Some(
            Sources::start(watch_config(&engine.set), source_tx.clone()).map_err(Error::setup)?,
        );
        reloads = super::reload::watch(&engine.options.rules_path);
        let roots = engine.set.roots_text();
        tracing::info!(rules = %engine.options.rules_path.display(), roots = %roots, jobs = engine.set.file.jobs, node = %engine.node, "watching");
        engine.sd_ready();
    }
    loop {
        // `--once` over a tree with nothing to do (and no store to poll) must still wake up to
        // see that it is done.
        let longest = if engine.options.once {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(3600)
        };
        let wait = engine
            .next_deadline()
            .map_or(longest, |d| d.saturating_duration_since(Instant::now()))
            .min(longest);
        select! {
            recv(source_rx) -> event => if let Ok(event) = event {
                engine.on_source(event);
                engine.drain(&source_rx, &done_rx, &source_tx);
            },
            recv(done_rx) -> report => if let Ok(report) = report {
                engine.on_report(report, &source_tx, false);
                engine.drain(&source_rx, &done_rx, &source_tx);
            },
            recv(signals) -> signal => {
                let signalled = Instant::now();
                tracing::info!(signal = signal.unwrap_or_default(), "stopping: no new jobs");
                if let Some(sd) = &engine.sd {
                    sd.notify("STOPPING=1");
                }
                drop(watcher.take());
                return Ok(engine.shut_down(&done_rx, &source_tx, signalled));
            }
            recv(reloads) -> _ => engine.reload(&mut watcher, &source_tx)?,
            default(wait) => {}
        }
        let now = Instant::now();
        engine.tick(now, source_rx.is_empty());
        engine.note_idle(&source_rx);
        if engine.options.once && engine.is_idle() && source_rx.is_empty() {
            return Ok(engine.finish_once());
        }
    }
}

/// Takes the store's owner lock: one daemon per state folder, a second one exits 2 naming the
/// first. `--no-store` runs keep no store and take no lock.
fn own_store(dir: &std::path::Path, node: &str) -> Result<OwnerLock, Error> {
    let unusable = |reason: String| {
        Error::Config(format!(
            "state folder `{}` is not usable: {reason}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| unusable(e.to_string()))?;
    OwnerLock::acquire(dir, node, "shotrouter watch").map_err(|e| match e {
        e @ LockError::Held { .. } => Error::Config(e.to_string()),
        e @ LockError::Io { .. } => unusable(e.to_string()),
    })
}

fn watch_config(set: &RuleSet) -> WatchConfig {
    WatchConfig {
        roots: set.file.watch.clone(),
        ignore: set.ignore_set().clone(),
        events: set.events(),
    }
}

pub(super) fn signal_channel() -> Result<Receiver<i32>, Error> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let (tx, rx) = unbounded();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(Error::io("cannot handle signals"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let _ = tx.send(signal);
            }
        })
        .map_err(Error::io("cannot start the signal thread"))?;
    Ok(rx)
}

impl Engine {
    /// Handles up to [`BATCH`] more messages that are already waiting (one burst).
    fn drain(
        &mut self,
        source: &Receiver<SourceEvent>,
        done: &Receiver<Report>,
        source_tx: &Sender<SourceEvent>,
    ) {
        for _ in 1..BATCH {
            if let Ok(report) = done.try_recv() {
                self.on_report(report, source_tx, false);
            } else if let Ok(event) = source.try_recv() {
                self.on_source(event);
            } else {
                break;
            }
        }
    }

    /// After a burst: fire what is due, look in the store, take free slots, commit.
    fn tick(&mut self, now: Instant, source_empty: bool) {
        self.fire_due_sequences(now, source_empty);
        self.fire_due_files(now);
        if self.store.is_some() && now >= self.next_poll {
            self.next_poll = now + STORE_POLL;
            self.resume_queued(self.cursor);
            self.take_notices(now);
        }
        if self.liveness.lost_check_due(now) {
            self.stop_lost();
        }
        if self.liveness.beat_due(now, HEARTBEAT) {
            let health = (!self.health.is_empty()).then(|| {
                let parts: Vec<String> = self
                    .health
                    .iter()
                    .map(|(t, p)| format!("{t}: {p}"))
                    .collect();
                parts.join("; ")
            });
            if let Some(store) = self.store.as_deref_mut()
                && let Err(e) = self.liveness.beat(store, health.as_deref())
            {
                tracing::warn!(error = %e, "cannot record this node's heartbeat");
            }
            self.liveness.fence(&*self.executor);
        }
        if let (Some(at), Some(sd)) = (self.next_watchdog, &self.sd)
            && now >= at
        {
            // Sent from the loop itself: an engine that stops looping stops pinging.
            sd.notify("WATCHDOG=1");
            self.next_watchdog = sd.watchdog_every().map(|every| now + every);
        }
        self.check_stuck(now);
        self.fill(now);
        if self.should_commit(now) {
            self.flush(now);
        }
        if self.liveness.take_release_due(self.outbox.is_empty()) {
            self.release_unheld();
        }
        let idle = self.is_idle();
        self.publish_telemetry(now, idle);
    }

    /// Whether to commit now: a claim a worker may soon wait for, or (when the fair queue has
    /// nothing left to claim) a new job it would claim next, a write that has waited its
    /// window, or a large outbox. Otherwise the writes wait for company (group commit). In a
    /// burst, new jobs are recorded without a claim once the prefetch is full; left to their
    /// window, the workers ran dry while they waited.
    fn should_commit(&self, now: Instant) -> bool {
        if self.outbox.is_empty() {
            return false;
        }
        let feeds =
            self.outbox.has_claims() || (self.outbox.has_new_jobs() && self.queue.is_empty());
        self.store.is_none()
            || (feeds && self.executor.waiting() < self.set.file.jobs)
            || self.outbox.due().is_some_and(|due| due <= now)
            || self.outbox.len() >= MAX_OUTBOX
    }

    /// Commits the outbox and acts on the answers (which may free or take slots, so again
    /// until nothing is left). A failed commit keeps its writes for a later try.
    fn flush(&mut self, now: Instant) {
        self.flush_with(now, false);
    }

    /// Commits until the outbox is empty, claims that fill frees included.
    fn flush_all(&mut self, now: Instant) {
        self.flush_with(now, true);
    }

    fn flush_with(&mut self, now: Instant, force: bool) {
        if self.commit_retry.is_some_and(|at| now < at) {
            return;
        }
        self.commit_retry = None;
        while !self.outbox.is_empty() {
            let whole = force
                || self.store.is_none()
                || self.outbox.due().is_some_and(|due| due <= now)
                || self.outbox.len() >= MAX_OUTBOX;
            let (writes, plan) = if whole {
                self.outbox.take()
            } else {
                self.outbox.take_claims()
            };
            let started = Instant::now();
            let answers = match self.store.as_mut() {
                Some(store) if !writes.is_empty() => match store.commit(&writes) {
                    Ok(answers) => {
                        self.timings.commits.observe(started.elapsed());
                        tracing::trace!(
                            writes = writes.len(),
                            elapsed_us = started.elapsed().as_micros() as u64,
                            "committed"
                        );
                        answers
                    }
                    Err(e) => {
                        tracing::error!(error = %e, writes = writes.len(), "cannot commit to the store; trying again");
                        self.outbox.restore(writes, plan);
                        self.commit_retry = Some(now + COMMIT_RETRY);
                        return;
                    }
                },
                _ => writes.iter().map(outbox::unrecorded).collect(),
            };
            for (then, answer) in outbox::answered(plan, answers) {
                self.apply(then, answer);
            }
            self.fill(now);
            if !self.should_commit(now) && !force {
                return;
            }
        }
    }

    /// Start-up: this node's claims left by a previous run are resolved, their processes
    /// killed (only if provably ours, or found writing their temp output) and every temp output
    /// their attempts may have made removed; then every queued job resumes.
    fn recover(&mut self) -> Result<(), Error> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        let abandoned = store.recover().map_err(Error::failed)?;
        super::reattach::reattach_abandoned(
            &*self.executor,
            &abandoned,
            "the previous daemon's end",
        );
        self.resume_queued(-1);
        Ok(())
    }

    /// Tells systemd (under `Type=notify`) that the watcher and the store are up, and starts
    /// the watchdog pings it asks for.
    fn sd_ready(&mut self) {
        self.sd = crate::os::sd_notify::SdNotify::from_env();
        if let Some(sd) = &self.sd {
            sd.notify("READY=1");
            self.next_watchdog = sd.watchdog_every().map(|every| Instant::now() + every);
            let watchdog_ms = sd.watchdog_every().map(|d| d.as_millis() as u64);
            tracing::debug!(watchdog_ms, "told systemd we are ready");
        }
    }

    /// Logs once each time all work is done: what a supervisor checks at the end of a night.
    fn note_idle(&mut self, source: &Receiver<SourceEvent>) {
        let idle = self.is_idle() && source.is_empty();
        if idle && self.busy && self.initial_done {
            tracing::info!(
                succeeded = self.counters.succeeded,
                failed = self.counters.failed,
                "idle: every job so far has finished"
            );
        }
        // Before the initial scan is done, idle moments are not reported, but the first idle
        // after it is.
        self.busy = !idle || !self.initial_done;
    }

    fn reload(
        &mut self,
        watcher: &mut Option<Sources>,
        source: &Sender<SourceEvent>,
    ) -> Result<(), Error> {
        let path = &self.options.rules_path;
        let set = match rules::load(path)
            .map_err(Error::from)
            .and_then(|f| RuleSet::compile(f).map_err(Error::from))
        {
            Ok(set) => {
                for warning in set.file.warnings.one_line_each() {
                    tracing::warn!("rules: {warning}");
                }
                Arc::new(set)
            }
            Err(e) => {
                tracing::error!("rules reload failed; the previous rules stay in force\n{e}");
                return Ok(());
            }
        };
        let rewatch = set.file.watch != self.set.file.watch
            || set.file.ignore != self.set.file.ignore
            || set.events() != self.set.events();
        self.executor.set_limit(set.file.jobs);
        self.queue.set_limits(set.file.jobs, rule_limits(&set));
        let (farm_rules, farm_limit) = super::dispatch::farm_lane(&set);
        self.queue.set_farm(farm_rules, farm_limit);
        if rewatch && let Some(store) = self.store.as_mut() {
            store
                .register_roots(&roots_of(&set))
                .map_err(Error::failed)?;
        }
        self.set = set;
        if rewatch {
            drop(watcher.take());
            *watcher = Some(
                Sources::start(watch_config(&self.set), source.clone()).map_err(Error::setup)?,
            );
        }
        tracing::info!(rules = %path.display(), count = self.set.file.rules.len(), rewatched = rewatch, "rules reloaded");
        Ok(())
    }

    fn finish_once(mut self) -> ExitCode {
        self.flush_all(Instant::now());
        self.publish_telemetry(Instant::now(), true);
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
        tracing::info!(
            succeeded = self.counters.succeeded,
            failed = self.counters.failed,
            "done"
        );
        self.executor.shutdown();
        self.notifier.finish(NOTIFY_GRACE);
        if self.counters.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// Stops taking work, lets running jobs finish within the grace period (counted from the
    /// signal), then kills them. Claimed jobs that never started, and jobs the stop cut short,
    /// are queued again, their attempt not counted. Ends within `--grace` plus about a second.
    fn shut_down(
        mut self,
        done: &Receiver<Report>,
        source: &Sender<SourceEvent>,
        signalled: Instant,
    ) -> ExitCode {
        self.stopping = true;
        let waiting = self.queue.drain().len();
        let unstarted = self.executor.drain_queued();
        if waiting + unstarted.len() > 0 {
            tracing::warn!(
                count = waiting + unstarted.len(),
                "queued jobs not started; they run at the next start"
            );
        }
        for spec in unstarted {
            if let Some(claim) = spec.claim {
                self.outbox.push(
                    crate::store::queue::Write::Finish {
                        claim,
                        ending: crate::store::queue::Ending::Interrupted,
                    },
                    Then::Nothing,
                );
            }
        }
        let left = self.executor.leave_running();
        if left > 0 {
            tracing::info!(
                tasks = left,
                "farm tasks go on running; the next start follows them"
            );
        }
        let running = self.executor.running();
        tracing::info!(
            running,
            grace_s = self.options.grace.as_secs_f64(),
            "waiting for running jobs"
        );
        let deadline = signalled + self.options.grace;
        let last_report = deadline + STOP_REPORT_WAIT;
        let mut cancelled = false;
        while self.executor.running() > 0 {
            let until = if cancelled { last_report } else { deadline };
            match done.recv_deadline(until) {
                Ok(report) => self.on_report(report, source, true),
                Err(_) if !cancelled => {
                    tracing::warn!(
                        running = self.executor.running(),
                        "grace period over; killing running jobs"
                    );
                    self.executor.cancel_running(STOP_KILL_AFTER);
                    cancelled = true;
                }
                Err(_) => break,
            }
        }
        while let Ok(report) = done.try_recv() {
            self.on_report(report, source, true);
        }
        self.flush_until_done();
        self.publish_telemetry(Instant::now(), true);
        self.executor.shutdown();
        self.notifier.finish(NOTIFY_GRACE);
        tracing::info!("stopped");
        ExitCode::SUCCESS
    }

    /// The last commit at shutdown: tried a few times, since what it says (ends, interrupted
    /// claims) is what the next start relies on.
    fn flush_until_done(&mut self) {
        for _ in 0..5 {
            self.commit_retry = None;
            self.queue.drain();
            self.flush_all(Instant::now());
            if self.outbox.is_empty() {
                return;
            }
            std::thread::sleep(COMMIT_RETRY);
        }
        tracing::error!("cannot record the last job ends; the next start recovers them");
    }
}
