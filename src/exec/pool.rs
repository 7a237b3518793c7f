//! The workers: `jobs` threads that run jobs the engine has already claimed, in the order it
//! handed them over. Fairness between rules, per-rule limits and retry delays are decided by
//! the engine before it claims a job; the pool only runs what it is given.
//!
//! A worker reports each step's process group to the engine (recorded in its next group commit)
//! and writes the product's version to the store itself, just before the rename, with the job's
//! fencing token: a product of a superseded claim is never published.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::exec::provenance::Provenance;
use crate::exec::runner::{self, JobControl, JobHooks, JobSpec, Outcome, Watchdog};
use crate::os::process::GroupId;
use crate::os::version::FileVersion;
use crate::store::StoreError;
use crate::store::queue::{Claim, Delivered, JobQueue, Published};

/// Longest a finished attempt waits for an unreachable store before its publish gives up.
const PUBLISH_WAIT: Duration = Duration::from_secs(120);

/// Opens a store connection for a worker (each worker has its own).
pub type QueueFactory = Arc<dyn Fn() -> Result<Box<dyn JobQueue>, StoreError> + Send + Sync>;

/// What a worker tells the engine, in order: each step's start, then the attempt's end.
#[derive(Debug)]
pub enum Report {
    /// A step of a claimed job started in this process group.
    Started {
        /// The job's claim.
        claim: Claim,
        /// The pool's handle on the job, to stop it if the claim turns out cancelled or stale.
        job: u64,
        /// Its hidden temp output, removed at recovery if the engine dies.
        temp_output: Option<PathBuf>,
        /// The group, to kill at recovery if the engine dies.
        group: Option<GroupId>,
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
}

/// The worker pool.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    done: Sender<Report>,
    provenance: Arc<Provenance>,
    watchdog: Watchdog,
    store: Option<QueueFactory>,
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
}

impl JobHooks for WorkerHooks<'_> {
    fn group_started(&mut self, pgid: i32) -> bool {
        if let Some(claim) = self.spec.claim {
            let _ = self.shared.done.send(Report::Started {
                claim,
                job: self.job,
                temp_output: self.spec.output.as_ref().map(|o| o.temp_path.clone()),
                group: GroupId::of(pgid),
            });
        }
        true
    }

    fn publishing(&mut self, output: &Path, version: FileVersion) -> bool {
        let Some(claim) = self.spec.claim else {
            self.shared
                .provenance
                .record(output, &self.spec.rule, version);
            return true;
        };
        let Some(open) = self.shared.store.as_ref() else {
            return true;
        };
        // The claim is checked at the publish or nothing is published: a product that cannot
        // be shown current might be stale. A store that cannot be reached (a database
        // restarting) is waited for, up to PUBLISH_WAIT, with the connection opened again;
        // after that the attempt fails and is retried as the rule says.
        let deadline = Instant::now() + PUBLISH_WAIT;
        let mut pause = Duration::from_millis(250);
        let what = if self
            .spec
            .output
            .as_ref()
            .is_some_and(|o| o.final_path == output)
        {
            Delivered::Product
        } else {
            Delivered::Copy
        };
        loop {
            let result = match self.store.as_mut() {
                Some(store) => store.publishing(claim, &self.spec.rule, output, version, what),
                None => open().and_then(|store| {
                    let store = self.store.insert(store);
                    store.publishing(claim, &self.spec.rule, output, version, what)
                }),
            };
            match result {
                Ok(()) => break,
                Err(e @ StoreError::Stale { .. }) => {
                    tracing::error!(job = claim.id, error = %e, "not publishing: this attempt lost its claim");
                    return false;
                }
                Err(e) if Instant::now() + pause > deadline => {
                    tracing::error!(job = claim.id, error = %e, "not publishing: cannot check the claim in the store");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(job = claim.id, error = %e, retry_in_ms = pause.as_millis() as u64, "the store does not answer; the publish waits for it");
                    *self.store = None;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.shared
            .provenance
            .record(output, &self.spec.rule, version);
        true
    }

    fn published_before(&mut self) -> Option<Published> {
        let claim = self.spec.claim?;
        let open = self.shared.store.as_ref()?;
        let store = match self.store.as_mut() {
            Some(store) => store,
            None => self.store.insert(open().ok()?),
        };
        match store.published_product(claim) {
            Ok(published) => published,
            Err(e) => {
                // Run as a first attempt would: the product is published again, no harm done.
                tracing::warn!(job = claim.id, error = %e, "cannot read what an earlier attempt published; running the commands");
                *self.store = None;
                None
            }
        }
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

impl Pool {
    /// Starts `limit` workers; finished attempts are sent to `done`. With `store`, each worker
    /// records products in the store before publishing them.
    pub fn new(
        limit: usize,
        provenance: Arc<Provenance>,
        store: Option<QueueFactory>,
        done: Sender<Report>,
    ) -> Pool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                limit,
                ..State::default()
            }),
            wake: Condvar::new(),
            done,
            provenance,
            watchdog: Watchdog::start(),
            store,
        });
        let mut pool = Pool {
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

    /// Runs a claimed job as soon as a worker is free.
    pub fn submit(&self, spec: JobSpec) {
        self.lock().ready.push_back(spec);
        self.shared.wake.notify_one();
    }

    /// Applies a new worker count after a rules reload.
    pub fn set_limit(&mut self, limit: usize) {
        self.lock().limit = limit;
        self.grow_to(limit);
        self.shared.wake.notify_all();
    }

    /// Jobs handed over and not started yet.
    pub fn waiting(&self) -> usize {
        self.lock().ready.len()
    }

    /// Jobs running.
    pub fn running(&self) -> usize {
        self.lock().running
    }

    /// Removes every job not yet started and returns them.
    pub fn drain_queued(&self) -> Vec<JobSpec> {
        std::mem::take(&mut self.lock().ready).into()
    }

    /// Stops one job: SIGTERM to its group now, SIGKILL after a grace (a user cancelled it,
    /// or its claim was superseded).
    pub fn cancel(&self, job: u64) {
        if let Some(control) = self.lock().controls.get(&job) {
            self.shared.watchdog.cancel(job, control);
        }
    }

    /// Stops every running job: SIGTERM now, SIGKILL after `kill_after`.
    pub fn cancel_running(&self, kill_after: Duration) {
        for (job, control) in &self.lock().controls {
            self.shared.watchdog.stop(*job, control, kill_after);
        }
    }

    /// Stops the workers once they are idle; call after draining and cancelling. Workers still
    /// running a job (a process that outlived SIGKILL, stuck in the kernel) are not waited for:
    /// the daemon's stop must end on time, and the next start recovers their claims.
    pub fn shutdown(mut self) {
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

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
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
        };
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
        })));
    }
}
