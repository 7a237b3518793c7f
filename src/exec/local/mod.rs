//! The local executor: `jobs` threads that run jobs the engine has already claimed, each step
//! in a process group of its own on this machine, in the order they were handed over. Fairness between rules, per-rule limits and retry delays are decided by
//! the engine before it claims a job; the pool only runs what it is given.
//!
//! A worker reports each step's process group to the engine (recorded in its next group commit)
//! and writes the product's version to the store itself, just before the rename, with the job's
//! fencing token: a product of a superseded claim is never published.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::exec::executor::{AttemptId, Executor, Finished, Reattach, Report};
use crate::exec::fenced_publish::FencedPublisher;
use crate::exec::provenance::Provenance;
use crate::exec::runner::{self, JobControl, JobHooks, JobSpec, Watchdog};
use crate::os::process::GroupId;
use crate::os::version::FileVersion;
use crate::store::RunHandle;
use crate::store::queue::{Abandoned, JobQueue, Published};

pub use crate::exec::fenced_publish::QueueFactory;

/// The local executor: a pool of threads, each running one attempt's process groups.
pub struct LocalExecutor {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    done: Sender<Report>,
    watchdog: Watchdog,
    publisher: FencedPublisher,
}

#[derive(Default)]
struct State {
    limit: usize,
    ready: VecDeque<JobSpec>,
    running: usize,
    controls: HashMap<u64, Arc<JobControl>>,
    started: u64,
    closing: bool,
}

/// Reports a worker's job as it runs: each step's group to the engine, its product in memory
/// and, before the rename, in the store.
struct WorkerHooks<'a> {
    shared: &'a Shared,
    /// Opened on the first publish: the only write a worker makes itself, since it must be
    /// durable before the rename.
    store: &'a mut Option<Box<dyn JobQueue>>,
    spec: &'a JobSpec,
    job: u64,
    /// The attempt's start was reported (a step ran past `exec::step::QUICK_STEP`).
    reported: bool,
}

impl JobHooks for WorkerHooks<'_> {
    fn group_started(&mut self, pgid: i32) -> bool {
        if let Some(claim) = self.spec.claim {
            self.reported = true;
            let _ = self.shared.done.send(Report::Started {
                claim,
                job: self.job,
                temp_output: self.spec.plan.output.as_ref().map(|o| o.temp_path.clone()),
                run: (pgid > 0)
                    .then(|| GroupId::of(pgid))
                    .flatten()
                    .map(RunHandle::Local),
            });
        }
        true
    }

    fn start_reported(&self) -> bool {
        self.reported || self.spec.claim.is_none()
    }

    fn records_starts(&self) -> bool {
        self.spec.claim.is_some()
    }

    fn publishing(&mut self, output: &Path, version: FileVersion) -> bool {
        self.shared
            .publisher
            .publishing(self.store, self.spec, output, version)
    }

    fn published_before(&mut self) -> Option<Published> {
        self.shared
            .publisher
            .published_before(self.store, self.spec)
    }

    fn progress_sink(&mut self) -> Option<crate::exec::progress::ProgressSink> {
        let done = self.shared.done.clone();
        let id = self.spec.id.clone();
        Some(Box::new(move |progress| {
            let _ = done.send(Report::Progress {
                id: id.clone(),
                progress,
            });
        }))
    }
}

impl LocalExecutor {
    /// Starts `limit` workers; finished attempts are sent to `done`. With `store`, each worker
    /// records products in the store before publishing them.
    pub fn new(
        limit: usize,
        provenance: Arc<Provenance>,
        store: Option<QueueFactory>,
        done: Sender<Report>,
    ) -> LocalExecutor {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                limit,
                ..State::default()
            }),
            wake: Condvar::new(),
            done,
            watchdog: Watchdog::start(),
            publisher: FencedPublisher { provenance, store },
        });
        let mut pool = LocalExecutor {
            shared,
            workers: Vec::new(),
        };
        pool.grow_to(limit);
        pool
    }

    fn grow_to(&mut self, count: usize) {
        while self.workers.len() < count {
            let shared = self.shared.clone();
            let name = format!("worker-{}", self.workers.len() + 1);
            match std::thread::Builder::new()
                .name(name)
                .spawn(move || worker(&shared))
            {
                Ok(handle) => self.workers.push(handle),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a worker thread");
                    break;
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

impl Executor for LocalExecutor {
    /// Runs a claimed job as soon as a worker is free.
    fn submit(&self, spec: JobSpec) {
        self.lock().ready.push_back(spec);
        self.shared.wake.notify_one();
    }

    /// Applies a new worker count after a rules reload.
    fn set_limit(&mut self, limit: usize) {
        self.lock().limit = limit;
        self.grow_to(limit);
        self.shared.wake.notify_all();
    }

    /// Jobs handed over and not started yet.
    fn waiting(&self) -> usize {
        self.lock().ready.len()
    }

    /// Jobs running.
    fn running(&self) -> usize {
        self.lock().running
    }

    /// Removes every job not yet started and returns them.
    fn drain_queued(&self) -> Vec<JobSpec> {
        std::mem::take(&mut self.lock().ready).into()
    }

    /// Stops one job: SIGTERM to its group now, SIGKILL after a grace (a user cancelled it,
    /// or its claim was superseded).
    fn cancel(&self, job: AttemptId) {
        if let Some(control) = self.lock().controls.get(&job) {
            self.shared.watchdog.cancel(job, control);
        }
    }

    /// Stops every running job: SIGTERM now, SIGKILL after `kill_after`.
    fn cancel_running(&self, kill_after: Duration) {
        for (job, control) in &self.lock().controls {
            self.shared.watchdog.stop(*job, control, kill_after);
        }
    }

    /// A group a previous daemon recorded cannot be followed (its exit status went with that
    /// daemon, and its product was written through that daemon's folder handle): it is
    /// killed, if provably the one started, and the job runs again.
    fn reattach(&self, job: &Abandoned) -> Reattach {
        match &job.run {
            Some(RunHandle::Local(group)) => Reattach::Stopped {
                processes: group.kill(),
            },
            Some(RunHandle::Remote { .. }) => Reattach::NotMine,
            None => Reattach::Stopped { processes: 0 },
        }
    }

    /// Stops the workers once they are idle; call after draining and cancelling. Workers still
    /// running a job (a process that outlived SIGKILL, stuck in the kernel) are not waited for:
    /// the daemon's stop must end on time, and the next start recovers their claims.
    fn shutdown(mut self: Box<Self>) {
        let running = {
            let mut state = self.lock();
            state.closing = true;
            state.running
        };
        self.shared.wake.notify_all();
        if running > 0 {
            tracing::warn!(
                running,
                "jobs still running at exit; the next start recovers them"
            );
            return;
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn worker(shared: &Shared) {
    let mut store: Option<Box<dyn JobQueue>> = None;
    let mut state = shared.lock();
    loop {
        if state.closing {
            return;
        }
        if state.running >= state.limit || state.ready.is_empty() {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        let Some(mut spec) = state.ready.pop_front() else {
            continue;
        };
        crate::exec::temps::bind_claim(&mut spec);
        let control = Arc::new(JobControl::default());
        state.started += 1;
        let job = state.started;
        state.running += 1;
        state.controls.insert(job, control.clone());
        drop(state);

        let started = Instant::now();
        tracing::info!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), attempt = spec.attempt, "start");
        let mut hooks = WorkerHooks {
            shared,
            store: &mut store,
            spec: &spec,
            job,
            reported: false,
        };
        let facts = crate::exec::lineage::RunFacts::gather(&spec.plan);
        let outcome = runner::run(&spec, job, &control, &shared.watchdog, &mut hooks);
        let duration = started.elapsed();

        state = shared.lock();
        state.running -= 1;
        state.controls.remove(&job);
        shared.wake.notify_one();
        let _ = shared.done.send(Report::Finished(Box::new(Finished {
            spec,
            outcome,
            duration,
            facts,
        })));
    }
}

/// Stops a process group from its handle alone: SIGTERM to every live member, SIGKILL to what is
/// left after `grace`. Answers how many were asked to stop.
pub fn terminate(group: &GroupId, grace: Duration) -> usize {
    let asked = group.signal(nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while !group.live_members().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    group.kill();
    asked
}
