//! The inotify file source: turns kernel events under its watch roots into [`SourceEvent`]s.
//!
//! Ready means closed-after-write or renamed-into-place. A new (or moved-in) folder is watched
//! *first* and scanned *after*, so files written into `a/b/c/` right after `mkdir -p a/b/c` are
//! seen by the scan, the watch, or both — never by neither (the daemon drops the duplicate).
//! An overflow rescans this source's roots; a vanished root is polled for and re-attached.
//! Only close-write, moved-to/from, create and the folder events are registered (never
//! open/access/modify), so the converters' own reads cannot flood the queue.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use crate::rules::{EventKind, EventSet, SourceKind};
use crate::source::scan::walk;
use crate::source::{FileEvent, FileSource, Origin, Sink, SourceError, SourceEvent, WatchConfig};

/// Environment variable naming a file whose existence pauses event reading (tests use it to
/// force a queue overflow).
pub const PAUSE_HOOK_ENV: &str = "SHOTROUTER_TEST_PAUSE_FILE";

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
            sink,
        };
        let mut found = Vec::new();
        for &root in &roots {
            if tree.config.roots[root].path.is_dir() {
                tree.add_tree(root, Path::new(""), &mut found)?;
            } else {
                tracing::warn!(root = %tree.config.roots[root].path.display(), "watch root is missing; waiting for it to appear");
                tree.lost.push(root);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("inotify".into())
            .spawn(move || {
                for (root, rel) in found {
                    tree.emit_file(root, rel, EventKind::CloseWrite, Origin::InitialScan);
                }
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

struct Tree {
    inotify: Inotify,
    mask: WatchMask,
    /// The whole configuration: events name roots by their index in it.
    config: WatchConfig,
    /// The roots this source watches.
    roots: Vec<usize>,
    /// Watched folders: root index and path relative to it.
    dirs: HashMap<WatchDescriptor, (usize, PathBuf)>,
    by_path: HashMap<PathBuf, WatchDescriptor>,
    /// Roots that are gone, polled for their return.
    lost: Vec<usize>,
    sink: Sink,
}

impl Tree {
    fn run(&mut self, stop: &AtomicBool) {
        let pause_file = std::env::var_os(PAUSE_HOOK_ENV).map(PathBuf::from);
        let mut buffer = vec![0u8; 1 << 18];
        let mut last_root_check = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if pause_file.as_deref().is_some_and(Path::exists) {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            if !self.lost.is_empty() && last_root_check.elapsed() >= Duration::from_secs(1) {
                last_root_check = Instant::now();
                self.reattach_lost_roots();
            }
            let readable = {
                let mut fds = [nix::poll::PollFd::new(
                    self.inotify.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16)), Ok(n) if n > 0)
            };
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
                let mut found = Vec::new();
                if let Err(e) = self.add_tree(root, &rel, &mut found) {
                    tracing::error!(error = %e, "cannot watch a new folder; files in it will be missed");
                }
                for (root, rel) in found {
                    self.emit_file(root, rel, EventKind::CloseWrite, Origin::Scan);
                }
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

    fn emit_file(&self, root: usize, rel: PathBuf, kind: EventKind, origin: Origin) {
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

    /// Watches `rel` under `root` and every folder below it (watch first, then list), and
    /// collects the files found.
    fn add_tree(
        &mut self,
        root: usize,
        rel: &Path,
        found: &mut Vec<(usize, PathBuf)>,
    ) -> Result<(), SourceError> {
        let root_path = self.config.roots[root].path.clone();
        let recursive = self.config.roots[root].recursive;
        let ignore = self.config.ignore.clone();
        walk(
            &root_path,
            rel,
            recursive,
            &ignore,
            found,
            root,
            |abs, rel_dir| {
                match self.inotify.watches().add(abs, self.mask) {
                    Ok(wd) => {
                        if let Some(old) =
                            self.dirs.insert(wd.clone(), (root, rel_dir.to_path_buf()))
                            && old.1 != rel_dir
                        {
                            self.by_path
                                .remove(&self.config.roots[old.0].path.join(&old.1));
                        }
                        self.by_path.insert(abs.to_path_buf(), wd);
                        Ok(true)
                    }
                    Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => {
                        Err(self.limit_error())
                    }
                    // Gone again, or not a folder after all: nothing to watch or list.
                    Err(_) => Ok(false),
                }
            },
        )
    }

    fn limit_error(&self) -> SourceError {
        let needed: usize = self
            .roots
            .iter()
            .map(|&r| count_dirs(&self.config.roots[r].path))
            .sum();
        let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        SourceError::WatchLimit {
            placed: self.dirs.len(),
            needed,
            limit,
            suggested: (needed * 2).max(524_288),
        }
    }

    fn drop_subtree(&mut self, abs: &Path) {
        let gone: Vec<(PathBuf, WatchDescriptor)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(abs))
            .map(|(p, wd)| (p.clone(), wd.clone()))
            .collect();
        for (path, wd) in gone {
            self.by_path.remove(&path);
            self.dirs.remove(&wd);
            let _ = self.inotify.watches().remove(wd);
        }
    }

    fn forget(&mut self, wd: &WatchDescriptor) {
        if let Some((root, rel)) = self.dirs.remove(wd) {
            let abs = self.config.roots[root].path.join(rel);
            if self.by_path.get(&abs) == Some(wd) {
                self.by_path.remove(&abs);
            }
        }
    }

    fn lose_root(&mut self, root: usize) {
        if self.lost.contains(&root) {
            return;
        }
        let path = self.config.roots[root].path.clone();
        tracing::error!(root = %path.display(), "watch root disappeared; its records are kept and it will be re-attached when it returns");
        self.drop_subtree(&path);
        self.lost.push(root);
        self.sink.send(SourceEvent::RootLost(path));
    }

    fn reattach_lost_roots(&mut self) {
        let lost = std::mem::take(&mut self.lost);
        for root in lost {
            let path = self.config.roots[root].path.clone();
            if !path.is_dir() {
                self.lost.push(root);
                continue;
            }
            let mut found = Vec::new();
            match self.add_tree(root, Path::new(""), &mut found) {
                Ok(()) => {
                    tracing::info!(root = %path.display(), "watch root is back; rescanning it");
                    self.sink.send(SourceEvent::RootBack(path));
                    for (root, rel) in found {
                        self.emit_file(root, rel, EventKind::CloseWrite, Origin::Scan);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot re-attach watch root");
                    self.lost.push(root);
                }
            }
        }
    }

    fn rescan(&mut self) {
        let mut found = Vec::new();
        for root in self.roots.clone() {
            if self.lost.contains(&root) {
                continue;
            }
            if let Err(e) = self.add_tree(root, Path::new(""), &mut found) {
                tracing::error!(error = %e, "rescan could not watch every folder");
            }
        }
        for (root, rel) in found {
            self.emit_file(root, rel, EventKind::CloseWrite, Origin::Scan);
        }
    }
}

fn count_dirs(root: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        count += 1;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use crossbeam_channel::unbounded;
    use globset::GlobSet;

    use super::*;
    use crate::rules::WatchRoot;
    use crate::source::Merge;

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
