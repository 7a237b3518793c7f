//! From gathered attempts to arrays on the farm: each attempt's local part readied, the rest
//! grouped by rule and request, one `sbatch --array` per group (chunks of [`MAX_ARRAY`]).
//!
//! Each submission carries a tag of its own (`--comment`): when `sbatch` times out, the
//! controller may still have taken the array, so before submitting again the farm thread looks
//! for the tag, and adopts the array it finds instead of running every job twice.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::client::ClientError;
use super::{Batch, Hooks, MAX_ARRAY, Pending, Shared, Task, append, script};
use crate::exec::executor::Report;
use crate::exec::runner::remote::{self, Prepared};
use crate::exec::runner::{Failure, JobSpec, Outcome};
use crate::rules::farm::SlurmRequest;

/// Readies each gathered attempt here (folders, views, an earlier publish) and groups the rest
/// by rule and request into arrays of at most [`MAX_ARRAY`].
pub(super) fn prepare(shared: &Shared, gathered: Vec<Pending>) -> Vec<Batch> {
    let mut conn = None;
    let mut ready = Vec::new();
    for pending in gathered {
        let started = Instant::now();
        let mut hooks = Hooks {
            publisher: &shared.publisher,
            conn: &mut conn,
            spec: &pending.spec,
        };
        match remote::prepare(&pending.spec, &mut hooks) {
            Prepared::Submit => ready.push(pending),
            Prepared::Ended(outcome) => {
                let attempt = pending.attempt;
                shared.finished(pending.spec, outcome, started);
                shared.lock().busy.remove(&attempt);
            }
        }
    }
    group(ready)
}

/// Attempts grouped by rule and request, in arrays of at most [`MAX_ARRAY`], each with a tag.
pub(super) fn group(items: Vec<Pending>) -> Vec<Batch> {
    let mut groups: BTreeMap<(String, String), Vec<Pending>> = BTreeMap::new();
    for pending in items {
        let key = serde_json::to_string(&pending.spec.plan.slurm).unwrap_or_default();
        groups
            .entry((pending.spec.rule.clone(), key))
            .or_default()
            .push(pending);
    }
    let mut batches = Vec::new();
    for group in groups.into_values() {
        let mut group = group.into_iter().peekable();
        while group.peek().is_some() {
            batches.push(Batch {
                tag: new_tag(),
                items: group.by_ref().take(MAX_ARRAY).collect(),
            });
        }
    }
    batches
}

/// A tag no other submission has: this process, a counter, the time.
fn new_tag() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "shotrouter:{}:{}:{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Submits one array (or finds the one an earlier, unanswered `sbatch` made); a controller
/// that does not take it keeps it for the next poll; a refusal fails its attempts.
pub(super) fn submit_batch(shared: &Shared, batch: Batch) {
    let Some(request) = batch.items.first().and_then(|p| p.spec.plan.slurm.clone()) else {
        return;
    };
    let rule = batch.items[0].spec.rule.clone();
    let name = job_name(&rule);
    let closing = shared.lock().closing;
    if closing {
        keep_for_later(shared, batch);
        return;
    }
    // An earlier `sbatch` of this batch may have been taken though its answer was lost.
    let earlier = match shared.client.find_tagged(&name, &batch.tag) {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(rule = %rule, tasks = batch.items.len(), %error, "Slurm does not answer; the submission waits for it");
            keep_for_later(shared, batch);
            return;
        }
    };
    let result = match earlier {
        Some(array) => {
            tracing::info!(rule = %rule, array, "an earlier submission was taken after all; following it");
            Ok(array)
        }
        None => {
            let tasks: Vec<script::Task<'_>> = batch
                .items
                .iter()
                .map(|p| script::Task {
                    job: &p.spec.id,
                    steps: &p.spec.plan.steps,
                })
                .collect();
            let text = script::batch_script(&rule, &request.spool, &tasks);
            make_spool(&request).and_then(|()| {
                shared.client.submit(
                    &text,
                    batch.items.len(),
                    &sbatch_args(&name, &batch.tag, &request),
                )
            })
        }
    };
    match result {
        Ok(array) => {
            tracing::info!(rule = %rule, array, tasks = batch.items.len(), "submitted to Slurm");
            let count = batch.items.len();
            let mut tasks = Vec::with_capacity(count);
            for (index, pending) in batch.items.into_iter().enumerate() {
                let id = format!("{array}_{index}");
                note_submitted(&pending.spec, &id, index, count, &request);
                if let Some(claim) = pending.spec.claim {
                    let _ = shared.done.send(Report::Started {
                        claim,
                        job: pending.attempt,
                        temp_output: pending
                            .spec
                            .plan
                            .output
                            .as_ref()
                            .map(|o| o.temp_path.clone()),
                        run: Some(super::adopt::handle(&id, &pending.spec)),
                    });
                }
                tasks.push((
                    pending.attempt,
                    Task {
                        spec: pending.spec,
                        id,
                        array,
                        index: index as u32,
                        started: Instant::now(),
                        last_state: String::new(),
                        cancelled: false,
                        missing_polls: 0,
                        record_polls: 0,
                        resubmits: pending.resubmits,
                    },
                ));
            }
            let mut state = shared.lock();
            for (attempt, task) in tasks {
                state.busy.remove(&attempt);
                // Submitted while this node stops: on the farm, followed by the next start.
                if !state.leaving {
                    state.tasks.insert(attempt, task);
                }
            }
        }
        Err(error @ ClientError::Unreachable { .. }) => {
            tracing::warn!(rule = %rule, tasks = batch.items.len(), %error, "Slurm did not take the submission; it is tried again at the next poll");
            keep_for_later(shared, batch);
        }
        Err(error) => {
            tracing::warn!(rule = %rule, tasks = batch.items.len(), %error, "Slurm refused the submission");
            for pending in batch.items {
                let failure =
                    Outcome::Failed(Failure::Farm(format!("Slurm refused the job: {error}")));
                let mut conn = None;
                let mut hooks = Hooks {
                    publisher: &shared.publisher,
                    conn: &mut conn,
                    spec: &pending.spec,
                };
                let outcome = remote::finish(&pending.spec, Err(failure), None, &mut hooks);
                let attempt = pending.attempt;
                shared.finished(pending.spec, outcome, Instant::now());
                shared.lock().busy.remove(&attempt);
            }
        }
    }
}

/// Puts a batch back for the next poll, its attempts out of the busy set.
fn keep_for_later(shared: &Shared, batch: Batch) {
    let mut state = shared.lock();
    for pending in &batch.items {
        state.busy.remove(&pending.attempt);
    }
    state.unsubmitted.push(batch);
}

/// The job name of a rule's arrays (what a wrangler sees in `squeue`).
pub(super) fn job_name(rule: &str) -> String {
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
    format!("shotrouter-{name}")
}

/// `sbatch`'s options for an array: the request's own, then shotrouter's (its name, tag, log,
/// and no requeue by Slurm: a task the farm loses is submitted again here, once).
fn sbatch_args(name: &str, tag: &str, request: &SlurmRequest) -> Vec<OsString> {
    let mut output = OsString::from("--output=");
    output.push(request.spool.join("logs").join("%A_%a.log"));
    let mut args: Vec<OsString> = request
        .sbatch_args()
        .into_iter()
        .map(OsString::from)
        .collect();
    args.push(format!("--job-name={name}").into());
    args.push(format!("--comment={tag}").into());
    args.push("--no-requeue".into());
    args.push(output);
    args
}

fn make_spool(request: &SlurmRequest) -> Result<(), ClientError> {
    for folder in ["logs", "ends"] {
        let path = request.spool.join(folder);
        // A spool on storage that blinked is waited for, like the controller.
        std::fs::create_dir_all(&path).map_err(|e| ClientError::Unreachable {
            program: "sbatch",
            message: format!("cannot make the spool folder `{}`: {e}", path.display()),
        })?;
    }
    Ok(())
}

/// Tells the job's log what runs and where its task went.
fn note_submitted(spec: &JobSpec, id: &str, index: usize, count: usize, request: &SlurmRequest) {
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
        "== submitted to Slurm as task {id} ({} of {count} in its array); its output: {}\n",
        index + 1,
        script::log_path(&request.spool, id).display()
    ));
    append(&spec.log_path, &lines);
}
