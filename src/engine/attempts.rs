//! The attempts a watcher's executor runs, with their claims: what a superseded, cancelled or
//! taken-over job's attempt is stopped by, when each one's progress was last written, and the
//! OpenLineage run of each (noted when it is handed over, since its start report names only the
//! claim).

use std::collections::HashMap;

use crate::exec::executor::AttemptId;
use crate::exec::openlineage::LineageRun;
use crate::store::JobId;
use crate::store::queue::Claim;

use super::node::pacing::Written;

/// The attempts this engine's executor runs: each one's handle and claim, by job (to stop one
/// the store superseded, cancelled or took over), and when its progress was last written.
#[derive(Debug, Default)]
pub struct Attempts {
    pub(super) running: HashMap<JobId, (AttemptId, Claim)>,
    pub(super) written: HashMap<JobId, Written>,
    /// The OpenLineage run of each claimed attempt handed over, when its plan sends events.
    pub(super) lineage: HashMap<JobId, LineageRun>,
}
