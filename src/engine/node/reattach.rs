//! Start-up recovery shared by the watcher and the worker: the claims a previous life of this
//! node left are handed back to the executor (a local process group is stopped, provably ours
//! or not at all) and every temp output their attempts may have made is removed, before
//! anything runs.

use crate::exec::executor::{Executor, Reattach};
use crate::store::JobId;
use crate::store::queue::Abandoned;

/// Hands each abandoned claim's run back to `executor`, then sweeps the temps of those it does
/// not follow. `previous` names the life that ended, for the log ("the previous daemon's end").
/// Returns the jobs whose runs go on and are followed once claimed again.
pub(crate) fn reattach_abandoned(
    executor: &dyn Executor,
    abandoned: &[Abandoned],
    previous: &str,
) -> Vec<JobId> {
    let mut sweep = Vec::new();
    let mut following = Vec::new();
    for job in abandoned {
        let reattached = job.run.as_ref().map(|run| (run, executor.reattach(job)));
        if !matches!(reattached, Some((_, Reattach::Following))) {
            sweep.push(job.clone());
        }
        // Queued again either way; a published product is delivered, not made again.
        let resolution = if job.published {
            "published; its delivery resumes"
        } else {
            "requeued"
        };
        match reattached {
            Some((run, Reattach::NotMine)) => {
                tracing::warn!(job = job.id, rule = %job.rule, %run, resolution, "job was interrupted by {previous}; its run belongs to an executor this node does not have and is left alone");
            }
            Some((run, Reattach::Following)) => {
                following.push(job.id);
                tracing::info!(job = job.id, rule = %job.rule, %run, "job was interrupted by {previous}; its run goes on and is followed when the job is claimed again");
            }
            Some((_, Reattach::Stopped { processes })) => {
                tracing::warn!(job = job.id, rule = %job.rule, resolution, killed_processes = processes, "job was interrupted by {previous}");
            }
            None => {
                tracing::warn!(job = job.id, rule = %job.rule, resolution, killed_processes = 0, "job was interrupted by {previous}");
            }
        }
    }
    crate::exec::temps::sweep(&sweep);
    following
}
