//! The inotify thread's state and loop: read kernel events, turn them into [`SourceEvent`]s,
//! and between reads do the timed work (lost roots, polled folders, watch retries, mounts).
//!
//! Placing watches and walking folders is in `attach`; covering what cannot be watched in
//! `cover` and `poller`; following mounts in `follow` (over `mountinfo`). Those files add methods to [`Tree`];
//! this one imports none of them back except the plain types it holds.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::rules::EventKind;
use crate::source::inotify::mountinfo::MountTable;
use crate::source::inotify::poller::Polled;
use crate::source::{FileEvent, Origin, Sink, SourceEvent, WatchConfig};

/// Environment variable naming a file whose existence pauses event reading (tests use it to
/// force a queue overflow).
pub const PAUSE_HOOK_ENV: &str = "SHOTROUTER_TEST_PAUSE_FILE";

/// How often folders that inotify cannot cover are listed.
pub(super) const POLL_EVERY: Duration = Duration::from_secs(2);

/// How often real watches are tried again on folders that ran out of them.
pub(super) const RETRY_EVERY: Duration = Duration::from_secs(10);

/// Everything the inotify thread knows.
pub(super) struct Tree {
    pub(super) inotify: Inotify,
    pub(super) mask: WatchMask,
    /// The whole configuration: events name roots by their index in it.
    pub(super) config: WatchConfig,
    /// The roots this source watches.
    pub(super) roots: Vec<usize>,
    /// Watched folders: root index and path relative to it.
    pub(super) dirs: HashMap<WatchDescriptor, (usize, PathBuf)>,
    pub(super) by_path: HashMap<PathBuf, WatchDescriptor>,
    /// Roots that are gone, polled for their return.
    pub(super) lost: Vec<usize>,
    /// Set once the start-up walk is done: running out of watches before that is a start-up
    /// error (exit 2), after it a degraded state covered by polling.
    pub(super) started: bool,
    /// Folders listed every [`POLL_EVERY`] instead of (or until) being watched.
    pub(super) polled: Polled,
    /// Folders whose path is longer than the kernel takes (absolute paths).
    pub(super) too_long: BTreeSet<PathBuf>,
    /// Mount points under the roots on network or FUSE storage, with their file system.
    pub(super) remote_mounts: Vec<(PathBuf, String)>,
    /// `/proc/self/mountinfo`, to hear of mounts; `None` where it cannot be read.
    pub(super) mounts: Option<MountTable>,
    /// The health last reported per topic (folders unwatched, folders too deep).
    pub(super) reported: (usize, usize),
    pub(super) sink: Sink,
}

impl Tree {
    pub(super) fn run(&mut self, stop: &AtomicBool) {
        let pause_file = std::env::var_os(PAUSE_HOOK_ENV).map(PathBuf::from);
        let mut buffer = vec![0u8; 1 << 18];
        let mut last_root_check = Instant::now();
        let mut next_poll = Instant::now() + POLL_EVERY;
        let mut next_retry = Instant::now() + RETRY_EVERY;
        while !stop.load(Ordering::Relaxed) {
            if pause_file.as_deref().is_some_and(Path::exists) {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            if !self.lost.is_empty() && last_root_check.elapsed() >= Duration::from_secs(1) {
                last_root_check = Instant::now();
                self.reattach_lost_roots();
            }
            let now = Instant::now();
            if now >= next_poll {
                next_poll = now + POLL_EVERY;
                self.poll_uncovered();
            }
            if now >= next_retry {
                next_retry = now + RETRY_EVERY;
                self.retry_watches();
            }
            self.report_health();
            let (readable, mounts_changed) = self.wait(PollTimeout::from(200u16));
            if mounts_changed {
                self.mounts_changed();
            }
            if !readable {
                continue;
            }
            let events: Vec<(WatchDescriptor, EventMask, Option<PathBuf>)> =
                match self.inotify.read_events(&mut buffer) {
                    Ok(events) => events
                        .map(|e| (e.wd, e.mask, e.name.map(PathBuf::from)))
                        .collect(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "reading inotify events failed; rescanning");
                        self.rescan();
                        continue;
                    }
                };
            for (wd, mask, name) in events {
                self.handle(wd, mask, name.as_deref());
            }
        }
    }

    /// Waits up to `timeout` for kernel events or a change of the mount table: (events to
    /// read, mounts changed).
    fn wait(&self, timeout: PollTimeout) -> (bool, bool) {
        let mut fds = vec![PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
        if let Some(mounts) = &self.mounts {
            // The kernel flags a change of the mount table with POLLPRI (and POLLERR).
            fds.push(PollFd::new(mounts.as_fd(), PollFlags::POLLPRI));
        }
        if !matches!(nix::poll::poll(&mut fds, timeout), Ok(n) if n > 0) {
            return (false, false);
        }
        let readable = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        let mounts = fds.get(1).is_some_and(|fd| {
            fd.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR))
        });
        (readable, mounts)
    }

    fn handle(&mut self, wd: WatchDescriptor, mask: EventMask, name: Option<&Path>) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            tracing::warn!(
                "inotify queue overflowed; rescanning the watch roots so nothing is missed"
            );
            self.sink.send(SourceEvent::Overflow);
            self.rescan();
            return;
        }
        let Some((root, dir)) = self.dirs.get(&wd).cloned() else {
            return;
        };
        if mask.contains(EventMask::IGNORED) {
            self.forget(&wd);
            if dir.as_os_str().is_empty() {
                self.lose_root(root);
            }
            return;
        }
        if mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::UNMOUNT) {
            if dir.as_os_str().is_empty() {
                self.lose_root(root);
            }
            return;
        }
        let Some(name) = name else { return };
        let rel = dir.join(name);
        if mask.contains(EventMask::ISDIR) {
            if mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                self.add_and_report(root, &rel);
            } else if mask.contains(EventMask::MOVED_FROM) {
                self.drop_subtree(&self.config.roots[root].path.join(&rel));
            }
            return;
        }
        let kind = if mask.contains(EventMask::CLOSE_WRITE) {
            EventKind::CloseWrite
        } else if mask.contains(EventMask::MOVED_TO) {
            EventKind::MovedTo
        } else if mask.contains(EventMask::CREATE) {
            EventKind::Create
        } else if mask.contains(EventMask::DELETE) {
            EventKind::Delete
        } else if mask.contains(EventMask::CLOSE_NOWRITE) {
            EventKind::CloseNowrite
        } else {
            return;
        };
        if self.config.events.contains(kind) {
            self.emit_file(root, rel, kind, Origin::Event);
        }
    }

    pub(super) fn emit_file(&self, root: usize, rel: PathBuf, kind: EventKind, origin: Origin) {
        if self.config.ignore.is_match(&rel) {
            return;
        }
        self.sink.send(SourceEvent::File(FileEvent {
            root,
            rel,
            kind,
            origin,
        }));
    }
}
