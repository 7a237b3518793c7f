//! The inotify file source: turns kernel events under the watch roots into [`SourceEvent`]s.
//!
//! Ready means closed-after-write or renamed-into-place. A new (or moved-in) folder is watched
//! *first* and scanned *after*, so files written into `a/b/c/` right after `mkdir -p a/b/c` are
//! seen by the scan, the watch, or both — never by neither (the daemon drops the duplicate).
//! A queue overflow is not fatal: the roots are rescanned and the daemon's ledger dispatches
//! only the versions it has not seen. A vanished root is polled for and re-attached.
//!
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

use crossbeam_channel::Sender;
use globset::GlobSet;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use crate::rules::{EventKind, EventSet, WatchRoot};

/// Environment variable naming a file whose existence pauses event reading (tests use it to
/// force a queue overflow).
pub const PAUSE_HOOK_ENV: &str = "SHOTROUTER_TEST_PAUSE_FILE";

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

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// inotify itself is unavailable.
    #[error(
        "cannot start inotify: {0}; if the limit of inotify instances is reached, raise `fs.inotify.max_user_instances`"
    )]
    Init(io::Error),
    /// The per-user watch limit is too low for the tree.
    #[error(
        "out of inotify watches after {placed} folders: the watch roots hold about {needed} folders but `fs.inotify.max_user_watches` is {limit}; raise it, e.g. `sysctl -w fs.inotify.max_user_watches={suggested}` (and persist it in /etc/sysctl.d/), then start again"
    )]
    Limit {
        /// Watches placed before the limit hit.
        placed: usize,
        /// Folders in the tree.
        needed: usize,
        /// The current limit.
        limit: String,
        /// A comfortable new limit.
        suggested: usize,
    },
}

/// What the source needs to know of the rules.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The roots.
    pub roots: Vec<WatchRoot>,
    /// Paths never reported, folders included.
    pub ignore: GlobSet,
    /// Events some rule fires on.
    pub events: EventSet,
}

/// A running file source; dropping it stops its thread.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Watcher {
    /// Places watches on every folder of every root (so limits fail here, at start), then
    /// reports the files found and, from then on, what happens, through `sink`.
    ///
    /// # Errors
    /// [`WatchError`] when inotify is unavailable or the watch limit is too low.
    pub fn start(config: WatchConfig, sink: Sender<SourceEvent>) -> Result<Watcher, WatchError> {
        let inotify = Inotify::init().map_err(WatchError::Init)?;
        let mut tree = Tree {
            inotify,
            mask: watch_mask(config.events),
            config,
            dirs: HashMap::new(),
            by_path: HashMap::new(),
            lost: Vec::new(),
            sink,
        };
        let mut found = Vec::new();
        for root in 0..tree.config.roots.len() {
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
            .name("watcher".into())
            .spawn(move || {
                for (root, rel) in found {
                    tree.emit_file(root, rel, EventKind::CloseWrite, Origin::InitialScan);
                }
                let _ = tree.sink.send(SourceEvent::InitialScanDone);
                tree.run(&thread_stop);
            })
            .map_err(WatchError::Init)?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
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
    config: WatchConfig,
    /// Watched folders: root index and path relative to it.
    dirs: HashMap<WatchDescriptor, (usize, PathBuf)>,
    by_path: HashMap<PathBuf, WatchDescriptor>,
    /// Roots that are gone, polled for their return.
    lost: Vec<usize>,
    sink: Sender<SourceEvent>,
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
            let _ = self.sink.send(SourceEvent::Overflow);
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
        let _ = self.sink.send(SourceEvent::File(FileEvent {
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
    ) -> Result<(), WatchError> {
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

    fn limit_error(&self) -> WatchError {
        let needed: usize = self.config.roots.iter().map(|r| count_dirs(&r.path)).sum();
        let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        WatchError::Limit {
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
        let _ = self.sink.send(SourceEvent::RootLost(path));
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
                    let _ = self.sink.send(SourceEvent::RootBack(path));
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
        for root in 0..self.config.roots.len() {
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

/// Lists the files under `root`/`start`, skipping ignored folders. `enter` is called on each
/// folder before it is listed (the watcher places its watch there) and says whether to list it.
fn walk<E>(
    root: &Path,
    start: &Path,
    recursive: bool,
    ignore: &GlobSet,
    found: &mut Vec<(usize, PathBuf)>,
    root_index: usize,
    mut enter: impl FnMut(&Path, &Path) -> Result<bool, E>,
) -> Result<(), E> {
    let mut stack = vec![start.to_path_buf()];
    while let Some(rel_dir) = stack.pop() {
        if !rel_dir.as_os_str().is_empty() && ignore.is_match(&rel_dir) {
            continue;
        }
        let abs = root.join(&rel_dir);
        if !enter(&abs, &rel_dir)? {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&abs) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let child = rel_dir.join(entry.file_name());
            if file_type.is_dir() {
                if recursive {
                    stack.push(child);
                }
            } else if file_type.is_file() && !ignore.is_match(&child) {
                found.push((root_index, child));
            }
        }
    }
    Ok(())
}

/// The files present under every root now, without watching (for `--once`).
pub fn scan(config: &WatchConfig) -> Vec<FileEvent> {
    let mut found = Vec::new();
    for (index, root) in config.roots.iter().enumerate() {
        let _ = walk::<()>(
            &root.path,
            Path::new(""),
            root.recursive,
            &config.ignore,
            &mut found,
            index,
            |_, _| Ok(true),
        );
    }
    found
        .into_iter()
        .map(|(root, rel)| FileEvent {
            root,
            rel,
            kind: EventKind::CloseWrite,
            origin: Origin::Scan,
        })
        .collect()
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
