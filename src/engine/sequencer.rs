//! Sequences waiting to fire: frames arrive one by one, the job runs once per sequence.
//!
//! A sequence fires when no frame has arrived for its rule's `settle`, or at once when its
//! `expect:` range is complete. Pure, like [`crate::engine::settle`]: the daemon passes the time in
//! and does the file-system work (listing the folder, planning the job) when one fires.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What identifies a sequence while it gathers: rule, watch root, folder, and the name
/// around the frame number. Padding is sorted out when it fires, from the folder's listing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceKey {
    /// The rule's name.
    pub rule: String,
    /// Index of the watch root.
    pub root: usize,
    /// The folder, relative to the root.
    pub dir: PathBuf,
    /// Name before the frame number.
    pub head: Vec<u8>,
    /// Name after the frame number.
    pub tail: Vec<u8>,
}

/// What a fired sequence is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Frames arrived: run the job.
    Run,
    /// Present at a first start: record as the baseline, run nothing.
    Baseline,
    /// Present at a later start: run only if new or changed since last seen.
    CatchUp,
}

/// A sequence gathering frames.
#[derive(Debug, Clone)]
pub struct Gathering {
    /// Frame numbers known to be present (listed when gathering began, then arrivals).
    pub seen: BTreeSet<i64>,
    /// The `expect:` range, when the rule gives one.
    pub expect: Option<(i64, i64)>,
    /// What to do when it fires.
    pub purpose: Purpose,
    /// When it fires unless another frame arrives.
    pub deadline: Instant,
}

impl Gathering {
    /// Whether every frame of the `expect:` range is present.
    pub fn complete(&self) -> bool {
        self.expect.is_some_and(|(first, last)| {
            self.seen.range(first..=last).count() as i64 == last - first + 1
        })
    }
}

/// Every sequence gathering frames.
#[derive(Debug, Default)]
pub struct Sequencer {
    gathering: HashMap<SequenceKey, Gathering>,
}

impl Sequencer {
    /// Whether `key` is gathering.
    pub fn contains(&self, key: &SequenceKey) -> bool {
        self.gathering.contains_key(key)
    }

    /// Starts gathering `key` (the caller lists the folder for `seen`).
    pub fn begin(&mut self, key: SequenceKey, gathering: Gathering) {
        self.gathering.insert(key, gathering);
    }

    /// A frame of `key` arrived at `now`: the sequence fires after `quiet`, or at once when its
    /// expected range is complete. An arrival turns a baseline or catch-up into a run.
    pub fn arrive(
        &mut self,
        key: &SequenceKey,
        frame: i64,
        purpose: Purpose,
        now: Instant,
        quiet: Duration,
    ) {
        if let Some(g) = self.gathering.get_mut(key) {
            g.seen.insert(frame);
            if purpose == Purpose::Run {
                g.purpose = Purpose::Run;
            }
            g.deadline = if g.complete() { now } else { now + quiet };
        }
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.gathering.values().map(|g| g.deadline).min()
    }

    /// Removes and returns the sequences due at `now`.
    pub fn drain_ready(&mut self, now: Instant) -> Vec<(SequenceKey, Gathering)> {
        let due: Vec<SequenceKey> = self
            .gathering
            .iter()
            .filter(|(_, g)| g.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| self.gathering.remove(&k).map(|g| (k, g)))
            .collect()
    }

    /// How many sequences are gathering.
    pub fn len(&self) -> usize {
        self.gathering.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.gathering.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SequenceKey {
        SequenceKey {
            rule: "movie".into(),
            root: 0,
            dir: "sh010".into(),
            head: b"sh010.".to_vec(),
            tail: b".tif".to_vec(),
        }
    }

    fn gathering(now: Instant, expect: Option<(i64, i64)>, purpose: Purpose) -> Gathering {
        Gathering {
            seen: BTreeSet::new(),
            expect,
            purpose,
            deadline: now,
        }
    }

    #[test]
    fn fires_after_the_quiet_time_since_the_last_frame() {
        let t0 = Instant::now();
        let quiet = Duration::from_secs(5);
        let mut s = Sequencer::default();
        s.begin(key(), gathering(t0, None, Purpose::Run));
        s.arrive(&key(), 1001, Purpose::Run, t0, quiet);
        s.arrive(
            &key(),
            1002,
            Purpose::Run,
            t0 + Duration::from_secs(4),
            quiet,
        );
        assert!(s.drain_ready(t0 + Duration::from_secs(8)).is_empty());
        let fired = s.drain_ready(t0 + Duration::from_secs(9));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].1.seen.len(), 2);
        assert!(s.is_empty());
    }

    #[test]
    fn fires_at_once_when_the_expected_range_is_complete() {
        let t0 = Instant::now();
        let quiet = Duration::from_secs(5);
        let mut s = Sequencer::default();
        s.begin(key(), gathering(t0, Some((1, 3)), Purpose::CatchUp));
        s.arrive(&key(), 1, Purpose::CatchUp, t0, quiet);
        s.arrive(&key(), 3, Purpose::Run, t0, quiet);
        assert_eq!(s.next_deadline(), Some(t0 + quiet));
        s.arrive(&key(), 2, Purpose::CatchUp, t0, quiet);
        let fired = s.drain_ready(t0);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].1.purpose, Purpose::Run);
    }
}
