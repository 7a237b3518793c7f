//! When the watcher's attempts send their OpenLineage events (`lineage: {openlineage: URL}`):
//! START at an attempt's first step start (the executor's `Started` report), the end with the
//! attempt's outcome, retried attempts each a run of their own. The run is noted when a claimed
//! attempt is handed over, since the start report names only its claim; the engine only
//! decides, [`Lineage`](crate::exec::openlineage::Lineage) builds and sends on its own thread.

use std::time::Duration;

use crate::exec::openlineage::LineageRun;
use crate::exec::runner::{JobSpec, Outcome};
use crate::store::queue::Claim;

use super::Engine;

impl Engine {
    /// Notes the run of a claimed attempt about to be handed over, when its plan sends events.
    pub(super) fn note_lineage(&mut self, spec: &JobSpec) {
        if let Some(claim) = spec.claim
            && !self.node.stopping
            && let Some(run) = LineageRun::of(spec)
        {
            self.attempts.lineage.insert(claim.id, run);
        }
    }

    /// A step of `claim`'s attempt started: its START, once.
    pub(super) fn lineage_started(&mut self, claim: &Claim) {
        if let Some(run) = self.attempts.lineage.get_mut(&claim.id) {
            self.node.lineage.start(run);
        }
    }

    /// An attempt ended: its COMPLETE, FAIL or ABORT (after its START, if none was sent).
    pub(super) fn lineage_ended(&mut self, spec: &JobSpec, outcome: &Outcome, duration: Duration) {
        let run = spec
            .claim
            .and_then(|claim| self.attempts.lineage.remove(&claim.id))
            .or_else(|| LineageRun::of(spec));
        if let Some(run) = run {
            self.node
                .lineage
                .end(run, outcome, duration, self.node.stopping);
        }
    }
}
