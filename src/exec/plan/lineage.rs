//! The file's `lineage: {openlineage: URL}` as the plan carries it: the node that runs the job,
//! watcher or worker (which has no rules file), sends the job's OpenLineage run events there,
//! under the job namespace worked out once, where the rules file is.

use serde::{Deserialize, Serialize};

use crate::rules::RuleFile;

/// Where a job's OpenLineage events go, and the namespace of its job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortableLineage {
    /// The receiver's endpoint (`lineage.openlineage`), e.g. Marquez's `/api/v1/lineage`.
    pub url: String,
    /// The job namespace: `shotrouter://<show>`.
    pub namespace: String,
}

impl PortableLineage {
    /// The plan's lineage target for a job of `file`, when the file sends OpenLineage events.
    /// The show is the `show` entry of `vars:`, else the rules file's stem: one namespace per
    /// show, whichever rules file or node runs its jobs.
    pub fn of(file: &RuleFile) -> Option<PortableLineage> {
        let url = file.lineage.openlineage.clone()?;
        let show = match file.vars.get("show") {
            Some(show) => show.clone(),
            None => file
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        Some(PortableLineage {
            url,
            namespace: format!("shotrouter://{show}"),
        })
    }
}
