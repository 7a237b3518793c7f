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

use super::{Held, Worker};
use crate::engine::node::pacing::progress_due;
use crate::engine::node::telling::Telling;

impl Worker {
    /// Records how far a job's ffmpeg step got, when [`progress_due`] (its frame moved, at most
    /// once per its `PROGRESS_EVERY`, and its last block), in place of a write of the same
    /// claim still waiting for the store: the store is where `shotrouter job`, the API and the
    /// dashboard read it.
    pub(super) fn on_progress(&mut self, id: &str, step: StepProgress) {
        let Some(held) = id.parse().ok().and_then(|id| self.held.get_mut(&id)) else {
            return;
        };
        let now = Instant::now();
        if !progress_due(held.progress_written, &step, now) {
            return;
        }
        held.progress_written = Some((now, step.frame));
        let progress = JobProgress {
            frame: step.frame,
            total_frames: step.total_frames,
            fps_milli: step.fps_milli,
        };
        let write = Write::Progress {
            claim: held.claim,
            progress,
        };
        self.node.committer.push_progress(write);
    }

    /// What the targets of a held job's rule that want `event` are to be told (its attempt ran
    /// `duration`), sent once the store recorded the end ([`Worker::send`]).
    pub(super) fn telling(
        &self,
        held: &Held,
        spec: &JobSpec,
        event: NotifyEvent,
        reason: Option<String>,
        duration: Duration,
    ) -> Option<Telling> {
        let targets: Vec<Arc<NotifyTarget>> = held
            .notify
            .iter()
            .filter(|t| t.wants(event))
            .cloned()
            .collect();
        if targets.is_empty() {
            return None;
        }
        let mut notice = Notice::new(event, &spec.id, &spec.rule, &spec.path);
        notice.attempt = spec.attempt;
        notice.reason = reason;
        notice.node = self.node.name.clone();
        notice.at_ms = crate::store::now_ms();
        // A step over within 1 ms was never reported started: it started `duration` ago.
        notice.started_at_ms = held
            .started_at_ms
            .or_else(|| Some(notice.at_ms - duration.as_millis() as i64));
        notice.duration_ms = Some(duration.as_millis() as u64);
        Some(Telling::new(notice, targets))
    }
}
