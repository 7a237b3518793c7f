//! The node loop, one for `shotrouter watch` and `shotrouter worker`: what every node that runs
//! jobs does the same way, whatever fills its queue. It owns the parts both roles share
//! ([`Node`]: the executor, the store connection, the writes waiting to be committed, the
//! node's liveness, its notifier and its OpenLineage sender) and drives a [`Role`] (the
//! watcher's engine, a worker) through one loop:
//!
//! 1. wait for the role's input, an executor's report, a signal, or the next deadline;
//! 2. handle a burst of what waits (at most [`BATCH`] messages);
//! 3. let the role fire what is due; check lost claims; heartbeat (and fence itself when no
//!    beat reached the store for too long); let the role take free slots;
//! 4. commit the burst's writes when the policy says so, acting on each answer;
//! 5. give back claims the node does not hold (an answer it lost).
//!
//! A stop (SIGINT/SIGTERM) is the same loop with intake closed: claims never started are given
//! back, farm tasks are left running when the role says so, running attempts get the grace,
//! then are killed; ends are committed and the loop returns within the grace plus about a
//! second. Heartbeats go on through the grace, so a long grace does not lose the node's claims.
//! The two roles had their own loops before and had drifted (only one handed back unheld
//! claims; only the other heartbeat while stopping).

pub mod committer;
pub mod liveness;
pub mod outbox;
pub mod pacing;
pub mod reattach;
pub mod telling;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, never, select};

use crate::error::Error;
use crate::exec::executor::{AttemptId, Executor, Report};
use crate::exec::local::QueueFactory;
use crate::exec::notifier::Notifier;
use crate::exec::openlineage::Lineage;
use crate::store::JobId;
use crate::store::queue::{Answer, Claim, Ending, JobQueue, Write};

use committer::Committer;
use liveness::Liveness;
use outbox::Then;

/// Most messages handled in one burst before its writes are committed (group commit).
pub const BATCH: usize = 64;

/// At a stop, how long a job's group has between the SIGTERM that ends its grace and SIGKILL.
/// The grace was its time to finish; the whole stop must end within `--grace` plus a second.
const STOP_KILL_AFTER: Duration = Duration::from_millis(400);

/// At a stop, how long after the grace the node waits for killed jobs to report before it
/// records what it has and returns (the rest is recovered at the next start).
const STOP_REPORT_WAIT: Duration = Duration::from_millis(700);

/// At exit, how long notifications (and lineage events) still waiting may take to be delivered.
const NOTIFY_GRACE: Duration = Duration::from_secs(2);

/// Longest wait between two attempts to reach a store that went away.
const MAX_RECONNECT: Duration = Duration::from_secs(10);

/// What every node that runs jobs has, whatever its role.
pub struct Node {
    /// This node's name in the store.
    pub name: String,
    /// What runs the jobs (local process groups, the farm).
    pub executor: Box<dyn Executor>,
    /// The job store: `None` when jobs are not recorded (`watch --no-store`), or while a
    /// reconnecting node's store is away (see [`Node::store`]).
    pub store: Option<Box<dyn JobQueue>>,
    /// The writes waiting for the next commit, and when a failed one is tried again.
    pub committer: Committer,
    /// Heartbeat, lost-claim checks, hand-back and self-fencing.
    pub liveness: Liveness,
    /// Delivers `notify:` notifications on its own thread.
    pub notifier: Notifier,
    /// Sends the OpenLineage run events of the attempts this node runs, on its own thread.
    pub lineage: Lineage,
    /// Set at SIGINT/SIGTERM: nothing more is started; claims granted meanwhile are given back.
    pub stopping: bool,
    /// Time running jobs get after SIGINT/SIGTERM.
    grace: Duration,
    /// Opens the store again after it went away (a worker's); without it the node keeps its one
    /// connection and only retries its commits.
    reopen: Option<QueueFactory>,
    reconnect_at: Instant,
    reconnect_wait: Duration,
}

impl Node {
    /// A node named `name` running jobs through `executor`, recording them in `store`.
    pub fn new(
        name: String,
        executor: Box<dyn Executor>,
        store: Option<Box<dyn JobQueue>>,
        liveness: Liveness,
        grace: Duration,
    ) -> Node {
        Node {
            name,
            executor,
            store,
            committer: Committer::default(),
            liveness,
            notifier: Notifier::default(),
            lineage: Lineage::default(),
            stopping: false,
            grace,
            reopen: None,
            reconnect_at: Instant::now(),
            reconnect_wait: Duration::from_millis(500),
        }
    }

    /// Reopens the store with `reopen` whenever a call to it fails, with backoff, instead of
    /// keeping the failed connection: a worker's store is a database across the network.
    pub fn reconnecting(mut self, reopen: QueueFactory) -> Node {
        self.reopen = Some(reopen);
        self
    }

    /// The store, reopened (with backoff) when it went away and the node reconnects.
    pub fn store(&mut self) -> Option<&mut Box<dyn JobQueue>> {
        self.connect();
        self.store.as_mut()
    }

    /// Reopens the store when it went away, the node reconnects and the backoff allows;
    /// whether a store is there.
    pub fn connect(&mut self) -> bool {
        if self.store.is_none()
            && let Some(reopen) = &self.reopen
            && Instant::now() >= self.reconnect_at
        {
            match reopen() {
                Ok(store) => {
                    tracing::info!("store reachable again");
                    self.store = Some(store);
                    self.reconnect_wait = Duration::from_millis(500);
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = self.reconnect_wait.as_millis() as u64, "store unreachable; running jobs continue, their ends wait");
                    self.reconnect_at = Instant::now() + self.reconnect_wait;
                    self.reconnect_wait = (self.reconnect_wait * 2).min(MAX_RECONNECT);
                }
            }
        }
        self.store.is_some()
    }

    /// Whether the store is away and its backoff not over at `now`.
    fn waits_to_reconnect(&self, now: Instant) -> bool {
        self.store_away() && now < self.reconnect_at
    }

    /// Whether the store is away and the node waits to reconnect to it.
    pub fn store_away(&self) -> bool {
        self.store.is_none() && self.reopen.is_some()
    }

    /// A store call failed: a reconnecting node drops the connection and opens a new one
    /// later; others keep it (the next call retries).
    pub fn lose_store(&mut self, error: &dyn std::fmt::Display) {
        if self.reopen.is_some() {
            tracing::warn!(error = %error, "store call failed; reconnecting");
            self.store = None;
            self.reconnect_at = Instant::now() + self.reconnect_wait;
        }
    }
}

/// A node's role: where its jobs come from and what it does with their ends. The loop calls
/// these; everything else a node does is the loop's.
pub trait Role {
    /// What the role hears besides reports and signals (a watcher: its sources' file events).
    type Event;

    /// The parts every node shares.
    fn node(&mut self) -> &mut Node;

    /// The parts every node shares, to read.
    fn node_ref(&self) -> &Node;

    /// Handles one of the role's events.
    fn on_event(&mut self, event: Self::Event);

    /// Handles the role's nudge: the watcher's rules file changed; the store says a worker
    /// may find work.
    ///
    /// # Errors
    /// A failure the node cannot run on (exits the loop).
    fn on_nudge(&mut self) -> Result<(), Error>;

    /// Handles the executor's report on an attempt.
    fn on_report(&mut self, report: Report);

    /// Acts on the store's answer to a write, once committed.
    fn on_answer(&mut self, then: Then, answer: Answer);

    /// Fires what is due at `now` (settled files, sequences, retries, looks in the store);
    /// `quiet`: no event waits. Not called while stopping.
    fn on_tick(&mut self, now: Instant, quiet: bool);

    /// Takes free slots (not called while stopping).
    fn fill(&mut self, now: Instant);

    /// The earliest moment something of the role's is due.
    fn next_deadline(&self) -> Option<Instant>;

    /// The claims this node holds, each with its running attempt when one started.
    fn held(&self) -> Vec<(JobId, Option<(AttemptId, Claim)>)>;

    /// What the node's sources say is wrong with their coverage, for its heartbeat.
    fn health(&self) -> Option<String> {
        None
    }

    /// Whether the role wants what waits committed now (a claim a slot waits for), besides
    /// the outbox's own window and size.
    fn wants_commit(&self) -> bool;

    /// Called after each commit with how many writes it took and how long.
    fn committed(&mut self, _writes: usize, _took: Duration) {}

    /// The stop began: close intake (stop the sources, forget what waits in queues).
    fn begin_stop(&mut self);

    /// Whether the role's farm tasks go on running after its stop (the next start follows
    /// them), or are cancelled with its local attempts.
    fn leaves_farm_tasks(&self) -> bool;

    /// After each turn: telemetry, an idle note, watchdog pings.
    fn after_turn(&mut self, now: Instant, quiet: bool);

    /// Whether the role is done without a signal (`watch --once` once every job ended).
    fn finished(&self, quiet: bool) -> bool {
        let _ = quiet;
        false
    }

    /// The last word before the loop returns (telemetry, progress bar, summary), and the exit
    /// code; `stopped`: by a signal.
    fn finish(&mut self, stopped: bool) -> ExitCode;

    /// The shared parts, for the loop to shut down once the role is done.
    fn into_node(self) -> Node;
}

/// Runs `role` until a signal stops it (then through the grace) or it is finished. `events`
/// and `nudges` are the role's own inputs (see [`Role::on_event`], [`Role::on_nudge`]);
/// `done` the executor's reports.
///
/// # Errors
/// What [`Role::on_nudge`] cannot run on.
pub fn run<R: Role>(
    mut role: R,
    events: &Receiver<R::Event>,
    nudges: &Receiver<()>,
    done: &Receiver<Report>,
    signals: &Receiver<i32>,
    longest_wait: Duration,
) -> Result<ExitCode, Error> {
    let mut stop: Option<Stop> = None;
    // A stop closes them; so does their sender's end (else a closed channel would wake the
    // loop without end).
    let mut events = events.clone();
    let mut nudges = nudges.clone();
    loop {
        let now = Instant::now();
        let wait = next_deadline(&role, stop.as_ref())
            .map_or(longest_wait, |d| d.saturating_duration_since(now))
            .min(longest_wait);
        select! {
            recv(events) -> event => match event {
                Ok(event) => {
                    role.on_event(event);
                    drain(&mut role, &events, done);
                }
                Err(_) => events = never(),
            },
            recv(done) -> report => if let Ok(report) = report {
                role.on_report(report);
                drain(&mut role, &events, done);
            },
            recv(signals) -> signal => match &mut stop {
                None => {
                    stop = Some(begin_stop(&mut role, signal.unwrap_or_default()));
                    events = never();
                    nudges = never();
                }
                // A second signal: no more grace.
                Some(stop) => stop.deadline = stop.deadline.min(Instant::now()),
            },
            recv(nudges) -> nudge => match nudge {
                Ok(()) => role.on_nudge()?,
                Err(_) => nudges = never(),
            },
            default(wait) => {}
        }
        let now = Instant::now();
        let quiet = events.is_empty();
        if let Some(stopping) = &mut stop {
            if stopping.tick(role.node(), now) {
                while let Ok(report) = done.try_recv() {
                    role.on_report(report);
                }
                break;
            }
        } else {
            role.on_tick(now, quiet);
        }
        look_after_claims(&mut role, now);
        if stop.is_none() {
            role.fill(now);
        }
        if should_commit(&role, now) {
            commit(&mut role, now, false);
        }
        release_unheld(&mut role);
        role.after_turn(now, quiet);
        if stop.is_none() && role.finished(quiet) && events.is_empty() {
            commit(&mut role, Instant::now(), true);
            break;
        }
    }
    if stop.is_some() {
        commit_until_done(&mut role);
    }
    let code = role.finish(stop.is_some());
    let node = role.into_node();
    node.executor.shutdown();
    node.notifier.finish(NOTIFY_GRACE);
    node.lineage.finish(NOTIFY_GRACE);
    Ok(code)
}

/// Handles up to [`BATCH`] more messages that are already waiting (one burst).
fn drain<R: Role>(role: &mut R, events: &Receiver<R::Event>, done: &Receiver<Report>) {
    for _ in 1..BATCH {
        if let Ok(report) = done.try_recv() {
            role.on_report(report);
        } else if let Ok(event) = events.try_recv() {
            role.on_event(event);
        } else {
            break;
        }
    }
}

/// The earliest moment anything is due: the role's, the heartbeat, the lost-claim check (while
/// claims are held), the commit, and the stop's deadlines.
fn next_deadline<R: Role>(role: &R, stop: Option<&Stop>) -> Option<Instant> {
    let node = role.node_ref();
    let store = node.store.is_some() || node.reopen.is_some();
    let own = if stop.is_some() {
        None
    } else {
        role.next_deadline()
    };
    [
        own,
        store.then(|| node.liveness.next_beat()),
        (store && node.executor.running() > 0).then(|| node.liveness.next_lost_check()),
        // While the store is away, what waits goes when it may be reached again.
        if node.store_away() {
            Some(node.reconnect_at).filter(|_| !node.committer.is_empty())
        } else {
            node.committer.due()
        },
        stop.map(|s| s.deadline),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// Lost-claim checks and the heartbeat, each when due; a node whose beats stopped reaching the
/// store fences itself.
fn look_after_claims<R: Role>(role: &mut R, now: Instant) {
    if role.node().liveness.lost_check_due(now) {
        let running: Vec<(AttemptId, Claim)> =
            role.held().into_iter().filter_map(|(_, run)| run).collect();
        let node = role.node();
        if !running.is_empty()
            && node.connect()
            && let Some(store) = node.store.as_deref_mut()
            && let Err(e) = Liveness::stop_lost(store, &*node.executor, &running)
        {
            tracing::warn!(error = %e, "cannot ask the store which claims this node still holds");
            node.lose_store(&e);
        }
    }
    if role.node().liveness.beat_due(now) {
        let health = role.health();
        let node = role.node();
        if node.connect()
            && let Some(store) = node.store.as_deref_mut()
        {
            let beat = node.liveness.beat(store, health.as_deref());
            if let Err(e) = beat {
                tracing::warn!(error = %e, "cannot record this node's heartbeat");
                node.lose_store(&e);
            }
        }
        node.liveness.fence(&*node.executor);
    }
}

/// Gives back this node's claims it does not hold (see [`Liveness::release_unheld`]), once
/// due and when no claim waits to be committed: every claim the node still has to end is then
/// among those it holds.
fn release_unheld<R: Role>(role: &mut R) {
    let idle = role.node_ref().committer.is_empty();
    if !role.node().liveness.take_release_due(idle) {
        return;
    }
    let held: Vec<JobId> = role.held().into_iter().map(|(id, _)| id).collect();
    let node = role.node();
    if node.connect()
        && let Some(store) = node.store.as_deref_mut()
        && let Err(e) = Liveness::release_unheld(store, &held)
    {
        tracing::warn!(error = %e, "cannot give back the claims this node does not hold");
        node.lose_store(&e);
    }
}

/// Whether to commit now: what the role waits for, a write that waited its window, a large
/// outbox, no store (answers are immediate), or the last ends of a node with nothing running
/// or ready: no other end can come to share their commit, and a file arriving next would wait
/// behind it. (Other writes of a node at rest, a first start's baseline, still wait for
/// company.)
fn should_commit<R: Role>(role: &R, now: Instant) -> bool {
    let node = role.node_ref();
    let at_rest = || {
        node.executor.running() == 0 && node.executor.waiting() == 0 && node.committer.has_ends()
    };
    !node.committer.is_empty()
        && !node.committer.retry_pending(now)
        && !node.waits_to_reconnect(now)
        && (node.store.is_none()
            || node.committer.must_commit(now)
            || role.wants_commit()
            || at_rest())
}

/// Commits what waits and acts on the answers (which may free or take slots, so again until
/// nothing is left to commit now). `all`: everything, now; else the claims a slot waits for,
/// and the rest once its window passed. A failed commit keeps its writes for a later try.
fn commit<R: Role>(role: &mut R, now: Instant, all: bool) {
    loop {
        let node = role.node();
        if node.committer.is_empty() || node.committer.retry_pending(now) {
            return;
        }
        // Claims a slot waits for go ahead of the rest, which keeps its window.
        let whole = all
            || node.store.is_none()
            || node.committer.must_commit(now)
            || !node.committer.has_claims();
        let started = Instant::now();
        if !node.connect() && node.reopen.is_some() {
            return;
        }
        let answered = match node.committer.commit(node.store.as_mut(), whole, now) {
            Ok(answered) => answered,
            Err(e) => {
                node.lose_store(&e);
                return;
            }
        };
        let writes = answered.len();
        role.committed(writes, started.elapsed());
        for (then, answer) in answered {
            role.on_answer(then, answer);
        }
        if !role.node_ref().stopping {
            role.fill(now);
        }
        if !all && !should_commit(role, now) {
            return;
        }
    }
}

/// The last commit at a stop: tried a few times, since what it says (ends, interrupted
/// claims) is what the next start relies on.
fn commit_until_done<R: Role>(role: &mut R) {
    for _ in 0..5 {
        role.node().committer.retry_now();
        commit(role, Instant::now(), true);
        if role.node_ref().committer.is_empty() {
            return;
        }
        std::thread::sleep(committer::COMMIT_RETRY);
    }
    tracing::error!("cannot record the last job ends; the next start recovers them");
}

/// A stop under way: until when running attempts have their grace, and whether they were
/// killed.
struct Stop {
    deadline: Instant,
    killed: bool,
}

/// The stop's first moment: intake closes, claims never started are given back (queued for
/// the next start, their attempt not counted), farm tasks are left to run when the role says
/// so; running attempts get the grace, counted from the signal.
fn begin_stop<R: Role>(role: &mut R, signal: i32) -> Stop {
    let signalled = Instant::now();
    tracing::info!(signal, "stopping: no new jobs");
    role.begin_stop();
    let leaves_farm = role.leaves_farm_tasks();
    let node = role.node();
    node.stopping = true;
    let unstarted = node.executor.drain_queued();
    if !unstarted.is_empty() {
        tracing::warn!(
            count = unstarted.len(),
            "claimed jobs not started; they run at the next start"
        );
    }
    for spec in unstarted {
        if let Some(claim) = spec.claim {
            node.committer.push(
                Write::Finish {
                    claim,
                    ending: Ending::Interrupted,
                },
                Then::Nothing,
            );
        }
    }
    if leaves_farm {
        let left = node.executor.leave_running();
        if left > 0 {
            tracing::info!(
                tasks = left,
                "farm tasks go on running; the next start follows them"
            );
        }
    }
    tracing::info!(
        running = node.executor.running(),
        grace_s = node.grace.as_secs_f64(),
        "waiting for running jobs"
    );
    Stop {
        deadline: signalled + node.grace,
        killed: false,
    }
}

impl Stop {
    /// Kills what still runs once the grace is over; whether the stop is complete (nothing
    /// runs, or the killed have had their time to report).
    fn tick(&mut self, node: &mut Node, now: Instant) -> bool {
        if node.executor.running() == 0 {
            return true;
        }
        if now < self.deadline {
            return false;
        }
        if self.killed {
            return true;
        }
        tracing::warn!(
            running = node.executor.running(),
            "grace period over; killing running jobs"
        );
        node.executor.cancel_running(STOP_KILL_AFTER);
        self.killed = true;
        self.deadline = now + STOP_REPORT_WAIT;
        false
    }
}
