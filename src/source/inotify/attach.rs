//! Placing watches: a folder is watched first and listed after, so nothing written into it in
//! between is missed. Out of watches at start is an error (exit 2, naming the sysctl); at run
//! time the folder is polled instead (`cover`), so nothing stops and nothing goes unseen. A
//! folder whose path the kernel refuses as too long is noted, to be reported, never skipped
//! silently; the walk goes on with the rest of the tree.

use std::path::{Path, PathBuf};

use inotify::WatchDescriptor;
use nix::libc::{ENAMETOOLONG, ENOSPC};

use crate::rules::EventKind;
use crate::source::inotify::poller::Why;
use crate::source::inotify::tree::Tree;
use crate::source::scan::walk;
use crate::source::{Origin, SourceError, SourceEvent};

impl Tree {
    /// Watches `rel` under `root` and every folder below it (watch first, then list), and
    /// collects the files found. Folders on remote mounts, and folders out of watches at run
    /// time, are polled instead.
    ///
    /// # Errors
    /// [`SourceError::WatchLimit`] when out of watches before the source has started.
    pub(super) fn add_tree(
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
            |abs, rel_dir| self.enter(root, abs, rel_dir),
        )
    }

    /// Watches (or polls) one folder before the walk lists it; says whether to list it.
    fn enter(&mut self, root: usize, abs: &Path, rel: &Path) -> Result<bool, SourceError> {
        if self.on_remote_mount(abs) {
            self.polled.insert(root, rel, abs, Why::Remote);
            return Ok(true);
        }
        match self.inotify.watches().add(abs, self.mask) {
            Ok(wd) => {
                self.register(wd, root, rel, abs);
                self.polled.remove(root, rel);
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(ENOSPC) && !self.started => Err(self.limit_error()),
            Err(e) if e.raw_os_error() == Some(ENOSPC) => {
                // Listed by the walk now and polled from then on; the walk goes on below it,
                // noting every folder there is that cannot be watched either.
                self.polled.insert(root, rel, abs, Why::NoWatch);
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(ENAMETOOLONG) => {
                self.note_too_long(abs);
                Ok(false)
            }
            // Gone again, or not a folder after all: nothing to watch or list.
            Err(_) => Ok(false),
        }
    }

    /// Records a watch placed on `abs` (`rel` under `root`).
    pub(super) fn register(&mut self, wd: WatchDescriptor, root: usize, rel: &Path, abs: &Path) {
        if let Some(old) = self.dirs.insert(wd.clone(), (root, rel.to_path_buf()))
            && old.1 != rel
        {
            self.by_path
                .remove(&self.config.roots[old.0].path.join(&old.1));
        }
        self.by_path.insert(abs.to_path_buf(), wd);
    }

    /// Watches a folder that appeared (created, moved in, found by a poll, uncovered by an
    /// unmount) and reports the files already in it.
    pub(super) fn add_and_report(&mut self, root: usize, rel: &Path) {
        let mut found = Vec::new();
        if let Err(e) = self.add_tree(root, rel, &mut found) {
            tracing::error!(error = %e, "cannot watch a new folder; files in it will be missed");
        }
        for (root, rel) in found {
            self.emit_file(root, rel, EventKind::CloseWrite, Origin::Scan);
        }
    }

    fn limit_error(&self) -> SourceError {
        let needed: usize = self
            .roots
            .iter()
            .map(|&r| count_dirs(&self.config.roots[r].path))
            .sum();
        SourceError::WatchLimit {
            placed: self.dirs.len(),
            needed,
            limit: watch_limit(),
            suggested: (needed * 2).max(524_288),
        }
    }

    /// Forgets every watch (and polled or too-long folder) at or below `abs`.
    pub(super) fn drop_subtree(&mut self, abs: &Path) {
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
        let roots = &self.config.roots;
        self.polled
            .remove_where(|root, rel| roots[root].path.join(rel).starts_with(abs));
        self.too_long.retain(|p| !p.starts_with(abs));
    }

    pub(super) fn forget(&mut self, wd: &WatchDescriptor) {
        if let Some((root, rel)) = self.dirs.remove(wd) {
            let abs = self.config.roots[root].path.join(rel);
            if self.by_path.get(&abs) == Some(wd) {
                self.by_path.remove(&abs);
            }
        }
    }

    pub(super) fn lose_root(&mut self, root: usize) {
        if self.lost.contains(&root) {
            return;
        }
        let path = self.config.roots[root].path.clone();
        tracing::error!(root = %path.display(), "watch root disappeared; its records are kept and it will be re-attached when it returns");
        self.drop_subtree(&path);
        self.lost.push(root);
        self.sink.send(SourceEvent::RootLost(path));
    }

    pub(super) fn reattach_lost_roots(&mut self) {
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

    pub(super) fn rescan(&mut self) {
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

/// `fs.inotify.max_user_watches` now, as text (`unknown` where it cannot be read).
pub(super) fn watch_limit() -> String {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
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
