//! How often a node writes an attempt's progress, and how long a failed attempt waits before
//! the next: one policy for the watcher and the worker.

use std::time::{Duration, Instant};

use crate::exec::progress::StepProgress;

/// How often a running attempt's progress is written to the store, at most (the telemetry of
/// the node that runs it has every block): one write per job a second was a transaction each.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The progress last written for an attempt: when, and at which frame.
pub(crate) type Written = (Instant, u64);

/// Whether a progress block is written to the store, given the last one written: not when its
/// frame did not move, else its last block, or [`PROGRESS_EVERY`] after the last write.
pub(crate) fn progress_due(last: Option<Written>, step: &StepProgress, now: Instant) -> bool {
    match last {
        None => true,
        Some((_, frame)) if frame == step.frame => false,
        Some((at, _)) => step.ended || now >= at + PROGRESS_EVERY,
    }
}

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// How long a failed attempt waits before the next: the rule's `backoff`, doubled for each
/// attempt after the first, at most [`MAX_BACKOFF`]. The same on a watcher and on a worker.
pub(crate) fn retry_delay(backoff: Duration, attempt: u32) -> Duration {
    backoff
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(frame: u64, ended: bool) -> StepProgress {
        StepProgress {
            frame,
            total_frames: Some(100),
            fps_milli: 24_000,
            ended,
        }
    }

    #[test]
    fn progress_reaches_the_store_every_five_seconds_when_its_frame_moved() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        assert!(progress_due(None, &block(1, false), t0), "the first block");
        let last = Some((t0, 1));
        for s in 1..5 {
            assert!(
                !progress_due(last, &block(1 + s, false), t0 + second * s as u32),
                "{s} s later"
            );
        }
        assert!(progress_due(last, &block(6, false), t0 + PROGRESS_EVERY));
        assert!(
            !progress_due(last, &block(1, false), t0 + PROGRESS_EVERY * 3),
            "a frame that did not move is not written again"
        );
        assert!(
            progress_due(last, &block(9, true), t0 + second),
            "the last block, at once"
        );
        assert!(
            !progress_due(last, &block(1, true), t0 + second),
            "nor the last block when the frame is the one written"
        );
    }
}
