//! Following the tasks in flight: one `squeue` over their arrays each poll, then each task's
//! row (or its absence) and end record read into what became of it. The spool's files are read
//! and the jobs' logs written without the executor's lock: a hung network mount holds up the
//! farm thread, never the engine.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::client::Row;
use super::script::{self, EndRecord, EndStatus};
use super::{Ended, MAX_RESUBMITS, Pending, Shared, Task, append, spool_of, submit};
use crate::exec::runner::{Failure, Outcome};

/// Polls a task Slurm calls finished may wait for its end record (shared storage can show a
/// file late) before it is failed for writing none.
const END_RECORD_POLLS: u32 = 10;
/// Polls in a row a task may be missing from `squeue` before it counts as gone.
const MISSING_POLLS: u32 = 3;

/// One look at every array in flight.
pub(super) fn poll(shared: &Shared, unreachable_since: &mut Option<Instant>) {
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
    let by_task: HashMap<(u64, u32), &Row> = rows
        .iter()
        .filter_map(|row| Some(((row.array, row.task?), row)))
        .collect();
    // The tasks are looked at outside the lock, counted as busy meanwhile.
    let mut tasks = {
        let mut state = shared.lock();
        let tasks = std::mem::take(&mut state.tasks);
        state.busy.extend(tasks.keys().copied());
        tasks
    };
    let mut ended = Vec::new();
    let mut lost = Vec::new();
    for (attempt, task) in &mut tasks {
        let row = by_task.get(&(task.array, task.index)).copied();
        match follow(task, row) {
            Step::Wait => {}
            Step::End(result) => ended.push((*attempt, result)),
            Step::Lost(why) => lost.push((*attempt, why)),
        }
    }
    let mut finished = Vec::new();
    for (attempt, result) in ended {
        if let Some(task) = tasks.remove(&attempt) {
            let spool = spool_of(&task.spec);
            finished.push(Ended {
                attempt,
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
        let Some(task) = tasks.remove(&attempt) else {
            continue;
        };
        let spool = spool_of(&task.spec);
        if task.resubmits >= MAX_RESUBMITS {
            finished.push(Ended {
                attempt,
                log: Some(script::log_path(&spool, &task.id)),
                end_record: Some(script::end_path(&spool, &task.id)),
                result: Err(Outcome::Failed(Failure::Farm(format!(
                    "Slurm task {} {why}, after {MAX_RESUBMITS} submissions again; giving up this attempt",
                    task.id
                )))),
                spec: task.spec,
                started: task.started,
            });
            continue;
        }
        append(
            &task.spec.log_path,
            &format!(
                "== Slurm task {} {why}; submitted again (the attempt is not spent)\n",
                task.id
            ),
        );
        for path in [
            script::log_path(&spool, &task.id),
            script::end_path(&spool, &task.id),
        ] {
            let _ = std::fs::remove_file(path);
        }
        again.push(Pending {
            attempt,
            spec: task.spec,
            resubmits: task.resubmits + 1,
        });
    }
    {
        let mut state = shared.lock();
        for attempt in tasks.keys().chain(finished.iter().map(|e| &e.attempt)) {
            state.busy.remove(attempt);
        }
        // While this node stops and leaves its tasks on the farm, only those asked to stop
        // are still followed (their end is reported).
        let leaving = state.leaving;
        state
            .tasks
            .extend(tasks.into_iter().filter(|(_, t)| !leaving || t.cancelled));
        state.ended.extend(finished);
    }
    shared.delivered.notify_all();
    // Lost tasks stay busy until they are in flight again.
    for batch in submit::group(again) {
        submit::submit_batch(shared, batch);
    }
}

/// What one poll learned of a task.
enum Step {
    Wait,
    End(Result<(), Outcome>),
    /// The farm lost it (a node failed, it was preempted): run it again, attempt not spent.
    Lost(String),
}

/// Reads a task's row (or its absence) and its end record.
fn follow(task: &mut Task, row: Option<&Row>) -> Step {
    let spool = spool_of(&task.spec);
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
        "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL" if task.cancelled => {
            Step::End(Err(Outcome::Cancelled))
        }
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
