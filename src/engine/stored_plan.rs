//! A job's plan as the store keeps it: the one [`JobPlan`] that route built and any node runs,
//! with, beside it, where the watcher that planned it has its trees (roots, output folders and
//! the mounts that hold them), so a worker on another machine can map it
//! (`worker::plan::job_spec`). Written by the watcher, read by workers; plans of earlier
//! releases are read by `legacy`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exec::plan::JobPlan;

use super::mounts::{MountFact, WatcherMounts};

mod legacy;

/// The plan's format; a worker refuses plans of a newer one. Format 5 is the one plan
/// ([`JobPlan`]); 1 to 4 were earlier releases' portable plans, still read.
pub(crate) const FORMAT: u32 = 5;

/// A job's plan with where the watcher's trees are, as stored with the job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredPlan {
    /// The plan's format (5 when written by this release; 1 to 4 by earlier ones).
    pub format: u32,
    /// The watcher's roots: name and path on the watcher.
    #[serde(with = "crate::os::path_text::named")]
    pub roots: Vec<(String, PathBuf)>,
    /// Output folders outside the roots, on the watcher.
    #[serde(default, with = "crate::os::path_text::list")]
    pub outputs: Vec<PathBuf>,
    /// The mounts of `roots` and `outputs` on the watcher: where a worker may use the same
    /// paths without a `--map`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountFact>,
    /// What runs, in the watcher's paths.
    pub job: JobPlan,
}

impl StoredPlan {
    /// The plan `job`, made by a watcher whose roots and output folders are these, with the
    /// mount facts of those folders.
    pub fn new(
        job: JobPlan,
        roots: Vec<(String, PathBuf)>,
        outputs: Vec<PathBuf>,
        mounts: &WatcherMounts,
    ) -> StoredPlan {
        StoredPlan {
            format: FORMAT,
            roots,
            outputs,
            mounts: mounts.facts.clone(),
            job,
        }
    }

    /// The watcher's mount fact of one of its folders.
    pub(crate) fn mount_of(&self, watcher: &Path) -> Option<&MountFact> {
        self.mounts
            .iter()
            .find(|f| crate::os::path_text::unescape(&f.path) == watcher)
    }

    /// As stored with the job.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read back from the job; `steps` is the job's argv as the store keeps it (plans of
    /// earlier releases do not carry it).
    ///
    /// # Errors
    /// A plan this build cannot read, or one of a newer release.
    pub fn from_text(text: &str, steps: &[Vec<OsString>]) -> Result<StoredPlan, String> {
        #[derive(Deserialize)]
        struct Head {
            format: u32,
        }
        let head: Head =
            serde_json::from_str(text).map_err(|e| format!("unreadable job plan: {e}"))?;
        if head.format > FORMAT {
            return Err(format!(
                "the job was planned by a newer shotrouter (plan format {}); upgrade this worker",
                head.format
            ));
        }
        if head.format < FORMAT {
            return legacy::read(text, steps);
        }
        serde_json::from_str(text).map_err(|e| format!("unreadable job plan: {e}"))
    }
}
