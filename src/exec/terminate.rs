//! Stopping a run from its stored handle alone, for those who hold no executor: `shotrouter
//! cancel` and the API's cancel. Each kind of handle goes to the executor that made it.

use std::time::Duration;

use crate::store::RunHandle;

/// Why a run could not be stopped from its handle.
#[derive(Debug, thiserror::Error)]
pub enum TerminateError {
    /// The farm scheduler did not take the cancel.
    #[error("cannot cancel {run}: {source}")]
    Farm {
        /// The run.
        run: RunHandle,
        /// What the scheduler's tool said.
        source: crate::exec::slurm::client::ClientError,
    },
    /// The handle names an executor this build does not have.
    #[error("the run is {run}, which this build of shotrouter cannot stop; stop it there")]
    UnknownExecutor {
        /// The run.
        run: RunHandle,
    },
}

/// Stops a run known only by its handle (`shotrouter cancel`, the API): asks it to stop, and
/// forces it after `grace`. Answers how many processes were asked; a run already over is 0.
///
/// # Errors
/// A handle of an executor this build does not have.
pub fn terminate(run: &RunHandle, grace: Duration) -> Result<usize, TerminateError> {
    match run {
        RunHandle::Local(group) => Ok(crate::exec::local::terminate(group, grace)),
        RunHandle::Remote { executor, id } if executor == crate::exec::slurm::NAME => {
            // Slurm signals the task's processes and ends them after its own `KillWait`.
            crate::exec::slurm::client::Client::default()
                .cancel(&[crate::exec::slurm::split_handle(id).0.to_string()])
                .map(|()| 1)
                .map_err(|source| TerminateError::Farm {
                    run: run.clone(),
                    source,
                })
        }
        RunHandle::Remote { .. } => Err(TerminateError::UnknownExecutor { run: run.clone() }),
    }
}
