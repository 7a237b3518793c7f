//! Dispatch's state: the jobs this watcher planned and holds, in the [`FairQueue`] until a
//! slot is free, the versions already dispatched, and where its look in the store for work
//! queued by others stands. What happens to them is the watcher's [`dispatch`](super::dispatch).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::store::JobId;

use super::fair_queue::FairQueue;
use super::ledger::Ledger;
use super::mounts::MountCache;

/// What dispatch owns: the fair queue, the jobs planned and held, how far ahead to claim, and
/// where the look for work queued by others stands.
pub struct Planned {
    pub(super) queue: FairQueue,
    /// Names this process's jobs before the store gives them an id (`<pid>-<n>`).
    pub(super) run_tag: String,
    pub(super) next_job: u64,
    /// Jobs planned whose last attempt has not finished.
    pub(super) outstanding: usize,
    /// Store jobs this engine holds (waiting, claimed or running): not resumed twice.
    pub(super) known: HashSet<JobId>,
    /// How long attempts take, on average lately: how far ahead to claim.
    pub(super) typical_attempt: Option<Duration>,
    /// Where the poll for jobs queued by someone else stands, and when it is next due.
    pub(super) cursor: i64,
    pub(super) next_poll: Instant,
    /// The file versions already dispatched per rule.
    pub(super) ledger: Ledger,
    /// The mounts of the roots and output folders, recorded in each job's stored plan.
    pub(super) mounts: MountCache,
    /// When the rules' windows are next checked, and the queued jobs recorded as waiting for
    /// one (see [`super::windows`]).
    pub(super) next_window_check: Instant,
    pub(super) held_for_window: HashSet<JobId>,
    /// Per windowed rule, the reason last recorded on all its queued jobs (`None`: cleared).
    pub(super) window_recorded: HashMap<String, Option<String>>,
}

impl Planned {
    /// Nothing planned yet; the first look in the store is due at `next_poll`.
    pub fn new(queue: FairQueue, next_poll: Instant) -> Planned {
        Planned {
            queue,
            run_tag: std::process::id().to_string(),
            next_job: 0,
            outstanding: 0,
            known: HashSet::new(),
            typical_attempt: None,
            cursor: 0,
            next_poll,
            ledger: Ledger::default(),
            mounts: MountCache::default(),
            next_window_check: Instant::now(),
            held_for_window: HashSet::new(),
            window_recorded: HashMap::new(),
        }
    }
}
