//! The job queue and its workers: at most `jobs` running at once and at most `concurrency` per
//! rule. Rules are served round-robin, so ten thousand frames for one rule do not starve the
//! SAN copy of another; within a rule jobs run in arrival order. Retries wait in a delayed queue
//! without holding a worker.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use std::path::{Path, PathBuf};

use crate::engine::ledger::Provenance;
use crate::exec::runner::{self, JobControl, JobHooks, JobSpec, Outcome, Watchdog};
use crate::os::process::GroupId;
use crate::os::version::FileVersion;
use crate::store::{JobId, Store};

/// What a worker tells the daemon, in order: a job's start, then its end.
#[derive(Debug)]
pub enum Report {
    /// The job's first step started in this process group.
    Started {
        /// Whether this is the job's first step (which claims the job).
        first: bool,
        /// The job's row in the store.
        store_id: JobId,
        /// The pool's handle on it, to cancel it if a user cancelled it meanwhile.
        job: u64,
        /// Its hidden temp output, removed at recovery if the daemon dies.
        temp_output: Option<PathBuf>,
        /// The group, to kill at recovery if the daemon dies.
        group: Option<GroupId>,
    },
    /// An attempt ended.
    Finished(Box<Finished>),
}

/// A finished attempt, sent back to the daemon.
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
    /// The state folder, when jobs are recorded; each worker opens its own connection.
    store_dir: Option<PathBuf>,
}

/// Reports a worker's job as it runs: its start to the daemon (which records it in its next
/// group commit), its product in memory and, before the rename, in the store.
struct WorkerHooks<'a> {
    shared: &'a Shared,
    /// Opened on the first publish: the only write a worker makes itself, since it must be
    /// durable before the rename.
    store: &'a mut Option<Store>,
    spec: &'a JobSpec,
    job: u64,
    started: bool,
}

impl JobHooks for WorkerHooks<'_> {
    fn group_started(&mut self, pgid: i32) -> bool {
        let Some(store_id) = self.spec.store_id else {
            return true;
        };
        let _ = self.shared.done.send(Report::Started {
            first: !self.started,
            store_id,
            job: self.job,
            temp_output: self.spec.output.as_ref().map(|o| o.temp_path.clone()),
            group: GroupId::of(pgid),
        });
        self.started = true;
        true
    }

    fn publishing(&mut self, output: &Path, version: FileVersion) {
        self.shared
            .provenance
            .record(output, &self.spec.rule, version);
        let Some(id) = self.spec.store_id else { return };
        let Some(dir) = self.shared.store_dir.as_deref() else {
            return;
        };
        if self.store.is_none() {
            match Store::open(dir) {
                Ok(store) => *self.store = Some(store),
                Err(e) => {
                    tracing::warn!(job = id, error = %e, "cannot open the store to record the product")
                }
            }
        }
        if let Some(store) = self.store.as_mut()
            && let Err(e) = store.publishing(id, &self.spec.rule, output, version)
        {
            tracing::warn!(job = id, error = %e, "cannot record the product before publishing it");
        }
    }
}

#[derive(Default)]
struct State {
    limit: usize,
    rule_limits: HashMap<String, usize>,
    queues: BTreeMap<String, VecDeque<JobSpec>>,
    rotation: usize,
    delayed: Vec<(Instant, JobSpec)>,
    running: HashMap<String, usize>,
    running_total: usize,
    controls: HashMap<u64, Arc<JobControl>>,
    started: u64,
    closing: bool,
}

impl State {
    /// The next job allowed to start now, if any.
    fn pick(&mut self, now: Instant) -> Option<JobSpec> {
        let mut index = 0;
        while index < self.delayed.len() {
            if self.delayed[index].0 <= now {
                let (_, spec) = self.delayed.swap_remove(index);
                self.queues
                    .entry(spec.rule.clone())
                    .or_default()
                    .push_back(spec);
            } else {
                index += 1;
            }
        }
        if self.running_total >= self.limit {
            return None;
        }
        let rules: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(r, _)| r.clone())
            .collect();
        for offset in 0..rules.len() {
            let rule = &rules[(self.rotation + offset) % rules.len()];
            let limit = self.rule_limits.get(rule).copied().unwrap_or(usize::MAX);
            if self.running.get(rule).copied().unwrap_or(0) < limit {
                self.rotation = (self.rotation + offset + 1) % rules.len();
                return self.queues.get_mut(rule).and_then(VecDeque::pop_front);
            }
        }
        None
    }

    fn next_delayed(&self) -> Option<Instant> {
        self.delayed.iter().map(|(at, _)| *at).min()
    }
}

impl Pool {
    /// Starts `limit` workers; finished attempts are sent to `done`.
    pub fn new(
        limit: usize,
        rule_limits: HashMap<String, usize>,
        provenance: Arc<Provenance>,
        store_dir: Option<PathBuf>,
        done: Sender<Report>,
    ) -> Pool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                limit,
                rule_limits,
                ..State::default()
            }),
            wake: Condvar::new(),
            done,
            provenance,
            watchdog: Watchdog::start(),
            store_dir,
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

    /// Queues a job to run as soon as limits allow.
    pub fn submit(&self, spec: JobSpec) {
        let mut state = self.lock();
        state
            .queues
            .entry(spec.rule.clone())
            .or_default()
            .push_back(spec);
        drop(state);
        self.shared.wake.notify_one();
    }

    /// Queues a job to run no earlier than `at` (a retry after backoff).
    pub fn submit_at(&self, spec: JobSpec, at: Instant) {
        self.lock().delayed.push((at, spec));
        self.shared.wake.notify_all();
    }

    /// Applies new limits after a rules reload.
    pub fn set_limits(&mut self, limit: usize, rule_limits: HashMap<String, usize>) {
        {
            let mut state = self.lock();
            state.limit = limit;
            state.rule_limits = rule_limits;
        }
        self.grow_to(limit);
        self.shared.wake.notify_all();
    }

    /// Jobs waiting (including delayed retries).
    pub fn queued(&self) -> usize {
        let state = self.lock();
        state.queues.values().map(VecDeque::len).sum::<usize>() + state.delayed.len()
    }

    /// Jobs running.
    pub fn running(&self) -> usize {
        self.lock().running_total
    }

    /// Removes every job not yet started and returns them.
    pub fn drain_queued(&self) -> Vec<JobSpec> {
        let mut state = self.lock();
        let mut drained: Vec<JobSpec> = std::mem::take(&mut state.queues)
            .into_values()
            .flatten()
            .collect();
        drained.extend(
            std::mem::take(&mut state.delayed)
                .into_iter()
                .map(|(_, s)| s),
        );
        drained
    }

    /// Cancels one running job (a user cancelled it just as it started).
    pub fn cancel(&self, job: u64) {
        if let Some(control) = self.lock().controls.get(&job) {
            self.shared.watchdog.cancel(job, control);
        }
    }

    /// Cancels every running job (SIGTERM to its group, SIGKILL after a grace).
    pub fn cancel_running(&self) {
        for (job, control) in &self.lock().controls {
            self.shared.watchdog.cancel(*job, control);
        }
    }

    /// Stops the workers once they are idle; call after draining and cancelling.
    pub fn shutdown(mut self) {
        self.lock().closing = true;
        self.shared.wake.notify_all();
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
    let mut store: Option<Store> = None;
    let mut state = shared.lock();
    loop {
        if state.closing {
            return;
        }
        let Some(spec) = state.pick(Instant::now()) else {
            state = match state.next_delayed() {
                Some(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    shared
                        .wake
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
            continue;
        };
        let control = Arc::new(JobControl::default());
        state.started += 1;
        let job = state.started;
        state.running_total += 1;
        *state.running.entry(spec.rule.clone()).or_default() += 1;
        state.controls.insert(job, control.clone());
        drop(state);

        let started = Instant::now();
        tracing::info!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), attempt = spec.attempt, "start");
        let mut hooks = WorkerHooks {
            shared,
            store: &mut store,
            spec: &spec,
            job,
            started: false,
        };
        let outcome = runner::run(&spec, job, &control, &shared.watchdog, &mut hooks);
        let duration = started.elapsed();

        state = shared.lock();
        state.running_total -= 1;
        if let Some(n) = state.running.get_mut(&spec.rule) {
            *n -= 1;
        }
        state.controls.remove(&job);
        // A slot freed: another worker may now start a job this rule's limit held back.
        shared.wake.notify_all();
        let _ = shared.done.send(Report::Finished(Box::new(Finished {
            spec,
            outcome,
            duration,
        })));
    }
}
