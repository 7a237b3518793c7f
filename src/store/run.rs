//! A job's running attempt as the executor that runs it names it: the handle stored with the
//! claim, so that a node restarted after a crash, `shotrouter cancel` or the API can find the
//! run again without knowing how it was started. The store keeps it and never interprets it.

use crate::os::process::GroupId;

/// The identity of one attempt's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunHandle {
    /// A process group on the node that claimed the job (the local executor). It is stopped
    /// only when provably the one started (same boot, leader start time).
    Local(GroupId),
    /// A run held by another system, such as a farm scheduler's job id.
    Remote {
        /// The executor that named it (`slurm`): only it can follow or stop the run.
        executor: String,
        /// Its id there.
        id: String,
    },
}

impl RunHandle {
    /// The text stored for a remote run (`executor:id`); `None` for a local one, whose
    /// process group has columns of its own (they predate remote runs).
    pub(crate) fn remote_text(&self) -> Option<String> {
        match self {
            RunHandle::Local(_) => None,
            RunHandle::Remote { executor, id } => Some(format!("{executor}:{id}")),
        }
    }

    /// The local process group, if this is one.
    pub fn group(&self) -> Option<&GroupId> {
        match self {
            RunHandle::Local(group) => Some(group),
            RunHandle::Remote { .. } => None,
        }
    }

    /// A handle from its stored columns: a remote run's text, else a process group when all
    /// three of its columns were recorded.
    pub(crate) fn from_columns(
        pgid: Option<i32>,
        leader_start: Option<i64>,
        boot_id: Option<String>,
        remote: Option<String>,
    ) -> Option<RunHandle> {
        if let Some((executor, id)) = remote.as_deref().and_then(|r| r.split_once(':')) {
            return Some(RunHandle::Remote {
                executor: executor.to_owned(),
                id: id.to_owned(),
            });
        }
        match (pgid, leader_start, boot_id) {
            (Some(pgid), Some(start), Some(boot_id)) => Some(RunHandle::Local(GroupId {
                pgid,
                leader_start: start as u64,
                boot_id,
            })),
            _ => None,
        }
    }
}

impl std::fmt::Display for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunHandle::Local(group) => write!(f, "process group {}", group.pgid),
            RunHandle::Remote { executor, id } => write!(f, "{executor} job {id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_survives_its_columns() {
        let local = RunHandle::Local(GroupId {
            pgid: 42,
            leader_start: 7,
            boot_id: "b".into(),
        });
        let group = local.group().expect("local");
        assert_eq!(
            RunHandle::from_columns(
                Some(group.pgid),
                Some(group.leader_start as i64),
                Some(group.boot_id.clone()),
                local.remote_text()
            ),
            Some(local.clone())
        );
        let remote = RunHandle::Remote {
            executor: "slurm".into(),
            id: "1234_7".into(),
        };
        assert_eq!(
            RunHandle::from_columns(None, None, None, remote.remote_text()),
            Some(remote)
        );
        assert_eq!(RunHandle::from_columns(Some(1), None, None, None), None);
    }
}
