//! The Slurm executor: claimed jobs of `executor: slurm` rules run as tasks of the studio's
//! Slurm cluster, and come back here to be verified and published.
//!
//! - **Bursts are arrays.** Jobs handed over within [`GATHER`] of each other with the same
//!   `slurm:` request are one `sbatch --array` (at most [`MAX_ARRAY`] tasks, under Slurm's
//!   default `MaxArraySize` of 1001): a render's thousand frames cost one submission, not a
//!   thousand (`submit`).
//! - **Followed without accounting.** One farm thread asks `squeue` about every array in flight
//!   each `slurm.poll`, and reads each task's end record (`follow`): no `sacct`, no `slurmdbd`.
//!   A controller that does not answer is waited for; a task is only ever ended by what Slurm
//!   or its end record said.
//! - **Delivered here.** A task that completed goes to a delivery thread that runs the same
//!   steps as a local job (`runner::remote::finish`): verify, publish with the claim checked in
//!   the store, copy or move. A task the farm lost (`NODE_FAIL`, `PREEMPTED`, `BOOT_FAIL`) is
//!   submitted again without spending an attempt.
//!
//! Every attempt handed over ends in exactly one `Report::Finished`, and is counted by
//! [`Executor::running`] or [`Executor::waiting`] until then, wherever it is: gathering, being
//! submitted, waiting for the controller, in flight, being looked at, or being delivered. The
//! farm thread does its slow work (`sbatch`, `squeue`, the spool's files) without the lock the
//! engine's thread takes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::exec::executor::{AttemptId, Executor, Finished, Reattach, Report};
use crate::exec::fenced_publish::{FencedPublisher, QueueFactory};
use crate::exec::provenance::Provenance;
use crate::exec::runner::remote;
use crate::exec::runner::{JobSpec, Outcome};
use crate::store::RunHandle;
use crate::store::queue::Abandoned;

mod adopt;
pub mod client;
mod deliver;
mod follow;
pub mod script;
mod submit;

pub(crate) use adopt::split_handle;
use adopt::{Orphan, adopt, digest};
use client::Client;
use deliver::{Hooks, deliver_loop};

/// The executor's name in run handles (`slurm:123_4`).
pub const NAME: &str = "slurm";
/// How long jobs handed over are gathered into one array before it is submitted.
pub const GATHER: Duration = Duration::from_millis(200);
/// Most tasks in one array (Slurm's default `MaxArraySize` is 1001: indices 0 to 1000).
pub const MAX_ARRAY: usize = 1000;
/// The first attempt number this executor hands out: above the local executor's, so a node
/// holding both knows whose an attempt is.
pub const FIRST_ATTEMPT: AttemptId = 1 << 48;
/// Times a task the farm lost is submitted again before the attempt fails.
const MAX_RESUBMITS: u32 = 3;
/// How long a previous life's task waits for its job to be claimed again here before it is
/// cancelled (another node may have taken the job).
const ADOPT_WAIT: Duration = Duration::from_secs(300);
/// Threads that verify and publish finished tasks' products.
const DELIVERY_THREADS: usize = 2;

/// Runs claimed jobs on a Slurm cluster.
pub struct SlurmExecutor {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the farm thread (work handed over, a cancel, closing).
    wake: Condvar,
    /// Wakes the delivery threads.
    delivered: Condvar,
    done: Sender<Report>,
    publisher: FencedPublisher,
    client: Client,
}

#[derive(Default)]
struct State {
    /// Handed over, waiting to be gathered into an array.
    gathering: Vec<Pending>,
    gather_since: Option<Instant>,
    /// Prepared, but the controller did not take them yet.
    unsubmitted: Vec<Batch>,
    /// Submitted, followed by polling.
    tasks: HashMap<AttemptId, Task>,
    /// Attempts the farm thread holds outside these maps (being submitted, being looked at).
    busy: HashSet<AttemptId>,
    /// Ended on the farm, to be delivered here.
    ended: VecDeque<Ended>,
    delivering: usize,
    /// Cancels asked for, resolved by the farm thread wherever the attempt is.
    cancels: HashSet<AttemptId>,
    /// Tasks to `scancel` that no attempt holds (a previous life's, a cancel that failed).
    to_scancel: Vec<String>,
    /// Tasks a previous life of this node submitted, still running on the farm, by job id:
    /// adopted when the job is claimed again with the same argv, cancelled if not by
    /// [`ADOPT_WAIT`].
    adoptable: HashMap<String, Orphan>,
    next: AttemptId,
    closing: bool,
    /// This node is stopping and leaves its tasks on the farm: tasks the farm thread puts
    /// back (after a poll, a submission) are let go too.
    leaving: bool,
}

/// An attempt not submitted yet, and how many times the farm lost it.
struct Pending {
    attempt: AttemptId,
    spec: JobSpec,
    resubmits: u32,
}

/// Attempts for one `sbatch --array`, with the tag that finds the array again when the
/// answer to its submission was lost.
struct Batch {
    tag: String,
    items: Vec<Pending>,
}

/// A submitted task.
struct Task {
    spec: JobSpec,
    /// `123_4`.
    id: String,
    array: u64,
    index: u32,
    started: Instant,
    last_state: String,
    cancelled: bool,
    missing_polls: u32,
    record_polls: u32,
    resubmits: u32,
}

/// A task that ended on the farm: how, and where its output is.
struct Ended {
    attempt: AttemptId,
    spec: JobSpec,
    result: Result<(), Outcome>,
    log: Option<PathBuf>,
    end_record: Option<PathBuf>,
    started: Instant,
}

impl SlurmExecutor {
    /// Starts the farm thread and the delivery threads; reports go to `done`. With `store`,
    /// products are recorded with their claim before they are published.
    pub fn new(
        client: Client,
        provenance: Arc<Provenance>,
        store: Option<QueueFactory>,
        done: Sender<Report>,
    ) -> SlurmExecutor {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next: FIRST_ATTEMPT,
                ..State::default()
            }),
            wake: Condvar::new(),
            delivered: Condvar::new(),
            done,
            publisher: FencedPublisher { provenance, store },
            client,
        });
        let mut threads = Vec::new();
        let farm = shared.clone();
        match std::thread::Builder::new()
            .name("slurm".into())
            .spawn(move || farm_loop(&farm))
        {
            Ok(handle) => threads.push(handle),
            Err(e) => tracing::error!(error = %e, "cannot start the Slurm thread"),
        }
        for n in 0..DELIVERY_THREADS {
            let shared = shared.clone();
            if let Ok(handle) = std::thread::Builder::new()
                .name(format!("slurm-deliver-{}", n + 1))
                .spawn(move || deliver_loop(&shared))
            {
                threads.push(handle);
            }
        }
        SlurmExecutor { shared, threads }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reports an attempt's end (call without the lock held, then release its slot). What it
    /// used is looked at now, by the node that submitted it: the farm node does not say.
    fn finished(&self, spec: JobSpec, outcome: Outcome, started: Instant) {
        let facts = crate::exec::lineage::RunFacts::gather(&spec.plan);
        let _ = self.done.send(Report::Finished(Box::new(Finished {
            spec,
            outcome,
            duration: started.elapsed(),
            facts,
        })));
    }

    /// Ends an attempt that never reached the farm as cancelled, leaving nothing behind.
    fn end_unsubmitted(&self, pending: Pending, prepared: bool) {
        let outcome = if prepared {
            let mut conn = None;
            let mut hooks = Hooks {
                publisher: &self.publisher,
                conn: &mut conn,
                spec: &pending.spec,
            };
            remote::finish(&pending.spec, Err(Outcome::Cancelled), None, &mut hooks)
        } else {
            Outcome::Cancelled
        };
        self.finished(pending.spec, outcome, Instant::now());
    }
}

impl Executor for SlurmExecutor {
    fn submit(&self, mut spec: JobSpec) {
        crate::exec::temps::bind_claim(&mut spec);
        let mut state = self.shared.lock();
        let attempt = state.next;
        state.next += 1;
        if let Some(orphan) = state.adoptable.remove(&spec.id) {
            if orphan.digest == digest(&spec) {
                let task = adopt(spec, orphan, attempt, &self.shared);
                state.tasks.insert(attempt, task);
                self.shared.wake.notify_all();
                return;
            }
            // The job runs something else now (its rule changed): a new task, not the old one.
            state.to_scancel.push(orphan.id);
        }
        state.gathering.push(Pending {
            attempt,
            spec,
            resubmits: 0,
        });
        state.gather_since.get_or_insert_with(Instant::now);
        self.shared.wake.notify_all();
    }

    /// The farm's capacity is the scheduler's; `slurm.max_jobs` bounds what is in flight.
    fn set_limit(&mut self, _limit: usize) {}

    fn waiting(&self) -> usize {
        let state = self.shared.lock();
        state.gathering.len()
            + state
                .unsubmitted
                .iter()
                .map(|b| b.items.len())
                .sum::<usize>()
    }

    fn running(&self) -> usize {
        let state = self.shared.lock();
        state.tasks.len() + state.busy.len() + state.ended.len() + state.delivering
    }

    fn drain_queued(&self) -> Vec<JobSpec> {
        let mut state = self.shared.lock();
        state.gather_since = None;
        let mut specs: Vec<JobSpec> = state.gathering.drain(..).map(|p| p.spec).collect();
        // Prepared for a controller that did not answer: a next attempt prepares again.
        specs.extend(
            state
                .unsubmitted
                .drain(..)
                .flat_map(|b| b.items)
                .map(|p| p.spec),
        );
        specs
    }

    fn cancel(&self, attempt: AttemptId) {
        let mut state = self.shared.lock();
        if let Some(at) = state.gathering.iter().position(|p| p.attempt == attempt) {
            let pending = state.gathering.remove(at);
            drop(state);
            self.shared.end_unsubmitted(pending, false);
            return;
        }
        state.cancels.insert(attempt);
        self.shared.wake.notify_all();
    }

    fn cancel_running(&self, _kill_after: Duration) {
        let mut state = self.shared.lock();
        let all: Vec<AttemptId> = state
            .tasks
            .keys()
            .chain(&state.busy)
            .copied()
            .chain(
                state
                    .unsubmitted
                    .iter()
                    .flat_map(|b| b.items.iter().map(|p| p.attempt)),
            )
            .collect();
        state.cancels.extend(all);
        self.shared.wake.notify_all();
    }

    /// Tasks in flight go on on the farm; the next start adopts them. A task already asked to
    /// stop (cancelled) is not left: its end is still reported.
    fn leave_running(&self) -> usize {
        let mut state = self.shared.lock();
        state.leaving = true;
        let left: Vec<AttemptId> = state
            .tasks
            .iter()
            .filter(|(_, t)| !t.cancelled)
            .map(|(a, _)| *a)
            .collect();
        for attempt in &left {
            state.tasks.remove(attempt);
        }
        left.len()
    }

    /// A task a previous life of this node submitted goes on running on the farm: when the
    /// store's requeued job is claimed here again with the same argv, the task is adopted
    /// (nothing is submitted twice) and its product published under the new claim. A task
    /// whose job is not claimed here within five minutes is cancelled.
    fn reattach(&self, job: &Abandoned) -> Reattach {
        let Some(RunHandle::Remote { executor, id }) = &job.run else {
            return Reattach::NotMine;
        };
        if executor != NAME {
            return Reattach::NotMine;
        }
        let (task, digest) = split_handle(id);
        let mut state = self.shared.lock();
        match digest {
            Some(digest) => {
                state.adoptable.insert(
                    job.id.to_string(),
                    Orphan {
                        id: task.to_string(),
                        digest: digest.to_string(),
                        temp: job.temp_output.clone(),
                        since: Instant::now(),
                    },
                );
                self.shared.wake.notify_all();
                Reattach::Following
            }
            // A handle without its argv's digest cannot be matched: cancelled, run again.
            None => {
                state.to_scancel.push(task.to_string());
                self.shared.wake.notify_all();
                Reattach::Stopped { processes: 1 }
            }
        }
    }

    /// Stops the farm and delivery threads. Tasks still on the farm are left to the next
    /// start, which cancels them in Slurm and runs their jobs again; a delivery still going
    /// (a copy, a store that does not answer) is not waited for.
    fn shutdown(self: Box<Self>) {
        let busy = {
            let mut state = self.shared.lock();
            state.closing = true;
            if !state.tasks.is_empty() {
                tracing::warn!(
                    tasks = state.tasks.len(),
                    "Slurm tasks still in flight at exit; the next start cancels them and runs their jobs again"
                );
            }
            state.delivering + state.busy.len()
        };
        self.shared.wake.notify_all();
        self.shared.delivered.notify_all();
        if busy > 0 {
            return;
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// The farm thread: gathers, submits, cancels and polls.
fn farm_loop(shared: &Shared) {
    let mut next_poll = Instant::now();
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let mut state = shared.lock();
        if state.closing {
            let gathering = std::mem::take(&mut state.gathering);
            let unsubmitted = std::mem::take(&mut state.unsubmitted);
            drop(state);
            for pending in gathering {
                shared.end_unsubmitted(pending, false);
            }
            for pending in unsubmitted.into_iter().flat_map(|b| b.items) {
                shared.end_unsubmitted(pending, true);
            }
            return;
        }
        let now = Instant::now();
        // A previous life's task whose job was not claimed here again (another node took it).
        let expired: Vec<String> = state
            .adoptable
            .iter()
            .filter(|(_, o)| o.since + ADOPT_WAIT <= now)
            .map(|(job, _)| job.clone())
            .collect();
        for job in expired {
            if let Some(orphan) = state.adoptable.remove(&job) {
                tracing::info!(job = %job, task = %orphan.id, "a Slurm task of this node's previous life was not claimed again here; cancelling it");
                state.to_scancel.push(orphan.id);
                if let Some(temp) = orphan.temp {
                    let _ = std::fs::remove_file(temp);
                }
            }
        }
        let adopt_due = state.adoptable.values().map(|o| o.since + ADOPT_WAIT).min();
        let gather_due = state.gather_since.map(|since| since + GATHER);
        let full = state.gathering.len() >= MAX_ARRAY;
        let following = !state.tasks.is_empty() || !state.unsubmitted.is_empty();
        let wake_at = [gather_due, following.then_some(next_poll), adopt_due]
            .into_iter()
            .flatten()
            .min();
        let cancels_now = !state.cancels.is_empty() || !state.to_scancel.is_empty();
        if !(full || cancels_now || wake_at.is_some_and(|at| at <= now)) {
            let timeout = wake_at.map_or(Duration::from_secs(3600), |at| at - now);
            drop(
                shared
                    .wake
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(PoisonError::into_inner),
            );
            continue;
        }
        let (to_scancel, cancelled) = resolve_cancels(&mut state);
        let gathered = if full || gather_due.is_some_and(|at| at <= now) {
            state.gather_since = None;
            std::mem::take(&mut state.gathering)
        } else {
            Vec::new()
        };
        let poll_now = next_poll <= now;
        let retry = if poll_now {
            std::mem::take(&mut state.unsubmitted)
        } else {
            Vec::new()
        };
        state.busy.extend(gathered.iter().map(|p| p.attempt));
        state
            .busy
            .extend(retry.iter().flat_map(|b| b.items.iter().map(|p| p.attempt)));
        let poll_every = state
            .tasks
            .values()
            .map(|t| &t.spec)
            .chain(gathered.iter().map(|p| &p.spec))
            .filter_map(|s| s.plan.slurm.as_ref().map(|r| r.poll_ms))
            .filter(|ms| *ms > 0)
            .min()
            .map_or(crate::rules::farm::DEFAULT_FARM_POLL, Duration::from_millis);
        drop(state);

        for pending in cancelled {
            shared.end_unsubmitted(pending, true);
        }
        if !to_scancel.is_empty()
            && let Err(error) = shared.client.cancel(&to_scancel)
        {
            // Asked again at the next poll, with whatever else is to cancel by then.
            tracing::warn!(tasks = to_scancel.len(), %error, "cannot cancel Slurm tasks yet; asking again at the next poll");
            let mut state = shared.lock();
            state.to_scancel.extend(to_scancel);
            drop(state);
            next_poll = next_poll.max(Instant::now() + poll_every);
        }
        if !gathered.is_empty() {
            for batch in submit::prepare(shared, gathered) {
                submit::submit_batch(shared, batch);
            }
        }
        for batch in retry {
            submit::submit_batch(shared, batch);
        }
        if poll_now {
            next_poll = Instant::now() + poll_every;
            follow::poll(shared, &mut unreachable_since);
        }
    }
}

/// Takes the cancels asked for: the ids to `scancel` (tasks in flight, orphans) and the
/// attempts that never reached the farm, to end here. A cancel of an attempt being submitted
/// stays asked for, and is resolved once it is in flight.
fn resolve_cancels(state: &mut State) -> (Vec<String>, Vec<Pending>) {
    let mut ids = std::mem::take(&mut state.to_scancel);
    let mut ended = Vec::new();
    let cancels = std::mem::take(&mut state.cancels);
    for attempt in cancels {
        if let Some(task) = state.tasks.get_mut(&attempt) {
            task.cancelled = true;
            ids.push(task.id.clone());
        } else if state.busy.contains(&attempt) {
            state.cancels.insert(attempt);
        } else {
            for batch in &mut state.unsubmitted {
                if let Some(at) = batch.items.iter().position(|p| p.attempt == attempt) {
                    ended.push(batch.items.remove(at));
                }
            }
            state.unsubmitted.retain(|b| !b.items.is_empty());
        }
    }
    if state.closing {
        // The next start cancels what is left, without holding up this stop.
        ids.clear();
    }
    (ids, ended)
}

/// Appends to a job's log.
fn append(path: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut log) = std::fs::File::options()
        .append(true)
        .create(true)
        .open(path)
    {
        let _ = log.write_all(text.as_bytes());
    }
}

/// The spool a job's request names.
fn spool_of(spec: &JobSpec) -> PathBuf {
    spec.plan
        .slurm
        .as_ref()
        .map(|r| r.spool.clone())
        .unwrap_or_default()
}
