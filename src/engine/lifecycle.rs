//! The watcher's start, and its role in the [node loop](super::node): what it does with file
//! events, reports and answers, what it fires when due, its reload and its stop.
//!
//! Start-up first cleans up after a previous run of this node that died (its claims are
//! resolved in the store; their process groups, if provably ours, are killed and temp outputs
//! removed), resumes the queued jobs, then catches up with files that arrived or changed while
//! it was down. SIGINT/SIGTERM stop intake, give running jobs `--grace`, then kill them; jobs
//! cut short are queued again for the next start.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;

use crate::error::Error;
use crate::exec::executor::{AttemptId, Executor, Report};
use crate::exec::local::QueueFactory;
use crate::exec::provenance::Provenance;
use crate::os::owner_lock::{LockError, OwnerLock};
use crate::route::matcher::RuleSet;
use crate::rules;
use crate::rules::schedule::waiting_reason;
use crate::source::{SourceEvent, Sources, WatchConfig};
use crate::store::JobId;
use crate::store::queue::{Answer, Claim, JobQueue};

use super::dispatch::{roots_of, rule_limits};
use super::fair_queue::FairQueue;
use super::node::liveness::Liveness;
use super::node::outbox::Then;
use super::node::{Node, Role};
use super::{Engine, HEARTBEAT, Options, STORE_POLL};

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
    let name = crate::store::sqlite::node_name();
    // Held until this function returns: the kernel releases it however the daemon ends.
    let _owner = if options.store {
        Some(own_store(&options.state_dir, &name)?)
    } else {
        None
    };
    if let Some(keep) = options.keep_logs {
        super::retention::start(options.state_dir.join("logs"), keep);
    }
    let store: Option<Box<dyn JobQueue>> = if options.store {
        let mut store = crate::store::open_queue(&options.location, &name).map_err(Error::setup)?;
        store
            .register_roots(&roots_of(&set))
            .map_err(Error::setup)?;
        let role = if options.no_run {
            "watcher"
        } else {
            "watcher+worker"
        };
        store
            .register_node(role, super::LEASE.as_millis() as i64, &[])
            .map_err(Error::setup)?;
        Some(store)
    } else {
        None
    };
    let factory: Option<QueueFactory> = options.store.then(|| {
        let location = options.location.clone();
        let name = name.clone();
        Arc::new(move || crate::store::open_worker_queue(&location, &name)) as QueueFactory
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
    let node = Node::new(
        name,
        executor,
        store,
        Liveness::new(super::LEASE, HEARTBEAT),
        options.grace,
    );
    let progress = options.progress.clone().filter(|_| options.once);
    let readout = super::telemetry::Readout::new(options.telemetry.clone(), progress);
    let mut queue = FairQueue::new(set.file.jobs, rule_limits(&set));
    queue.set_priorities(super::control::rule_priorities(&set));
    let (farm_rules, farm_limit) = super::dispatch::farm_lane(&set);
    queue.set_farm(farm_rules, farm_limit);
    // `--once` ends before anyone could read the waste.
    let waste = if options.once {
        Default::default()
    } else {
        super::waste_watch::WasteWatch::start(options.telemetry.clone())
    };
    let mut engine = Engine {
        planned: super::planned::Planned::new(queue, Instant::now() + STORE_POLL),
        options,
        set,
        provenance,
        arrivals: super::arrivals::Arrivals::new(first_start),
        sequences: Default::default(),
        cuts: super::cuts::Cuts::new(waste),
        cut_files: Default::default(),
        outside: Default::default(),
        conforms: Default::default(),
        inputs: Default::default(),
        attempts: Default::default(),
        node,
        sources: None,
        feedback: source_tx.clone(),
        readout,
        stuck: Default::default(),
        systemd: Default::default(),
    };
    engine.options.telemetry.publish_rules(&engine.set);
    engine.refresh_cuts(Instant::now());
    engine.conform_missing_movies(Instant::now());
    engine.recover()?;
    // The pauses and the windows before the first file is routed: a job planned at once (the
    // scan of `--once`) claims its slot when it is recorded.
    engine.read_pauses();
    engine.check_windows(Instant::now());
    let mut reloads = crossbeam_channel::never();
    // `--once` over a tree with nothing to do (and no store to poll) must still wake up to see
    // that it is done.
    let longest_wait = if engine.options.once {
        for event in crate::source::scan(&watch_config(&engine.set)) {
            let _ = source_tx.send(SourceEvent::File(event));
        }
        Duration::from_millis(100)
    } else {
        engine.sources = Some(
            Sources::start(watch_config(&engine.set), source_tx.clone()).map_err(Error::setup)?,
        );
        reloads = super::reload::watch(&engine.options.rules_path);
        let roots = engine.set.roots_text();
        tracing::info!(rules = %engine.options.rules_path.display(), roots = %roots, jobs = engine.set.file.jobs, node = %engine.node.name, "watching");
        engine.systemd = super::systemd::Systemd::ready();
        Duration::from_secs(3600)
    };
    drop(source_tx);
    super::node::run(
        engine,
        &source_rx,
        &reloads,
        &done_rx,
        &signals,
        longest_wait,
    )
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

/// SIGINT and SIGTERM, as messages on a channel.
///
/// # Errors
/// When signals cannot be handled or their thread not started.
pub(super) fn signal_channel() -> Result<crossbeam_channel::Receiver<i32>, Error> {
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

impl Role for Engine {
    type Event = SourceEvent;

    fn node(&mut self) -> &mut Node {
        &mut self.node
    }

    fn node_ref(&self) -> &Node {
        &self.node
    }

    fn on_event(&mut self, event: SourceEvent) {
        self.on_source(event);
    }

    /// The rules file changed.
    fn on_nudge(&mut self) -> Result<(), Error> {
        self.reload()
    }

    fn on_report(&mut self, report: Report) {
        Engine::on_report(self, report);
    }

    fn on_answer(&mut self, then: Then, answer: Answer) {
        self.apply(then, answer);
    }

    /// Fires what is due, looks in the store for work queued by others, and for stuck jobs.
    fn on_tick(&mut self, now: Instant, quiet: bool) {
        self.check_windows(now);
        self.fire_due_sequences(now, quiet);
        self.fire_due_files(now);
        self.fire_due_conforms(now);
        if self.node.store.is_some() && now >= self.planned.next_poll {
            self.planned.next_poll = now + STORE_POLL;
            self.refresh_cuts(now);
            self.tell_cut_changes();
            self.resume_queued(self.planned.cursor);
            self.read_pauses();
            self.take_notices(now);
        }
        self.tell_outside(now);
        self.look_at_inputs(now);
        self.check_stuck(now);
    }

    fn fill(&mut self, now: Instant) {
        Engine::fill(self, now);
    }

    fn next_deadline(&self) -> Option<Instant> {
        Engine::next_deadline(self)
    }

    fn held(&self) -> Vec<(JobId, Option<(AttemptId, Claim)>)> {
        self.held_claims()
    }

    fn health(&self) -> Option<String> {
        (!self.arrivals.health.is_empty()).then(|| {
            let parts: Vec<String> = self
                .arrivals
                .health
                .iter()
                .map(|(t, p)| format!("{t}: {p}"))
                .collect();
            parts.join("; ")
        })
    }

    /// A claim a worker may soon wait for, or (when the fair queue has nothing left to claim)
    /// a new job it would claim next. Otherwise the writes wait for company (group commit). In
    /// a burst, new jobs are recorded without a claim once the prefetch is full; left to their
    /// window, the workers ran dry while they waited.
    fn wants_commit(&self) -> bool {
        let committer = &self.node.committer;
        let feeds =
            committer.has_claims() || (committer.has_new_jobs() && self.planned.queue.is_empty());
        feeds && self.node.executor.waiting() < self.set.file.jobs
    }

    fn committed(&mut self, _writes: usize, took: Duration) {
        self.readout.timings.commits.observe(took);
    }

    /// Stops the sources and forgets the jobs waiting in the fair queue (they are recorded as
    /// queued: the next start runs them).
    fn begin_stop(&mut self) {
        self.systemd.tell("STOPPING=1");
        drop(self.sources.take());
        let waiting = self.planned.queue.drain().len();
        if waiting > 0 {
            tracing::warn!(
                count = waiting,
                "queued jobs not started; they run at the next start"
            );
        }
    }

    /// A watcher is stopped to be started again (an upgrade, a reboot): its farm tasks go on.
    fn leaves_farm_tasks(&self) -> bool {
        true
    }

    fn after_turn(&mut self, now: Instant, quiet: bool) {
        self.systemd.ping(now);
        let idle = self.is_idle();
        self.publish_telemetry(now, idle);
        self.note_idle(quiet);
    }

    /// `--once`: nothing left to do, or only jobs a pause or a closed window holds.
    fn finished(&self, quiet: bool) -> bool {
        self.options.once && quiet && (self.is_idle() || self.only_held_left())
    }

    fn finish(&mut self, stopped: bool) -> ExitCode {
        // Frames outside the cut gathered so far are told now, not lost with the engine.
        self.tell_outside(Instant::now() + super::outside_cut::LONGEST);
        self.publish_telemetry(Instant::now(), true);
        if let Some(bar) = &self.readout.progress {
            bar.finish_and_clear();
        }
        if stopped || !self.options.once {
            tracing::info!("stopped");
            return ExitCode::SUCCESS;
        }
        tracing::info!(
            succeeded = self.readout.counters.succeeded,
            failed = self.readout.counters.failed,
            "done"
        );
        self.tell_held();
        if self.readout.counters.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    fn into_node(self) -> Node {
        self.node
    }
}

impl Engine {
    /// `--once` ended with jobs held by a pause or a closed window: says how many, and why.
    fn tell_held(&self) {
        let held = self.planned.queue.held();
        if held.is_empty() {
            return;
        }
        let count: usize = held.iter().map(|(_, _, n)| n).sum();
        let why: Vec<String> = held
            .iter()
            .map(|(rule, paused, n)| {
                let reason = if *paused {
                    "paused (shotrouter resume)".to_string()
                } else {
                    self.set
                        .index_of(rule)
                        .map(|i| waiting_reason(&self.set.file.rules[i].windows))
                        .unwrap_or_else(|| "waiting for its window".to_string())
                };
                format!("{rule}: {n} {reason}")
            })
            .collect();
        let fate = if self.node.store.is_some() {
            "left queued in the store for the next run"
        } else {
            "not run (no store keeps them)"
        };
        tracing::warn!(held = count, why = %why.join("; "), "jobs held, {fate}");
    }

    /// Publishes the current state for readers, unless a busy engine did so very recently.
    pub(super) fn publish_telemetry(&mut self, now: Instant, idle: bool) {
        if !idle && now < self.readout.next_publish {
            // Published at the deadline even if nothing else wakes the engine before it (the
            // last progress of a job before a quiet spell).
            self.readout.stale = true;
            return;
        }
        self.readout.stale = false;
        self.readout.next_publish = now + super::telemetry::PUBLISH_EVERY;
        self.readout.handle.publish(super::telemetry::Telemetry {
            node: self.node.name.clone(),
            started_at_ms: self.readout.started_at_ms,
            counters: self.readout.counters,
            queued: self.planned.queue.len(),
            retry_waiting: self.planned.queue.delayed_len(),
            files_waiting: self.arrivals.len(),
            sequences_gathering: self.sequences.len(),
            active: self.readout.active.clone(),
            timings: self.readout.timings.clone(),
        });
    }

    /// Start-up: this node's claims left by a previous run are resolved, their processes
    /// killed (only if provably ours, or found writing their temp output) and every temp output
    /// their attempts may have made removed; then every queued job resumes.
    fn recover(&mut self) -> Result<(), Error> {
        let Some(store) = self.node.store.as_mut() else {
            return Ok(());
        };
        let abandoned = store.recover().map_err(Error::failed)?;
        let following = super::node::reattach::reattach_abandoned(
            &*self.node.executor,
            &abandoned,
            "the previous daemon's end",
        );
        // Their runs go on (farm tasks): claimed first, paused or outside a window, and adopted.
        self.planned.queue.follow(following);
        self.load_inputs();
        self.record_rule_defs();
        self.read_pauses();
        self.resume_queued(-1);
        Ok(())
    }

    /// Logs once each time all work is done: what a supervisor checks at the end of a night.
    fn note_idle(&mut self, quiet: bool) {
        let idle = self.is_idle() && quiet;
        if idle && self.readout.busy && self.arrivals.initial_done {
            tracing::info!(
                succeeded = self.readout.counters.succeeded,
                failed = self.readout.counters.failed,
                "idle: every job so far has finished"
            );
        }
        // Before the initial scan is done, idle moments are not reported, but the first idle
        // after it is.
        self.readout.busy = !idle || !self.arrivals.initial_done;
    }

    /// Loads the rules again; a file that does not load leaves the previous rules in force.
    fn reload(&mut self) -> Result<(), Error> {
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
        self.node.executor.set_limit(set.file.jobs);
        self.planned
            .queue
            .set_limits(set.file.jobs, rule_limits(&set));
        self.planned
            .queue
            .set_priorities(super::control::rule_priorities(&set));
        let (farm_rules, farm_limit) = super::dispatch::farm_lane(&set);
        self.planned.queue.set_farm(farm_rules, farm_limit);
        if rewatch && let Some(store) = self.node.store.as_mut() {
            store
                .register_roots(&roots_of(&set))
                .map_err(Error::failed)?;
        }
        self.set = set;
        self.options.telemetry.publish_rules(&self.set);
        self.cuts
            .waste
            .ask(&self.set, &self.cuts.revisions, Instant::now());
        if rewatch && self.sources.is_some() {
            drop(self.sources.take());
            self.sources = Some(
                Sources::start(watch_config(&self.set), self.feedback.clone())
                    .map_err(Error::setup)?,
            );
        }
        tracing::info!(rules = %path.display(), count = self.set.file.rules.len(), rewatched = rewatch, "rules reloaded");
        // A rule whose work changed leaves its products stale (`shotrouter stale`).
        self.record_rule_defs();
        // Its windows may have changed: checked before the next file is routed.
        self.planned.next_window_check = Instant::now();
        self.check_windows(Instant::now());
        // The `conform:` block's `cut:` may have changed: read the cuts it covers again.
        self.conform_read_cuts(false, Instant::now());
        Ok(())
    }
}
