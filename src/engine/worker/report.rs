//! What a worker tells about the jobs it runs, as a watcher's engine does for its own: each
//! job's ffmpeg progress, recorded in the store (where `shotrouter job`, the API and the
//! dashboard of any node read it), and the ends its rule's `notify:` targets want, sent from
//! the worker's own notifier (its plan carries the targets).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::exec::notifier::Notice;
use crate::exec::progress::StepProgress;
use crate::exec::runner::JobSpec;
use crate::rules::{NotifyEvent, NotifyTarget};
use crate::store::JobProgress;
use crate::store::queue::Write;

use super::{Held, Then, Worker};

/// How often a running job's progress is written to the store, at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

impl Worker {
    /// Records how far a job's ffmpeg step got, at most once per [`PROGRESS_EVERY`] (and its
    /// last block): the store is where `shotrouter job`, the API and the dashboard read it.
    pub(super) fn on_progress(&mut self, id: &str, step: StepProgress) {
        let Some(held) = id.parse().ok().and_then(|id| self.held.get_mut(&id)) else {
            return;
        };
        let now = Instant::now();
        if !step.ended && held.progress_at.is_some_and(|at| now < at + PROGRESS_EVERY) {
            return;
        }
        held.progress_at = Some(now);
        let progress = JobProgress {
            frame: step.frame,
            total_frames: step.total_frames,
            fps_milli: step.fps_milli,
        };
        let claim = held.claim;
        self.pending
            .push((Write::Progress { claim, progress }, Then::Nothing));
    }

    /// Tells the targets of a held job's rule that want `event` (its attempt ran `duration`).
    pub(super) fn tell(
        &self,
        held: &Held,
        spec: &JobSpec,
        event: NotifyEvent,
        reason: Option<String>,
        duration: Duration,
    ) {
        let targets: Vec<Arc<NotifyTarget>> = held
            .notify
            .iter()
            .filter(|t| t.wants(event))
            .cloned()
            .collect();
        if targets.is_empty() {
            return;
        }
        let mut notice = Notice::new(event, &spec.id, &spec.rule, &spec.path);
        notice.attempt = spec.attempt;
        notice.reason = reason;
        notice.node = self.options.node.clone();
        notice.at_ms = crate::store::now_ms();
        notice.started_at_ms = held.started_at_ms;
        notice.duration_ms = Some(duration.as_millis() as u64);
        self.notifier.send(notice, &targets);
    }
}
