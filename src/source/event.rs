//! What every file source reports, and what it is told to watch.
//!
//! Sources speak only in these types, so the engine cannot tell inotify from any other source.
//! A [`FileEvent`]'s `root` is always an index into the full [`WatchConfig::roots`], whichever
//! source (and whichever subset of the roots) it came from.

use std::path::PathBuf;

use globset::GlobSet;

use crate::rules::{EventKind, EventSet, WatchRoot};

/// What a file source reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// Something happened to a file.
    File(FileEvent),
    /// The initial scan of every root has been reported.
    InitialScanDone,
    /// A root disappeared (deleted, unmounted); nothing under it is dispatched until it returns.
    RootLost(PathBuf),
    /// A lost root is back and was rescanned.
    RootBack(PathBuf),
    /// The kernel queue overflowed; a rescan follows.
    Overflow,
    /// The poll source finished a pass over the folders that were due, or inotify one over the
    /// folders it polls instead of watching; how long it took (for the engine's metrics).
    PollPass {
        /// The pass's duration.
        took: std::time::Duration,
    },
    /// How well a part of the tree is covered: `problem` says what is wrong (which folders
    /// are not watched and why, what to change), `None` that it is fine again. The engine
    /// keeps the latest per `topic`, shows them as the node's health in `status`, and logs
    /// each change.
    Health {
        /// What the report is about, e.g. `inotify watches`, `mounts`, `long paths`.
        topic: &'static str,
        /// What is wrong, or `None` when it is fine again.
        problem: Option<String>,
    },
}

/// A file under a watch root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEvent {
    /// Index of the watch root.
    pub root: usize,
    /// Path relative to the root.
    pub rel: PathBuf,
    /// What happened.
    pub kind: EventKind,
    /// How we learned of it.
    pub origin: Origin,
}

/// How a file came to be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A kernel event.
    Event,
    /// Found by the initial scan at start-up.
    InitialScan,
    /// Found by scanning a new folder or rescanning after an overflow or a root's return: it
    /// may have been complete before we looked, or still be being written.
    Scan,
}

/// What the sources need to know of the rules.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The roots.
    pub roots: Vec<WatchRoot>,
    /// Paths never reported, folders included.
    pub ignore: GlobSet,
    /// Events some rule fires on.
    pub events: EventSet,
}
