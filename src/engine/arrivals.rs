//! The intake's state: files that arrived and wait to be ready (settling, or holding still after
//! a scan), the baseline a first start records, and what the sources say of their coverage.
//! What happens to them is the watcher's [`intake`](super::intake).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::engine::settle::Debouncer;
use crate::os::version::FileVersion;
use crate::route::matcher::Scratch;
use crate::rules::EventKind;
use crate::store::queue::RootedPath;

/// A file waiting out its quiet time.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub(super) root: usize,
    pub(super) rel: PathBuf,
    pub(super) kind: EventKind,
    pub(super) version: Option<FileVersion>,
    pub(super) quiet: Duration,
}

/// What the intake owns: files waiting to be ready, the baseline of a first start, the
/// sources' health, and the matcher's scratch space.
pub struct Arrivals {
    /// Per (rule, file): waiting for the rule's `settle`.
    pub(super) settling: Debouncer<(String, PathBuf), Waiting>,
    /// Per file: found by a scan, waiting to hold still.
    pub(super) scanned: Debouncer<PathBuf, Waiting>,
    /// Whether this start records a baseline instead of catching up.
    pub(super) first_start: bool,
    /// Whether this run began as a first start: a root first listed after the initial scan
    /// (a share that was down) is then a baseline too, not a flood of catch-up work.
    pub(super) began_first: bool,
    /// Files of the initial scan not yet handed to the outbox as baseline (in chunks of
    /// [`BASELINE_CHUNK`](super::intake::BASELINE_CHUNK), so a tree of millions never sits in memory at once).
    pub(super) baseline: Vec<(RootedPath, FileVersion)>,
    /// Files recorded as the baseline so far.
    pub(super) baselined: usize,
    /// Whether every source has reported its initial scan (idle is reported only after).
    pub(super) initial_done: bool,
    /// What the sources say is wrong with their coverage, per topic (see
    /// [`SourceEvent::Health`]).
    pub(super) health: std::collections::BTreeMap<&'static str, String>,
    /// The matcher's scratch space and the rules one file matched, reused for every event.
    pub(super) scratch: Scratch,
    pub(super) routed: Vec<usize>,
}

impl Arrivals {
    /// Nothing waiting yet; `first_start`: the store is new, so this start records a baseline.
    pub fn new(first_start: bool) -> Arrivals {
        Arrivals {
            settling: Debouncer::default(),
            scanned: Debouncer::default(),
            first_start,
            began_first: first_start,
            baseline: Vec::new(),
            baselined: 0,
            initial_done: false,
            health: Default::default(),
            scratch: Scratch::default(),
            routed: Vec::new(),
        }
    }

    /// When the next waiting file is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.settling.next_deadline(), self.scanned.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether no file waits.
    pub fn is_empty(&self) -> bool {
        self.settling.is_empty() && self.scanned.is_empty()
    }

    /// Files waiting (settling or holding still).
    pub fn len(&self) -> usize {
        self.settling.len() + self.scanned.len()
    }
}
