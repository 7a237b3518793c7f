//! A watch root's health: where it is lost (unreachable, another file system mounted there,
//! emptied all at once) and when it is back (listable, the same kind of file system as before,
//! not empty unless it was). A lost root keeps its index, and on its return every folder is
//! looked at and diffed against it, so what happened meanwhile is reported and nothing else.

use std::path::PathBuf;
use std::time::Instant;

use crate::source::SourceEvent;
use crate::source::poll::index::{Folder, Listing};
use crate::source::poll::pass::Poller;

impl Poller {
    /// Makes the root's folder (listed on this pass) and notes its file system.
    pub(super) fn attach_root(&mut self, slot: usize, now: Instant, initial: bool) {
        let index = self.roots[slot].index;
        if let Ok(kind) = crate::os::fs_kind::detect(self.root_path(index)) {
            self.roots[slot].magic = kind.magic;
        }
        self.roots[slot].dev = std::fs::metadata(self.root_path(index))
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::dev(&m));
        let id = self.folders.insert(Folder {
            root: index,
            rel: PathBuf::new(),
            parent: None,
            stamp: None,
            listing: Listing::default(),
            changed_at: None,
            next_check: now,
            failing: false,
            initial,
        });
        self.roots[slot].top = Some(id);
    }

    pub(super) fn is_lost(&self, root: usize) -> bool {
        self.roots.iter().any(|r| r.index == root && r.lost)
    }

    pub(super) fn root_dev_changed(&mut self, root: usize, dev: u64) -> bool {
        let Some(state) = self.roots.iter_mut().find(|r| r.index == root) else {
            return false;
        };
        match state.dev {
            Some(known) => known != dev,
            None => {
                state.dev = Some(dev);
                false
            }
        }
    }

    /// Reports a root lost, keeping everything known of it.
    pub(super) fn lose_root(&mut self, root: usize, why: &str) {
        let Some(state) = self.roots.iter_mut().find(|r| r.index == root) else {
            return;
        };
        if state.lost {
            return;
        }
        state.lost = true;
        let path = self.config.roots[root].path.clone();
        tracing::error!(root = %path.display(), reason = %why, "watch root lost (unreachable, unmounted or emptied); nothing under it is read as deleted, and it is diffed against what was known when it returns");
        self.sink.send(SourceEvent::RootLost(path));
    }

    /// A lost root is back when it can be listed, is on the same kind of file system as
    /// before, and is not empty (unless it was): then every folder is looked at in this pass.
    pub(super) fn try_return(&mut self, slot: usize, now: Instant) {
        let index = self.roots[slot].index;
        let path = self.root_path(index).to_path_buf();
        let Ok(meta) = std::fs::metadata(&path) else {
            return;
        };
        let Ok(kind) = crate::os::fs_kind::detect(&path) else {
            return;
        };
        let state = &self.roots[slot];
        if !meta.is_dir() || (state.magic != 0 && kind.magic != state.magic) {
            return;
        }
        let Ok(mut entries) = std::fs::read_dir(&path) else {
            return;
        };
        let top = state.top;
        let knew = top
            .and_then(|id| self.folders.get(id))
            .is_some_and(|f| !f.listing.is_empty());
        if knew && entries.next().is_none() {
            return;
        }
        let dev = std::os::unix::fs::MetadataExt::dev(&meta);
        let old_dev = self.roots[slot].dev;
        self.roots[slot].lost = false;
        self.roots[slot].dev = Some(dev);
        tracing::info!(root = %path.display(), "watch root is back; comparing it with what was known");
        self.sink.send(SourceEvent::RootBack(path));
        match top {
            None => self.attach_root(slot, now, true),
            Some(_) => {
                for folder in self.folders.iter_mut().filter(|f| f.root == index) {
                    folder.next_check = now;
                    if let Some(stamp) = folder.stamp.as_mut()
                        && Some(stamp.dev) == old_dev
                    {
                        stamp.dev = dev;
                    }
                }
            }
        }
    }
}
