//! Following a task a previous life of this node submitted: its run handle carries the
//! task and a digest of the argv it runs, so when the requeued job is claimed here again with
//! the same argv the task is adopted as the new attempt (nothing is submitted twice) and its
//! product is published under the new claim.

use std::path::PathBuf;
use std::time::Instant;

use super::{NAME, Shared, Task, append};
use crate::exec::executor::{AttemptId, Report};
use crate::exec::runner::JobSpec;
use crate::store::RunHandle;

/// A task of a previous life, waiting to be adopted.
pub(super) struct Orphan {
    /// `123_4`.
    pub(super) id: String,
    /// The digest of the argv it runs (`{out}` in place of its temp path).
    pub(super) digest: String,
    /// Its temp output (named after the previous claim).
    pub(super) temp: Option<PathBuf>,
    pub(super) since: Instant,
}

/// A run handle's id: the task (`123_4`) and the digest of the argv it runs, if recorded.
pub(crate) fn split_handle(id: &str) -> (&str, Option<&str>) {
    match id.split_once('#') {
        Some((task, digest)) => (task, Some(digest)),
        None => (id, None),
    }
}

/// The run handle of a task: its id and its argv's digest, so a restarted node can tell
/// whether the job it claims again still runs the same thing.
pub(super) fn handle(task: &str, spec: &JobSpec) -> RunHandle {
    RunHandle::Remote {
        executor: NAME.to_string(),
        id: format!("{task}#{}", digest(spec)),
    }
}

/// A digest of what a job runs, the same for every attempt: its argv with `{out}` in place of
/// the temp path its claim names.
pub(super) fn digest(spec: &JobSpec) -> String {
    use std::os::unix::ffi::OsStrExt;
    let temp = spec
        .plan
        .output
        .as_ref()
        .map(|o| o.temp_path.as_os_str().as_bytes());
    let mut bytes = Vec::new();
    for argv in &spec.plan.steps {
        for arg in argv {
            let arg = match temp {
                Some(temp) => crate::exec::runner::replace_all(arg, temp, b"{out}"),
                None => arg.clone(),
            };
            bytes.extend_from_slice(arg.as_bytes());
            bytes.push(0);
        }
        bytes.push(b'\n');
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))
}

/// Follows a previous life's task as this attempt: its product is the temp the task writes.
pub(super) fn adopt(
    mut spec: JobSpec,
    orphan: Orphan,
    attempt: AttemptId,
    shared: &Shared,
) -> Task {
    if let (Some(output), Some(temp)) = (spec.plan.output.as_mut(), orphan.temp.clone()) {
        output.temp_path = temp;
    }
    append(
        &spec.log_path,
        &format!(
            "== job {} rule {} attempt {}: following Slurm task {}, submitted before this node restarted\n",
            spec.id, spec.rule, spec.attempt, orphan.id
        ),
    );
    if let Some(claim) = spec.claim {
        let _ = shared.done.send(Report::Started {
            claim,
            job: attempt,
            temp_output: spec.plan.output.as_ref().map(|o| o.temp_path.clone()),
            run: Some(handle(&orphan.id, &spec)),
        });
    }
    let (array, index) = orphan
        .id
        .split_once('_')
        .and_then(|(a, i)| Some((a.parse().ok()?, i.parse().ok()?)))
        .unwrap_or((0, 0));
    Task {
        spec,
        id: orphan.id,
        array,
        index,
        started: Instant::now(),
        last_state: String::new(),
        cancelled: false,
        missing_polls: 0,
        record_polls: 0,
        resubmits: 0,
    }
}
