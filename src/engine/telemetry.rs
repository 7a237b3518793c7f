//! A snapshot of what the engine is doing, readable by anything in the process (an HTTP server,
//! a progress bar) without touching the database: counters since start, queue depths, and the
//! jobs in workers' hands with the times they were claimed and started. The engine publishes
//! a fresh copy at most every [`PUBLISH_EVERY`] while busy, and whenever it goes idle; readers
//! clone it under a short read lock.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use indicatif::ProgressBar;

use serde::Serialize;

use crate::exec::progress::StepProgress;
use crate::exec::runner::JobSpec;
use crate::store::now_ms;

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
    /// Rescans of the tree (after an overflow, or a lost root's return).
    pub rescans: u64,
    /// Attempts whose product was not what the rule's `verify:` asks for.
    pub verify_failed: u64,
}

/// Upper bounds of the job-duration buckets, in microseconds (0.1 s to 1 h).
pub const JOB_BOUNDS_US: &[u64] = &[
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
    600_000_000,
    1_800_000_000,
    3_600_000_000,
];

/// Upper bounds of the buckets of short operations (a commit, a poll pass), in microseconds
/// (0.5 ms to 30 s).
pub const SHORT_BOUNDS_US: &[u64] = &[
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 30_000_000,
];

/// Durations counted into fixed buckets, as Prometheus histograms want them: cheap to observe
/// (one comparison per bound) and to copy into a snapshot.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Histogram {
    /// Upper bounds of the buckets, microseconds.
    pub bounds_us: &'static [u64],
    /// Observations per bucket (not cumulative); one more than `bounds_us`, the last for
    /// everything above the largest bound.
    pub counts: Vec<u64>,
    /// Sum of every observation, microseconds.
    pub sum_us: u64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds_us`.
    pub fn new(bounds_us: &'static [u64]) -> Histogram {
        Histogram {
            bounds_us,
            counts: vec![0; bounds_us.len() + 1],
            sum_us: 0,
            count: 0,
        }
    }

    /// Counts one duration.
    pub fn observe(&mut self, took: std::time::Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = self.bounds_us.partition_point(|&bound| bound < us);
        if self.counts.len() != self.bounds_us.len() + 1 {
            self.counts = vec![0; self.bounds_us.len() + 1];
        }
        self.counts[bucket] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }
}

/// Histograms of how long things took, kept by the engine (the only clock reader).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Timings {
    /// How long attempts ran, per rule (every attempt, retried ones included).
    pub jobs: BTreeMap<String, Histogram>,
    /// How long the store's group commits took.
    pub commits: Histogram,
    /// How long the passes over polled folders took (the poll source's, and inotify's over
    /// the folders it cannot watch).
    pub poll_passes: Histogram,
}

impl Timings {
    /// Empty histograms with their bounds.
    pub fn new() -> Timings {
        Timings {
            jobs: BTreeMap::new(),
            commits: Histogram::new(SHORT_BOUNDS_US),
            poll_passes: Histogram::new(SHORT_BOUNDS_US),
        }
    }

    /// Counts an attempt of `rule` that took `took`.
    pub fn observe_job(&mut self, rule: &str, took: std::time::Duration) {
        match self.jobs.get_mut(rule) {
            Some(histogram) => histogram.observe(took),
            None => {
                let mut histogram = Histogram::new(JOB_BOUNDS_US);
                histogram.observe(took);
                self.jobs.insert(rule.to_string(), histogram);
            }
        }
    }
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
    /// How long attempts, commits and poll passes took.
    pub timings: Timings,
}

/// A shared handle on the latest snapshot, and on the latest waste of the cuts (apart: it is
/// computed on a thread of its own, minutes apart, and is larger than the live view needs).
#[derive(Debug, Clone, Default)]
pub struct TelemetryHandle(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    snapshot: RwLock<Telemetry>,
    waste: RwLock<Option<Arc<WasteReport>>>,
    rules: RwLock<Option<Arc<crate::route::matcher::RuleSet>>>,
}

/// Every cut's waste as a watcher last worked it out from the files on disk.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct WasteReport {
    /// When, unix ms.
    pub computed_at_ms: i64,
    /// How long the scan took, ms.
    pub took_ms: u64,
    /// Per cut (its latest revision), by name.
    pub cuts: Vec<super::waste::CutWaste>,
}

impl TelemetryHandle {
    /// A copy of the latest snapshot.
    pub fn snapshot(&self) -> Telemetry {
        self.0
            .snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn publish(&self, telemetry: Telemetry) {
        *self
            .0
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = telemetry;
    }

    /// The cuts' waste, once a watcher has worked it out.
    pub fn waste(&self) -> Option<Arc<WasteReport>> {
        self.0
            .waste
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn publish_waste(&self, report: WasteReport) {
        *self.0.waste.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(report));
    }

    /// The rules the watcher routes by now (after its latest reload), once it has started: what
    /// the dashboard's per-shot view reads each job's `shot` capture with.
    pub fn rules(&self) -> Option<Arc<crate::route::matcher::RuleSet>> {
        self.0
            .rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn publish_rules(&self, set: &Arc<crate::route::matcher::RuleSet>) {
        *self.0.rules.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(set));
    }
}

/// What the engine shows of itself, and owns for it: counts, the jobs in hand, timings, its
/// published snapshot, and `--once`'s progress bar.
pub struct Readout {
    pub(super) counters: Counters,
    /// Jobs in the executor's hands, for the snapshot.
    pub(super) active: BTreeMap<String, ActiveJob>,
    /// Where the snapshot is published; the caller keeps a clone to read it.
    pub(super) handle: TelemetryHandle,
    /// Histograms of attempt, commit and poll-pass durations.
    pub(super) timings: Timings,
    /// When a busy engine next publishes its snapshot.
    pub(super) next_publish: Instant,
    /// Whether the snapshot lags behind (a publish was skipped): due at `next_publish`.
    pub(super) stale: bool,
    pub(super) started_at_ms: i64,
    /// `--once`'s progress bar.
    pub(super) progress: Option<ProgressBar>,
    /// Whether work was pending at the last check, to log the moment the queue drains.
    pub(super) busy: bool,
}

impl Readout {
    /// Nothing counted yet; snapshots go to `handle`.
    pub fn new(handle: TelemetryHandle, progress: Option<ProgressBar>) -> Readout {
        Readout {
            counters: Counters::default(),
            active: BTreeMap::new(),
            handle,
            timings: Timings::new(),
            next_publish: Instant::now(),
            stale: false,
            started_at_ms: now_ms(),
            progress,
            busy: false,
        }
    }

    /// A job was handed to the executor.
    pub(super) fn ready(&mut self, spec: &JobSpec) {
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

    /// How far a job's ffmpeg step got.
    pub(super) fn progress(&mut self, id: &str, step: StepProgress) {
        if let Some(job) = self.active.get_mut(id) {
            job.progress = Some(Progress {
                frame: step.frame,
                total_frames: step.total_frames,
                fps_milli: step.fps_milli,
            });
            self.stale = true;
        }
    }

    /// A job's first step started.
    pub(super) fn started(&mut self, id: &str) {
        if let Some(job) = self.active.get_mut(id) {
            job.started_at_ms.get_or_insert_with(now_ms);
        }
    }

    /// A job left the executor's hands.
    pub(super) fn finished(&mut self, id: &str) {
        self.active.remove(id);
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
                progress: Some(Progress {
                    frame: 12,
                    total_frames: Some(48),
                    fps_milli: 24_000,
                }),
            },
        );
        handle.publish(telemetry.clone());
        let seen = handle.clone().snapshot();
        assert_eq!(seen, telemetry);
        let json = serde_json::to_value(&seen).expect("serializable");
        assert_eq!(json["counters"]["succeeded"], 3);
        assert_eq!(json["active"]["7"]["started_at_ms"], 1_005);
        assert_eq!(json["active"]["7"]["path"], "sh010/a b.tif");
        assert_eq!(json["active"]["7"]["progress"]["total_frames"], 48);
    }

    #[test]
    fn a_histogram_counts_each_duration_in_the_first_bucket_that_holds_it() {
        use std::time::Duration;
        let mut histogram = Histogram::new(SHORT_BOUNDS_US);
        for us in [
            0,
            500,
            501,
            1_000,
            29_999_999,
            30_000_000,
            30_000_001,
            u64::MAX,
        ] {
            histogram.observe(Duration::from_micros(us));
        }
        let mut expected = vec![0; SHORT_BOUNDS_US.len() + 1];
        expected[0] = 2; // 0 and exactly the first bound
        expected[1] = 2; // 501 and 1000
        expected[SHORT_BOUNDS_US.len() - 1] = 2; // up to and at 30 s
        expected[SHORT_BOUNDS_US.len()] = 2; // above every bound
        assert_eq!(histogram.counts, expected);
        assert_eq!(histogram.count, 8);
        let mut timings = Timings::new();
        timings.observe_job("review", Duration::from_millis(300));
        timings.observe_job("review", Duration::from_secs(7200));
        assert_eq!(timings.jobs["review"].count, 2);
        assert_eq!(timings.jobs["review"].counts[2], 1);
        assert_eq!(timings.jobs["review"].counts[JOB_BOUNDS_US.len()], 1);
    }
}
