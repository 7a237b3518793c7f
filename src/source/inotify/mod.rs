//! The inotify file source: turns kernel events under its watch roots into [`SourceEvent`](crate::source::SourceEvent)s.
//!
//! Ready means closed-after-write or renamed-into-place. A new (or moved-in) folder is watched
//! *first* and scanned *after*, so files written into `a/b/c/` right after `mkdir -p a/b/c` are
//! seen by the scan, the watch, or both — never by neither (the daemon drops the duplicate).
//! An overflow rescans this source's roots; a vanished root is polled for and re-attached.
//! Only close-write, moved-to/from, create and the folder events are registered (never
//! open/access/modify), so the converters' own reads cannot flood the queue.
//!
//! What inotify cannot cover is covered another way and said so: folders it runs out of
//! watches for at run time are polled until watches can be placed again, network or FUSE file
//! systems mounted under a root are polled, mounts coming and going are followed, and folders
//! too deep for the kernel's path limit are reported ([`SourceEvent::Health`](crate::source::SourceEvent::Health)).
//!
//! Files: `tree` (the thread's state and loop), `attach` (placing watches), `cover` (polling,
//! retries, health), `poller` (the polled folders' index), `follow` and `mountinfo` (mounts).

mod attach;
mod cover;
mod follow;
mod mountinfo;
mod poller;
mod tree;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use inotify::{Inotify, WatchMask};

use crate::rules::{EventKind, EventSet, SourceKind};
use crate::source::{FileSource, Origin, Sink, SourceError, WatchConfig};
use poller::Polled;
use tree::Tree;

pub use tree::PAUSE_HOOK_ENV;

/// A running inotify source over some of the roots; dropping it stops and joins its thread.
pub struct InotifySource {
    roots: Vec<usize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for InotifySource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl InotifySource {
    /// Places watches on every folder of its roots (so limits fail here, at start), then
    /// reports the files found and, from then on, what happens, through `sink`. Events name
    /// roots by their index in `config.roots`; only those in `roots` are watched.
    ///
    /// # Errors
    /// [`SourceError`] when inotify is unavailable or the watch limit is too low.
    pub fn start(config: &WatchConfig, roots: Vec<usize>, sink: Sink) -> Result<Self, SourceError> {
        let inotify = Inotify::init().map_err(SourceError::InotifyInit)?;
        let mut tree = Tree {
            inotify,
            mask: watch_mask(config.events),
            config: config.clone(),
            roots: roots.clone(),
            dirs: HashMap::new(),
            by_path: HashMap::new(),
            lost: Vec::new(),
            started: false,
            polled: Polled::default(),
            too_long: BTreeSet::new(),
            remote_mounts: Vec::new(),
            mounts: None,
            reported: (0, 0),
            sink,
        };
        tree.open_mounts();
        let mut found = Vec::new();
        for &root in &roots {
            if tree.config.roots[root].path.is_dir() {
                tree.add_tree(root, Path::new(""), &mut found)?;
            } else {
                tracing::warn!(root = %tree.config.roots[root].path.display(), "watch root is missing; waiting for it to appear");
                tree.lost.push(root);
            }
        }
        tree.started = true;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("inotify".into())
            .spawn(move || {
                for (root, rel) in found {
                    tree.emit_file(root, rel, EventKind::CloseWrite, Origin::InitialScan);
                }
                tree.report_health();
                tree.sink.initial_scan_done();
                tree.run(&thread_stop);
            })
            .map_err(|error| SourceError::Thread {
                kind: SourceKind::Inotify,
                error,
            })?;
        Ok(InotifySource {
            roots,
            stop,
            thread: Some(thread),
        })
    }
}

impl FileSource for InotifySource {
    fn kind(&self) -> SourceKind {
        SourceKind::Inotify
    }

    fn roots(&self) -> &[usize] {
        &self.roots
    }

    fn stop(self: Box<Self>) {
        // Drop stops and joins; a source dropped without `stop` must not leak its thread.
    }
}

fn watch_mask(events: EventSet) -> WatchMask {
    let mut mask = WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::CREATE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::DONT_FOLLOW
        | WatchMask::ONLYDIR;
    if events.contains(EventKind::Delete) {
        mask |= WatchMask::DELETE;
    }
    if events.contains(EventKind::CloseNowrite) {
        mask |= WatchMask::CLOSE_NOWRITE;
    }
    mask
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use crossbeam_channel::unbounded;
    use globset::GlobSet;

    use super::*;
    use crate::rules::WatchRoot;
    use crate::source::{Merge, SourceEvent};

    #[test]
    fn a_source_over_some_roots_watches_only_those_and_names_them_by_full_index() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = |name: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).expect("mkdir");
            WatchRoot {
                name: name.into(),
                path,
                recursive: true,
                source: SourceKind::Inotify,
                poll: crate::rules::DEFAULT_POLL,
            }
        };
        let config = WatchConfig {
            roots: vec![root("other"), root("mine")],
            ignore: GlobSet::empty(),
            events: EventSet::READY,
        };
        let (tx, rx) = unbounded();
        let merge = Arc::new(Merge {
            engine: tx,
            pending: AtomicUsize::new(1),
        });
        let source = InotifySource::start(&config, vec![1], Sink::new(merge)).expect("start");
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Ok(SourceEvent::InitialScanDone)
        );

        // Written first: had root 0 been watched, its event would be queued before the others.
        std::fs::write(config.roots[0].path.join("x.exr"), "x").expect("write");
        let deep = config.roots[1].path.join("new/deep");
        std::fs::create_dir_all(&deep).expect("mkdir");
        std::fs::write(deep.join("y.exr"), "y").expect("write");

        let event = rx.recv_timeout(Duration::from_secs(10));
        let Ok(SourceEvent::File(file)) = event else {
            panic!("want new/deep/y.exr, got {event:?}")
        };
        assert_eq!((file.root, file.rel), (1, PathBuf::from("new/deep/y.exr")));
        drop(source);
    }
}
