//! Following mounts under the roots: a watch on a folder stays on that folder's inode, so a
//! file system mounted on it later is unseen, and after an unmount the watches on the mounted
//! one are gone. On each change of the mount table, every mount point under a root that
//! appeared or went is walked again: watches then reach whatever is there now (the new file
//! system's root, or the folder it covered), and the files found are reported as a scan's.
//!
//! The source is picked per mount as [`choose`] picks it per root: a network or FUSE mount
//! under a root (`source: auto`) is polled, since inotify would hear only this machine's
//! writes there; each mount gets one log line, like the start-up `watch root` line.

use std::path::{Path, PathBuf};

use crate::rules::WatchRoot;
use crate::source::choose::choose;
use crate::source::inotify::mountinfo::MountTable;
use crate::source::inotify::tree::Tree;

impl Tree {
    /// Opens the mount table and notes the remote mounts already under the roots (before
    /// the start-up walk, so their folders are polled from the start).
    pub(super) fn open_mounts(&mut self) {
        match MountTable::open() {
            Ok(table) => {
                let points: Vec<_> = table.points().cloned().collect();
                self.mounts = Some(table);
                for point in points {
                    if let Some((root, _)) = self.under_root(&point) {
                        self.pick_source(root, &point, true);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read /proc/self/mountinfo: file systems mounted under the watch roots after start will not be watched");
            }
        }
    }

    /// Whether `abs` is on a network or FUSE mount under a root (so it is polled).
    pub(super) fn on_remote_mount(&self, abs: &Path) -> bool {
        self.remote_mounts.iter().any(|(p, _)| abs.starts_with(p))
    }

    /// The mount table changed: walks again every mount point under a root that appeared or
    /// went.
    pub(super) fn mounts_changed(&mut self) {
        let Some(table) = self.mounts.as_mut() else {
            return;
        };
        let changed = match table.changes() {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read /proc/self/mountinfo");
                return;
            }
        };
        // A BTreeSet: a mount point comes before the ones below it.
        for point in changed {
            let Some((root, rel)) = self.under_root(&point) else {
                continue;
            };
            if self.lost.contains(&root) {
                continue;
            }
            // The watches there are on what was there before: useless now (and gone with an
            // unmounted file system).
            self.drop_subtree(&point);
            self.remote_mounts.retain(|(p, _)| !p.starts_with(&point));
            if !point.is_dir() {
                continue;
            }
            self.pick_source(root, &point, false);
            self.add_and_report(root, &rel);
        }
    }

    /// Chooses how the folder at mount point `point` (under `root`) is covered, and says so.
    fn pick_source(&mut self, root: usize, point: &Path, at_start: bool) {
        let under = WatchRoot {
            path: point.to_path_buf(),
            ..self.config.roots[root].clone()
        };
        let choice = choose(&under);
        if choice.remote && choice.source != crate::rules::SourceKind::Inotify {
            self.remote_mounts
                .push((point.to_path_buf(), choice.fs.clone()));
        }
        let source = if choice.remote && choice.source != crate::rules::SourceKind::Inotify {
            "poll"
        } else {
            "inotify"
        };
        if at_start && !choice.remote {
            // Local mounts present at start are watched like the rest of the tree.
            return;
        }
        let change = if at_start {
            "present"
        } else if self
            .mounts
            .as_ref()
            .is_some_and(|t| t.points().any(|p| p == point))
        {
            "mounted"
        } else {
            "unmounted"
        };
        tracing::info!(root = %self.config.roots[root].name, path = %point.display(), change, fs = %choice.fs, source, "watch mount");
        if let Some(warning) = choice.warning() {
            tracing::warn!(path = %point.display(), "{warning}");
        }
    }

    /// The root (of this source) strictly above `path`, and `path` relative to it; `None`
    /// also when the folder is not one to watch (ignored, or below a root watched without its
    /// sub-folders).
    fn under_root(&self, path: &Path) -> Option<(usize, PathBuf)> {
        let root = self.roots.iter().copied().find(|&r| {
            let root = &self.config.roots[r].path;
            path != root && path.starts_with(root)
        })?;
        let rel = path.strip_prefix(&self.config.roots[root].path).ok()?;
        let ignored = rel
            .ancestors()
            .any(|a| !a.as_os_str().is_empty() && self.config.ignore.is_match(a));
        let ours = self.config.roots[root].recursive && !ignored;
        ours.then(|| (root, rel.to_path_buf()))
    }
}
