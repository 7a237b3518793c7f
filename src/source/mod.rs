//! Where file events come from: one [`FileSource`] per source kind (inotify, poll; `auto` is
//! resolved per root by [`mod@choose`]), merged by [`Sources`].
//!
//! Sources report [`SourceEvent`]s into a [`Sink`], always naming a root by its index in the
//! full [`WatchConfig::roots`]. The engine sees one stream: exactly one
//! [`SourceEvent::InitialScanDone`], sent once every source has reported its initial scan, after
//! all of their initial-scan files. Stopping [`Sources`] stops every source and joins its threads.

pub mod choose;
pub mod event;
pub mod inotify;
pub mod poll;
pub mod scan;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_channel::Sender;

pub use event::{FileEvent, Origin, SourceEvent, WatchConfig};
pub use scan::scan;

use crate::rules::SourceKind;
use choose::{Choice, choose};
use inotify::InotifySource;
use poll::PollSource;

/// A running file source over some of the watch roots.
///
/// Each implementation has a constructor
/// `start(config: &WatchConfig, roots: Vec<usize>, sink: Sink) -> Result<Self, SourceError>`
/// that watches `roots` (indices into `config.roots`), reports what it finds and then what
/// changes into `sink`, reports the end of its initial scan once through
/// [`Sink::initial_scan_done`], and keeps running on its own threads until stopped or dropped.
pub trait FileSource: Send {
    /// Which `source:` kind this is.
    fn kind(&self) -> SourceKind;
    /// The roots it watches, as indices into the full [`WatchConfig::roots`].
    fn roots(&self) -> &[usize];
    /// Stops it and joins its threads; nothing is reported after this returns.
    fn stop(self: Box<Self>);
}

/// Why a file source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// inotify itself is unavailable.
    #[error(
        "cannot start inotify: {0}; if the limit of inotify instances is reached, raise `fs.inotify.max_user_instances`"
    )]
    InotifyInit(io::Error),
    /// The per-user watch limit is too low for the tree.
    #[error(
        "out of inotify watches after {placed} folders: the watch roots hold about {needed} folders but `fs.inotify.max_user_watches` is {limit}; raise it, e.g. `sysctl -w fs.inotify.max_user_watches={suggested}` (and persist it in /etc/sysctl.d/), then start again"
    )]
    WatchLimit {
        /// Watches placed before the limit hit.
        placed: usize,
        /// Folders in the tree.
        needed: usize,
        /// The current limit.
        limit: String,
        /// A comfortable new limit.
        suggested: usize,
    },
    /// The source's thread could not be started.
    #[error("cannot start the thread of the `{}` source: {error}", kind.as_str())]
    Thread {
        /// The source that needed it.
        kind: SourceKind,
        /// What the OS said.
        error: io::Error,
    },
}

/// Where one source reports; it forwards to the engine, merging the end of the initial scans.
pub struct Sink {
    merge: Arc<Merge>,
    /// Whether this source has already reported its initial scan (a second report is ignored).
    reported: AtomicBool,
}

/// What every source's [`Sink`] shares: the engine's channel and the sources yet to finish
/// their initial scan.
struct Merge {
    engine: Sender<SourceEvent>,
    pending: AtomicUsize,
}

impl Sink {
    fn new(merge: Arc<Merge>) -> Sink {
        Sink {
            merge,
            reported: AtomicBool::new(false),
        }
    }

    /// Sends an event to the engine; [`SourceEvent::InitialScanDone`] counts as
    /// [`Sink::initial_scan_done`], so no source can announce the end of the others' scans.
    pub fn send(&self, event: SourceEvent) {
        if matches!(event, SourceEvent::InitialScanDone) {
            self.initial_scan_done();
            return;
        }
        // The engine is gone only while shutting down, and then stops this source too.
        let _ = self.merge.engine.send(event);
    }

    /// Reports that this source has sent every file of its initial scan; the engine hears of it
    /// when the last source has.
    pub fn initial_scan_done(&self) {
        if self.reported.swap(true, Ordering::AcqRel) {
            return;
        }
        // AcqRel: the last source's send then comes after every other source's initial files.
        if self.merge.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.merge.engine.send(SourceEvent::InitialScanDone);
        }
    }
}

/// Every running file source, one per `source:` kind among the roots; dropping it stops them.
#[must_use = "dropping `Sources` stops every source at once"]
pub struct Sources {
    sources: Vec<Box<dyn FileSource>>,
}

impl Sources {
    /// Starts one source per `source:` kind over its roots, all reporting into `sink`.
    ///
    /// # Errors
    /// The first [`SourceError`] of a source that cannot start (inotify unavailable, too few
    /// watches); the sources already started are stopped.
    pub fn start(config: WatchConfig, sink: Sender<SourceEvent>) -> Result<Sources, SourceError> {
        let choices: Vec<Choice> = config.roots.iter().map(choose).collect();
        for (root, choice) in config.roots.iter().zip(&choices) {
            tracing::info!(root = %root.name, path = %root.path.display(), fs = %choice.fs, source = %choice.source.as_str(), chosen = %if choice.configured == SourceKind::Auto { "auto" } else { "forced" }, missing = choice.missing, "watch root");
            if let Some(warning) = choice.warning() {
                tracing::warn!(root = %root.name, path = %root.path.display(), "{warning}");
            }
        }
        let kinds: Vec<SourceKind> = choices.iter().map(|c| c.source).collect();
        Sources::start_groups(&config, group_by_kind(&kinds), sink, start_source)
    }

    /// Starts one source per group through `start_one`, merging their initial-scan reports.
    fn start_groups(
        config: &WatchConfig,
        groups: Vec<(SourceKind, Vec<usize>)>,
        sink: Sender<SourceEvent>,
        mut start_one: impl FnMut(
            SourceKind,
            &WatchConfig,
            Vec<usize>,
            Sink,
        ) -> Result<Box<dyn FileSource>, SourceError>,
    ) -> Result<Sources, SourceError> {
        // Counted before any source starts, so a fast one cannot finish "last" alone.
        let merge = Arc::new(Merge {
            engine: sink,
            pending: AtomicUsize::new(groups.len()),
        });
        if groups.is_empty() {
            let _ = merge.engine.send(SourceEvent::InitialScanDone);
        }
        let mut sources = Sources {
            sources: Vec::with_capacity(groups.len()),
        };
        for (kind, roots) in groups {
            // On error, `sources` is dropped here, which stops the ones already running.
            let source = start_one(kind, config, roots, Sink::new(merge.clone()))?;
            sources.sources.push(source);
        }
        Ok(sources)
    }

    /// Stops every source and joins their threads (as dropping does).
    pub fn stop(self) {}
}

impl Drop for Sources {
    fn drop(&mut self) {
        for source in self.sources.drain(..) {
            source.stop();
        }
    }
}

/// The roots of each chosen source kind (one per root, in order), in order of first appearance.
fn group_by_kind(kinds: &[SourceKind]) -> Vec<(SourceKind, Vec<usize>)> {
    let mut groups: Vec<(SourceKind, Vec<usize>)> = Vec::new();
    for (index, &source) in kinds.iter().enumerate() {
        match groups.iter_mut().find(|(kind, _)| *kind == source) {
            Some((_, roots)) => roots.push(index),
            None => groups.push((source, vec![index])),
        }
    }
    groups
}

fn start_source(
    kind: SourceKind,
    config: &WatchConfig,
    roots: Vec<usize>,
    sink: Sink,
) -> Result<Box<dyn FileSource>, SourceError> {
    match kind {
        SourceKind::Inotify => Ok(Box::new(InotifySource::start(config, roots, sink)?)),
        // `auto` is resolved by `choose` before grouping; polling is the choice that never
        // misses a writer, should an unresolved one ever arrive.
        SourceKind::Poll | SourceKind::Auto => {
            Ok(Box::new(PollSource::start(config, roots, sink)?))
        }
    }
}

#[cfg(test)]
mod tests;
