//! The Slurm executor: claimed jobs of `executor: slurm` rules run as tasks of the studio's
//! Slurm cluster, and come back here to be verified and published.
//!
//! - **Bursts are arrays.** Jobs handed over within [`GATHER`] of each other with the same
//!   `slurm:` request are one `sbatch --array` (at most [`MAX_ARRAY`] tasks, under Slurm's
//!   default `MaxArraySize` of 1001): a render's thousand frames cost one submission, not a
//!   thousand.
//! - **Followed without accounting.** One thread asks `squeue` about every array in flight each
//!   `slurm.poll`, and reads each task's end record (`script`): no `sacct`, no `slurmdbd`. A
//!   controller that does not answer is waited for; a task is only ever ended by what Slurm or
//!   its end record said.
//! - **Delivered here.** A task that completed goes to a delivery thread that runs the same
//!   steps as a local job (`runner::remote::finish`): verify, publish with the claim checked in
//!   the store, copy or move. A task the farm lost (`NODE_FAIL`, `PREEMPTED`, `BOOT_FAIL`) is
//!   submitted again without spending an attempt.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::exec::executor::{AttemptId, Executor, Finished, Reattach, Report};
use crate::exec::fenced_publish::{FencedPublisher, QueueFactory};
use crate::exec::provenance::Provenance;
use crate::exec::runner::remote::{self, Prepared};
use crate::exec::runner::{Failure, JobHooks, JobSpec, Outcome};
use crate::os::version::FileVersion;
use crate::rules::farm::SlurmRequest;
use crate::store::RunHandle;
use crate::store::queue::{JobQueue, Published};

pub mod client;
pub mod script;

use client::{Client, ClientError};
use script::{EndRecord, EndStatus};

/// The executor's name in run handles (`slurm:123_4`).
pub const NAME: &str = "slurm";
/// How long jobs handed over are gathered into one array before it is submitted.
pub const GATHER: Duration = Duration::from_millis(200);
/// Most tasks in one array (Slurm's default `MaxArraySize` is 1001: indices 0 to 1000).
pub const MAX_ARRAY: usize = 1000;
/// Polls a task Slurm calls finished may wait for its end record (shared storage can show a
/// file late) before it is failed for writing none.
const END_RECORD_POLLS: u32 = 10;
/// Polls in a row a task may be missing from `squeue` before it counts as gone.
const MISSING_POLLS: u32 = 3;
/// Times a task the farm lost is submitted again before the attempt fails.
const MAX_LOST: u32 = 3;
/// The first attempt number this executor hands out: above the local executor's, so a node
/// holding both knows whose an attempt is.
pub const FIRST_ATTEMPT: AttemptId = 1 << 48;
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
    gathering: Vec<(AttemptId, JobSpec)>,
    gather_since: Option<Instant>,
    /// Prepared, but the controller did not take them yet.
    unsubmitted: Vec<Vec<(AttemptId, JobSpec)>>,
    /// Submitted, followed by polling.
    tasks: HashMap<AttemptId, Task>,
    /// Ended on the farm, to be delivered here.
    ended: VecDeque<Ended>,
    delivering: usize,
    /// Cancels asked for, sent by the farm thread.
    to_cancel: Vec<AttemptId>,
    next: AttemptId,
    closing: bool,
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
    lost: u32,
}

/// A task that ended on the farm: how, and where its output is.
struct Ended {
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
        if let Ok(handle) = std::thread::Builder::new()
            .name("slurm".into())
            .spawn(move || farm_loop(&farm))
        {
            threads.push(handle);
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

    fn finished(&self, spec: JobSpec, outcome: Outcome, started: Instant) {
        let _ = self.done.send(Report::Finished(Box::new(Finished {
            spec,
            outcome,
            duration: started.elapsed(),
        })));
    }
}

impl Executor for SlurmExecutor {
    fn submit(&self, mut spec: JobSpec) {
        crate::exec::temps::bind_claim(&mut spec);
        let mut state = self.shared.lock();
        let attempt = state.next;
        state.next += 1;
        state.gathering.push((attempt, spec));
        state.gather_since.get_or_insert_with(Instant::now);
        self.shared.wake.notify_all();
    }

    /// The farm's capacity is the scheduler's; `slurm.max_jobs` bounds what is in flight.
    fn set_limit(&mut self, _limit: usize) {}

    fn waiting(&self) -> usize {
        let state = self.shared.lock();
        state.gathering.len() + state.unsubmitted.iter().map(Vec::len).sum::<usize>()
    }

    fn running(&self) -> usize {
        let state = self.shared.lock();
        state.tasks.len() + state.ended.len() + state.delivering
    }

    fn drain_queued(&self) -> Vec<JobSpec> {
        let mut state = self.shared.lock();
        state.gather_since = None;
        let mut specs: Vec<JobSpec> = state.gathering.drain(..).map(|(_, s)| s).collect();
        // Prepared ones keep nothing that a next attempt would not make again.
        specs.extend(state.unsubmitted.drain(..).flatten().map(|(_, s)| s));
        specs
    }

    fn cancel(&self, attempt: AttemptId) {
        let mut state = self.shared.lock();
        if let Some(at) = state.gathering.iter().position(|(a, _)| *a == attempt) {
            let (_, spec) = state.gathering.remove(at);
            drop(state);
            self.shared
                .finished(spec, Outcome::Cancelled, Instant::now());
            return;
        }
        if state.tasks.contains_key(&attempt) {
            state.to_cancel.push(attempt);
            self.shared.wake.notify_all();
        }
    }

    fn cancel_running(&self, _kill_after: Duration) {
        let mut state = self.shared.lock();
        let all: Vec<AttemptId> = state.tasks.keys().copied().collect();
        state.to_cancel.extend(all);
        self.shared.wake.notify_all();
    }

    /// A task a previous life of this node submitted is cancelled in Slurm (its claim was given
    /// back; the job runs again as a new task). Following it instead is left for later.
    fn reattach(&self, run: &RunHandle) -> Reattach {
        match run {
            RunHandle::Remote { executor, id } if executor == NAME => {
                match self.shared.client.cancel(id) {
                    Ok(()) => Reattach::Stopped { processes: 1 },
                    Err(error) => {
                        tracing::warn!(task = %id, %error, "cannot cancel a Slurm task of this node's previous life; its product will not be published");
                        Reattach::Stopped { processes: 0 }
                    }
                }
            }
            _ => Reattach::NotMine,
        }
    }

    fn shutdown(self: Box<Self>) {
        {
            let mut state = self.shared.lock();
            state.closing = true;
            if !state.tasks.is_empty() {
                tracing::warn!(
                    tasks = state.tasks.len(),
                    "Slurm tasks still in flight at exit; the next start cancels them and runs their jobs again"
                );
            }
        }
        self.shared.wake.notify_all();
        self.shared.delivered.notify_all();
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
            return;
        }
        let now = Instant::now();
        let gather_due = state.gather_since.map(|since| since + GATHER);
        let full = state.gathering.len() >= MAX_ARRAY;
        let wake_at = [
            gather_due,
            (!state.tasks.is_empty() || !state.unsubmitted.is_empty()).then_some(next_poll),
        ]
        .into_iter()
        .flatten()
        .min();
        let work_now = full || !state.to_cancel.is_empty() || wake_at.is_some_and(|at| at <= now);
        if !work_now {
            let timeout = wake_at.map_or(Duration::from_secs(3600), |at| at - now);
            drop(
                shared
                    .wake
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(PoisonError::into_inner),
            );
            continue;
        }
        let cancels: Vec<(AttemptId, String)> = std::mem::take(&mut state.to_cancel)
            .into_iter()
            .filter_map(|attempt| {
                let task = state.tasks.get_mut(&attempt)?;
                task.cancelled = true;
                Some((attempt, task.id.clone()))
            })
            .collect();
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
        let poll_every = state
            .tasks
            .values()
            .filter_map(|t| t.spec.plan.slurm.as_ref().map(|r| r.poll_ms))
            .chain(
                gathered
                    .iter()
                    .filter_map(|(_, s)| s.plan.slurm.as_ref().map(|r| r.poll_ms)),
            )
            .filter(|ms| *ms > 0)
            .min()
            .map_or(crate::rules::farm::DEFAULT_FARM_POLL, Duration::from_millis);
        drop(state);

        for (_, id) in cancels {
            if let Err(error) = shared.client.cancel(&id) {
                tracing::warn!(task = %id, %error, "cannot cancel a Slurm task yet; asking again at the next poll");
                let mut state = shared.lock();
                if let Some(attempt) = state
                    .tasks
                    .iter()
                    .find(|(_, t)| t.id == id)
                    .map(|(a, _)| *a)
                {
                    state.to_cancel.push(attempt);
                }
            }
        }
        if !gathered.is_empty() {
            for batch in prepare(shared, gathered) {
                submit_batch(shared, batch);
            }
        }
        for batch in retry {
            submit_batch(shared, batch);
        }
        if poll_now {
            next_poll = Instant::now() + poll_every;
            poll(shared, &mut unreachable_since);
        }
    }
}

/// Readies each gathered job here (folders, views, an earlier publish) and groups the rest by
/// rule and request into arrays of at most [`MAX_ARRAY`].
fn prepare(shared: &Shared, gathered: Vec<(AttemptId, JobSpec)>) -> Vec<Vec<(AttemptId, JobSpec)>> {
    let mut groups: BTreeMap<(String, String), Vec<(AttemptId, JobSpec)>> = BTreeMap::new();
    let mut conn = None;
    for (attempt, spec) in gathered {
        let started = Instant::now();
        let mut hooks = Hooks {
            publisher: &shared.publisher,
            conn: &mut conn,
            spec: &spec,
        };
        match remote::prepare(&spec, &mut hooks) {
            Prepared::Submit => {
                let key = serde_json::to_string(&spec.plan.slurm).unwrap_or_default();
                groups
                    .entry((spec.rule.clone(), key))
                    .or_default()
                    .push((attempt, spec));
            }
            Prepared::Ended(outcome) => shared.finished(spec, outcome, started),
        }
    }
    groups
        .into_values()
        .flat_map(|group| {
            let mut chunks = Vec::new();
            let mut group = group.into_iter().peekable();
            while group.peek().is_some() {
                chunks.push(group.by_ref().take(MAX_ARRAY).collect::<Vec<_>>());
            }
            chunks
        })
        .collect()
}

/// Submits one array; a controller that does not answer keeps it for the next poll.
fn submit_batch(shared: &Shared, batch: Vec<(AttemptId, JobSpec)>) {
    let Some(request) = batch.first().and_then(|(_, s)| s.plan.slurm.clone()) else {
        return;
    };
    let rule = batch[0].1.rule.clone();
    let tasks: Vec<script::Task<'_>> = batch
        .iter()
        .map(|(_, spec)| script::Task {
            job: &spec.id,
            steps: &spec.plan.steps,
        })
        .collect();
    let text = script::batch_script(&rule, &request.spool, &tasks);
    let result = make_spool(&request).and_then(|()| {
        shared
            .client
            .submit(&text, batch.len(), &sbatch_args(&rule, &request))
    });
    match result {
        Ok(array) => {
            tracing::info!(rule = %rule, array, tasks = batch.len(), "submitted to Slurm");
            let mut state = shared.lock();
            for (index, (attempt, spec)) in batch.into_iter().enumerate() {
                let id = format!("{array}_{index}");
                note_submitted(&spec, &id, index, &request);
                if let Some(claim) = spec.claim {
                    let _ = shared.done.send(Report::Started {
                        claim,
                        job: attempt,
                        temp_output: spec.plan.output.as_ref().map(|o| o.temp_path.clone()),
                        run: Some(RunHandle::Remote {
                            executor: NAME.to_string(),
                            id: id.clone(),
                        }),
                    });
                }
                state.tasks.insert(
                    attempt,
                    Task {
                        spec,
                        id,
                        array,
                        index: index as u32,
                        started: Instant::now(),
                        last_state: String::new(),
                        cancelled: false,
                        missing_polls: 0,
                        record_polls: 0,
                        lost: 0,
                    },
                );
            }
        }
        Err(error @ ClientError::Unreachable { .. }) => {
            tracing::warn!(rule = %rule, tasks = batch.len(), %error, "Slurm does not answer; the submission waits for it");
            shared.lock().unsubmitted.push(batch);
        }
        Err(error) => {
            tracing::warn!(rule = %rule, tasks = batch.len(), %error, "Slurm refused the submission");
            for (_, spec) in batch {
                let failure =
                    Outcome::Failed(Failure::Farm(format!("Slurm refused the job: {error}")));
                let mut conn = None;
                let mut hooks = Hooks {
                    publisher: &shared.publisher,
                    conn: &mut conn,
                    spec: &spec,
                };
                let outcome = remote::finish(&spec, Err(failure), None, &mut hooks);
                shared.finished(spec, outcome, Instant::now());
            }
        }
    }
}

/// `sbatch`'s options for an array of `rule`: its name, its log, then the request's own.
fn sbatch_args(rule: &str, request: &SlurmRequest) -> Vec<OsString> {
    let name: String = rule
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut output = OsString::from("--output=");
    output.push(request.spool.join("logs").join("%A_%a.log"));
    let mut args = vec![
        OsString::from(format!("--job-name=shotrouter-{name}")),
        output,
    ];
    args.extend(request.sbatch_args().into_iter().map(OsString::from));
    args
}

fn make_spool(request: &SlurmRequest) -> Result<(), ClientError> {
    for folder in ["logs", "ends"] {
        let path = request.spool.join(folder);
        std::fs::create_dir_all(&path).map_err(|e| ClientError::Refused {
            program: "sbatch",
            message: format!("cannot make the spool folder `{}`: {e}", path.display()),
        })?;
    }
    Ok(())
}

/// Tells the job's log where its task went.
fn note_submitted(spec: &JobSpec, id: &str, index: usize, request: &SlurmRequest) {
    let mut lines = String::new();
    for argv in &spec.plan.steps {
        let display: Vec<String> = argv
            .iter()
            .map(|a| {
                crate::os::quote::shell_quote(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str()))
            })
            .collect();
        lines.push_str(&format!("$ {}\n", display.join(" ")));
    }
    lines.push_str(&format!(
        "== submitted to Slurm as task {id} (index {index} of its array); its output: {}\n",
        script::log_path(&request.spool, id).display()
    ));
    append(&spec.log_path, &lines);
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    if let Ok(mut log) = std::fs::File::options()
        .append(true)
        .create(true)
        .open(path)
    {
        let _ = log.write_all(text.as_bytes());
    }
}

/// One look at every array in flight.
fn poll(shared: &Shared, unreachable_since: &mut Option<Instant>) {
    let arrays: Vec<u64> = {
        let state = shared.lock();
        let mut arrays: Vec<u64> = state.tasks.values().map(|t| t.array).collect();
        arrays.sort_unstable();
        arrays.dedup();
        arrays
    };
    if arrays.is_empty() {
        return;
    }
    let rows = match shared.client.query(&arrays) {
        Ok(rows) => {
            if let Some(since) = unreachable_since.take() {
                tracing::info!(after_s = since.elapsed().as_secs(), "Slurm answers again");
            }
            rows
        }
        Err(error) => {
            if unreachable_since.is_none() {
                tracing::warn!(%error, "cannot ask Slurm about its tasks; they are kept and followed when it answers");
                *unreachable_since = Some(Instant::now());
            }
            return;
        }
    };
    let by_task: HashMap<(u64, u32), &client::Row> = rows
        .iter()
        .filter_map(|row| Some(((row.array, row.task?), row)))
        .collect();
    let mut state = shared.lock();
    let mut ended = Vec::new();
    let mut lost = Vec::new();
    for (attempt, task) in &mut state.tasks {
        let row = by_task.get(&(task.array, task.index)).copied();
        match follow(task, row) {
            Step::Wait => {}
            Step::End(result) => ended.push((*attempt, result)),
            Step::Lost(why) => lost.push((*attempt, why)),
        }
    }
    for (attempt, result) in ended {
        if let Some(task) = state.tasks.remove(&attempt) {
            let spool = task
                .spec
                .plan
                .slurm
                .as_ref()
                .map(|r| r.spool.clone())
                .unwrap_or_default();
            state.ended.push_back(Ended {
                log: Some(script::log_path(&spool, &task.id)),
                end_record: Some(script::end_path(&spool, &task.id)),
                spec: task.spec,
                result,
                started: task.started,
            });
        }
    }
    let mut again = Vec::new();
    for (attempt, why) in lost {
        if let Some(task) = state.tasks.remove(&attempt) {
            let spool = task
                .spec
                .plan
                .slurm
                .as_ref()
                .map(|r| r.spool.clone())
                .unwrap_or_default();
            if task.lost + 1 >= MAX_LOST {
                state.ended.push_back(Ended {
                    log: Some(script::log_path(&spool, &task.id)),
                    end_record: None,
                    result: Err(Outcome::Failed(Failure::Farm(format!(
                        "{why}, {MAX_LOST} times; giving up this attempt"
                    )))),
                    spec: task.spec,
                    started: task.started,
                });
            } else {
                append(
                    &task.spec.log_path,
                    &format!(
                        "== Slurm task {} {why}; submitted again (the attempt is not spent)\n",
                        task.id
                    ),
                );
                again.push((attempt, task.spec, task.lost + 1));
            }
        }
    }
    drop(state);
    shared.delivered.notify_all();
    if !again.is_empty() {
        // Resubmitted as one array; their lost count is kept.
        let lost_counts: HashMap<AttemptId, u32> = again.iter().map(|(a, _, n)| (*a, *n)).collect();
        let batch: Vec<(AttemptId, JobSpec)> = again.into_iter().map(|(a, s, _)| (a, s)).collect();
        for chunk in regroup(batch) {
            submit_batch(shared, chunk);
        }
        let mut state = shared.lock();
        for (attempt, n) in lost_counts {
            if let Some(task) = state.tasks.get_mut(&attempt) {
                task.lost = n;
            }
        }
    }
}

/// Groups jobs by rule and request, in arrays of at most [`MAX_ARRAY`].
fn regroup(batch: Vec<(AttemptId, JobSpec)>) -> Vec<Vec<(AttemptId, JobSpec)>> {
    let mut groups: BTreeMap<(String, String), Vec<(AttemptId, JobSpec)>> = BTreeMap::new();
    for (attempt, spec) in batch {
        let key = serde_json::to_string(&spec.plan.slurm).unwrap_or_default();
        groups
            .entry((spec.rule.clone(), key))
            .or_default()
            .push((attempt, spec));
    }
    groups
        .into_values()
        .flat_map(|g| g.chunks(MAX_ARRAY).map(<[_]>::to_vec).collect::<Vec<_>>())
        .collect()
}

/// What one poll learned of a task.
enum Step {
    Wait,
    End(Result<(), Outcome>),
    /// The farm lost it (a node failed, it was preempted): run it again, attempt not spent.
    Lost(String),
}

/// Reads a task's row (or its absence) and its end record.
fn follow(task: &mut Task, row: Option<&client::Row>) -> Step {
    let spool = task
        .spec
        .plan
        .slurm
        .as_ref()
        .map(|r| r.spool.clone())
        .unwrap_or_default();
    let record = || {
        std::fs::read_to_string(script::end_path(&spool, &task.id))
            .ok()
            .and_then(|text| EndRecord::parse(&text))
    };
    let Some(row) = row else {
        if let Some(record) = record() {
            return Step::End(by_record(task, &record));
        }
        // A pending task cancelled here leaves the queue without ever running.
        if task.cancelled {
            return Step::End(Err(Outcome::Cancelled));
        }
        task.missing_polls += 1;
        if task.missing_polls >= MISSING_POLLS {
            let last = if task.last_state.is_empty() {
                "never listed".to_string()
            } else {
                format!("last seen {}", task.last_state)
            };
            return Step::End(Err(Outcome::Failed(Failure::Farm(format!(
                "Slurm task {} left the queue without an end record ({last})",
                task.id
            )))));
        }
        return Step::Wait;
    };
    task.missing_polls = 0;
    if row.state != task.last_state {
        let detail = match row.state.as_str() {
            "PENDING" if row.reason != "None" => format!(" ({})", row.reason),
            "RUNNING" => format!(" on {}", row.nodes),
            _ => String::new(),
        };
        append(
            &task.spec.log_path,
            &format!("== Slurm task {}: {}{detail}\n", task.id, row.state),
        );
        task.last_state = row.state.clone();
    }
    let state = row.state.as_str();
    match state {
        "COMPLETED" | "FAILED" => match record() {
            Some(record) => Step::End(by_record(task, &record)),
            None => {
                task.record_polls += 1;
                if task.record_polls < END_RECORD_POLLS {
                    Step::Wait
                } else {
                    Step::End(Err(Outcome::Failed(Failure::Farm(format!(
                        "Slurm says task {} {}, but it left no end record at `{}` (is the spool on storage every farm node mounts?)",
                        task.id,
                        state.to_ascii_lowercase(),
                        script::end_path(&spool, &task.id).display()
                    )))))
                }
            }
        },
        "TIMEOUT" | "DEADLINE" => Step::End(Err(Outcome::Failed(Failure::TimedOut {
            step: 1,
            limit: Duration::from_secs(
                task.spec
                    .plan
                    .slurm
                    .as_ref()
                    .and_then(|r| r.time_minutes)
                    .unwrap_or(0)
                    * 60,
            ),
        }))),
        "OUT_OF_MEMORY" => Step::End(Err(Outcome::Failed(Failure::Farm(format!(
            "Slurm task {} ran out of memory on {} (OUT_OF_MEMORY); raise `slurm.mem`",
            task.id, row.nodes
        ))))),
        "CANCELLED" if task.cancelled => Step::End(Err(Outcome::Cancelled)),
        "CANCELLED" => Step::End(Err(Outcome::Failed(Failure::Farm(format!(
            "cancelled in Slurm (by someone else: `scancel` or a wrangler), task {}{}",
            task.id,
            if row.reason == "None" {
                String::new()
            } else {
                format!(", reason {}", row.reason)
            }
        ))))),
        "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL" => {
            Step::Lost(format!("ended {state} on {}", row.nodes))
        }
        _ => Step::Wait,
    }
}

/// A task's end as its end record says.
fn by_record(task: &Task, record: &EndRecord) -> Result<(), Outcome> {
    if record.job != task.spec.id {
        return Err(Outcome::Failed(Failure::Farm(format!(
            "the end record of Slurm task {} is job {}'s, not job {}'s",
            task.id, record.job, task.spec.id
        ))));
    }
    match record.status {
        EndStatus::Exit(0) if record.step == 0 => Ok(()),
        EndStatus::Missing => Err(Outcome::Failed(Failure::Spawn {
            step: record.step,
            program: task
                .spec
                .plan
                .steps
                .get(record.step.saturating_sub(1))
                .and_then(|argv| argv.first())
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            reason: format!("not found on farm node {}", record.node),
        })),
        EndStatus::Exit(code) => Err(Outcome::Failed(Failure::Exit {
            step: record.step.max(1),
            status: if code > 128 {
                format!("killed by signal {} on {}", code - 128, record.node)
            } else {
                format!("exited with status {code} on {}", record.node)
            },
        })),
    }
}

/// A delivery thread: verifies and publishes what the farm made.
fn deliver_loop(shared: &Shared) {
    let mut conn: Option<Box<dyn JobQueue>> = None;
    loop {
        let ended = {
            let mut state = shared.lock();
            loop {
                if let Some(ended) = state.ended.pop_front() {
                    state.delivering += 1;
                    break ended;
                }
                if state.closing {
                    return;
                }
                state = shared
                    .delivered
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let Ended {
            spec,
            result,
            log,
            end_record,
            started,
        } = ended;
        let mut hooks = Hooks {
            publisher: &shared.publisher,
            conn: &mut conn,
            spec: &spec,
        };
        let outcome = remote::finish(&spec, result, log.as_deref(), &mut hooks);
        // Their words are in the job's log now; the spool keeps nothing of a finished task.
        for path in [log, end_record].into_iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
        shared.lock().delivering -= 1;
        shared.finished(spec, outcome, started);
    }
}

/// The hooks of a farm job's local part: its publish checked against its claim.
struct Hooks<'a> {
    publisher: &'a FencedPublisher,
    conn: &'a mut Option<Box<dyn JobQueue>>,
    spec: &'a JobSpec,
}

impl JobHooks for Hooks<'_> {
    fn group_started(&mut self, _pgid: i32) -> bool {
        true
    }

    fn publishing(&mut self, output: &std::path::Path, version: FileVersion) -> bool {
        self.publisher
            .publishing(self.conn, self.spec, output, version)
    }

    fn published_before(&mut self) -> Option<Published> {
        self.publisher.published_before(self.conn, self.spec)
    }
}
