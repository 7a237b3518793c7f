//! A snapshot of what the engine is doing, readable by anything in the process (an HTTP server,
//! a progress bar) without touching the database: counters since start, queue depths, and the
//! jobs in workers' hands with the times they were claimed and started. The engine publishes
//! a fresh copy at most every [`PUBLISH_EVERY`] while busy, and whenever it goes idle; readers
//! clone it under a short read lock.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;

use crate::exec::runner::JobSpec;
use crate::store::now_ms;

use super::Engine;

/// How often a busy engine publishes a new snapshot: often enough for a live page, rarely
/// enough that copying it costs nothing during a flood.
pub const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Counts since the engine started.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counters {
    /// File events received from the sources.
    pub events: u64,
    /// Event-queue overflows (each followed by a rescan).
    pub overflows: u64,
    /// Jobs planned.
    pub planned: u64,
    /// Attempts that succeeded.
    pub succeeded: u64,
    /// Jobs that failed for good (or could not be planned, or were cancelled).
    pub failed: u64,
    /// Attempts that failed and were queued again.
    pub retried: u64,
}

/// A job in a worker's hands.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ActiveJob {
    /// The job's id.
    pub id: String,
    /// Its rule.
    pub rule: String,
    /// Its input (lossy UTF-8).
    pub path: String,
    /// Which attempt.
    pub attempt: u32,
    /// When it was handed to a worker, unix ms.
    pub claimed_at_ms: i64,
    /// When its first step started, unix ms; `None` while it waits for a free worker.
    pub started_at_ms: Option<i64>,
    /// Progress of an ffmpeg step that reports it (`progress: ffmpeg`), refreshed ~1/s.
    pub progress: Option<Progress>,
}

/// How far an ffmpeg step got, from its `-progress` output.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct Progress {
    /// Frames written so far.
    pub frame: u64,
    /// Frames the step will write, when known (a sequence's length, a probed duration).
    pub total_frames: Option<u64>,
    /// Encoding speed, frames per second × 1000.
    pub fps_milli: u32,
}

/// The snapshot.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Telemetry {
    /// This node's name.
    pub node: String,
    /// When the engine started, unix ms.
    pub started_at_ms: i64,
    /// Counts since then.
    pub counters: Counters,
    /// Jobs planned and waiting for a slot (retries included).
    pub queued: usize,
    /// Of those, jobs waiting out a retry's backoff.
    pub retry_waiting: usize,
    /// Files waiting to be ready (settling, or holding still after a scan).
    pub files_waiting: usize,
    /// Sequences gathering frames.
    pub sequences_gathering: usize,
    /// Jobs in workers' hands, by id.
    pub active: BTreeMap<String, ActiveJob>,
}

/// A shared handle on the latest snapshot.
#[derive(Debug, Clone, Default)]
pub struct TelemetryHandle(Arc<RwLock<Telemetry>>);

impl TelemetryHandle {
    /// A copy of the latest snapshot.
    pub fn snapshot(&self) -> Telemetry {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn publish(&self, telemetry: Telemetry) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = telemetry;
    }
}

impl Engine {
    /// A handle readers keep; it always shows the latest snapshot.
    pub fn telemetry(&self) -> TelemetryHandle {
        self.telemetry.clone()
    }

    pub(super) fn telemetry_ready(&mut self, spec: &JobSpec) {
        self.active.insert(
            spec.id.clone(),
            ActiveJob {
                id: spec.id.clone(),
                rule: spec.rule.clone(),
                path: spec.path.to_string_lossy().into_owned(),
                attempt: spec.attempt,
                claimed_at_ms: now_ms(),
                started_at_ms: None,
                progress: None,
            },
        );
    }

    pub(super) fn telemetry_started(&mut self, id: &str) {
        if let Some(job) = self.active.get_mut(id) {
            job.started_at_ms.get_or_insert_with(now_ms);
        }
    }

    pub(super) fn telemetry_finished(&mut self, id: &str) {
        self.active.remove(id);
    }

    /// Publishes the current state for readers, unless a busy engine did so very recently.
    pub(super) fn publish_telemetry(&mut self, now: std::time::Instant, idle: bool) {
        if !idle && now < self.next_telemetry {
            return;
        }
        self.next_telemetry = now + PUBLISH_EVERY;
        self.telemetry.publish(Telemetry {
            node: self.node.clone(),
            started_at_ms: self.started_at_ms,
            counters: self.counters,
            queued: self.queue.len(),
            retry_waiting: self.queue.delayed_len(),
            files_waiting: self.intake.len(),
            sequences_gathering: self.sequences.len(),
            active: self.active.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_serializes_with_its_active_jobs() {
        let handle = TelemetryHandle::default();
        let mut telemetry = Telemetry {
            node: "fs01".into(),
            ..Telemetry::default()
        };
        telemetry.counters.succeeded = 3;
        telemetry.active.insert(
            "7".into(),
            ActiveJob {
                id: "7".into(),
                rule: "review".into(),
                path: "sh010/a b.tif".into(),
                attempt: 2,
                claimed_at_ms: 1_000,
                started_at_ms: Some(1_005),
                progress: None,
            },
        );
        handle.publish(telemetry.clone());
        let seen = handle.clone().snapshot();
        assert_eq!(seen, telemetry);
        let json = serde_json::to_value(&seen).expect("serializable");
        assert_eq!(json["counters"]["succeeded"], 3);
        assert_eq!(json["active"]["7"]["started_at_ms"], 1_005);
        assert_eq!(json["active"]["7"]["path"], "sh010/a b.tif");
    }
}
