//! One polling pass: look at the folders that are due, re-list those whose stamp changed, diff
//! each new listing against the index, then look again at files not yet complete.
//!
//! The cost follows the folders that changed, not the files present: a quiet folder costs one
//! `stat` per look (every `cold` interval, or `hot` while it changed recently); only a folder
//! whose (inode, mtime, ctime) moved is listed, and only its new entries are looked at. A folder
//! must be stat'ed itself to learn of changes inside it, since a folder's mtime does not move
//! when something changes in a folder below it.
//!
//! Nothing that fails is read as a deletion: a folder that cannot be looked at keeps its
//! listing and is tried again; a root that fails, changes device, or suddenly lists empty is
//! reported lost, kept, and diffed against the index when it returns.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::os::version::FileVersion;
use crate::rules::{EventKind, PollSettings};
use crate::source::poll::index::{Folder, Folders, Kind, Listing, RootState, Stamp};
use crate::source::{FileEvent, Origin, Sink, SourceEvent, WatchConfig};

/// A folder stays hot (looked at every `hot` interval) this many `cold` intervals after its
/// entries last changed: long enough to cover a render's gaps between frames.
const HOT_FOR_COLD_INTERVALS: u32 = 10;

/// A file found at start-up whose mtime is within the quiet time and this margin of now may
/// still be being written; it is watched until it holds still.
const RECENT_MARGIN: Duration = Duration::from_secs(2);

/// A file seen but not yet complete: it must hold still for the quiet time.
#[derive(Debug)]
struct Pending {
    /// Its version at the last look (`None` before the first).
    version: Option<FileVersion>,
    /// Since when it has shown that version.
    since: Instant,
    /// When to look again.
    next: Instant,
    /// `moved_to` when its inode left another name in the same pass (a rename), else
    /// `close_write`.
    kind: EventKind,
    /// `initial_scan` for a file the initial pass found still changing: once still, it is
    /// reported as the initial scan's, so the engine compares it with the store.
    origin: Origin,
}

/// What a pass saw come and go, resolved at its end: a name that arrives with an inode that
/// left another name in the same pass is reported `moved_to` (a rename). The name it left is
/// still reported deleted: inode numbers are reused at once on some file systems, so a
/// deletion is never inferred away from an inode alone.
#[derive(Default)]
struct Moves {
    /// Files whose names disappeared: root, path, inode, whether it is reported.
    gone: Vec<(usize, PathBuf, u64, bool)>,
    /// Files that appeared: folder, name, inode, whether it is watched.
    arrived: Vec<(u32, OsString, u64, bool)>,
}

/// The poller of some roots: the index, files not yet complete, and where it reports.
pub(super) struct Poller {
    pub(super) config: WatchConfig,
    pub(super) roots: Vec<RootState>,
    pub(super) folders: Folders,
    pending: HashMap<(u32, OsString), Pending>,
    pub(super) sink: Sink,
}

impl Poller {
    /// A poller over `roots` (indices into `config.roots`) that has seen nothing yet.
    pub fn new(config: WatchConfig, roots: &[usize], sink: Sink) -> Poller {
        Poller {
            roots: roots
                .iter()
                .map(|&index| RootState {
                    index,
                    top: None,
                    magic: 0,
                    dev: None,
                    lost: false,
                })
                .collect(),
            config,
            folders: Folders::default(),
            pending: HashMap::new(),
            sink,
        }
    }

    pub(super) fn settings(&self, root: usize) -> PollSettings {
        self.config.roots[root].poll
    }

    pub(super) fn root_path(&self, root: usize) -> &Path {
        &self.config.roots[root].path
    }

    /// The initial pass: lists every folder, reports every file as found by the initial scan
    /// (a file that may still be being written: once it held still),
    /// then that the scan is done. A root that cannot be listed is waited for.
    pub fn initial_pass(&mut self, now: Instant) {
        for slot in 0..self.roots.len() {
            let index = self.roots[slot].index;
            let path = self.root_path(index).to_path_buf();
            match std::fs::read_dir(&path) {
                Ok(_) => self.attach_root(slot, now, true),
                Err(e) => {
                    tracing::warn!(root = %path.display(), error = %e, "watch root cannot be listed; polling for it");
                    self.roots[slot].lost = true;
                }
            }
        }
        self.pass(now);
        self.sink.initial_scan_done();
    }

    /// One pass at `now`: roots' health, due folders, then files not yet complete.
    pub fn pass(&mut self, now: Instant) {
        for slot in 0..self.roots.len() {
            if self.roots[slot].lost {
                self.try_return(slot, now);
            }
        }
        let lost: HashSet<usize> = self
            .roots
            .iter()
            .filter(|r| r.lost)
            .map(|r| r.index)
            .collect();
        let mut work: Vec<u32> = self
            .folders
            .iter()
            .filter(|(_, f)| f.next_check <= now && !lost.contains(&f.root))
            .map(|(id, _)| id)
            .collect();
        let mut moves = Moves::default();
        let mut looked = HashSet::new();
        while let Some(id) = work.pop() {
            if looked.insert(id) {
                self.look(id, now, &mut work, &mut moves);
            }
        }
        self.resolve(moves, now);
        self.check_pending(now);
    }

    /// When the next pass is due.
    pub fn next_due(&self, now: Instant) -> Instant {
        let mut due = self
            .folders
            .iter()
            .filter(|(_, f)| !self.is_lost(f.root))
            .map(|(_, f)| f.next_check)
            .chain(self.pending.values().map(|p| p.next))
            .min()
            .unwrap_or(now + Duration::from_secs(3600));
        for root in self.roots.iter().filter(|r| r.lost) {
            due = due.min(now + self.settings(root.index).hot);
        }
        due.max(now + Duration::from_millis(10))
    }

    /// Looks at one folder: stat, and when its stamp moved, list and diff.
    fn look(&mut self, id: u32, now: Instant, work: &mut Vec<u32>, moves: &mut Moves) {
        let Some(folder) = self.folders.get(id) else {
            return;
        };
        let (root, parent, old_stamp) = (folder.root, folder.parent, folder.stamp);
        if self.is_lost(root) {
            return;
        }
        let abs = self.root_path(root).join(&folder.rel);
        let settings = self.settings(root);
        let meta = match std::fs::symlink_metadata(&abs) {
            Ok(meta) if meta.is_dir() => meta,
            Ok(_) => {
                let e = io::Error::from(io::ErrorKind::NotADirectory);
                return self.failed(id, &abs, e, now, work);
            }
            Err(e) => return self.failed(id, &abs, e, now, work),
        };
        let stamp = Stamp::of(&meta);
        if parent.is_none() && self.root_dev_changed(root, stamp.dev) {
            return self.lose_root(
                root,
                &format!(
                    "the file system mounted there changed (device {})",
                    stamp.dev
                ),
            );
        }
        if old_stamp.is_some_and(|old| old.same_entries(&stamp)) {
            self.schedule(id, now, false, settings);
            return;
        }
        let listing = match list(&abs) {
            Ok(listing) => listing,
            Err(e) => return self.failed(id, &abs, e, now, work),
        };
        let had = self.folders.get(id).map_or(0, |f| f.listing.len());
        if listing.is_empty() && had > 0 {
            if parent.is_none() {
                return self
                    .lose_root(root, &format!("it lists empty after holding {had} entries"));
            }
            if old_stamp.is_some_and(|old| old.dev != stamp.dev) {
                let e = io::Error::other("another file system is mounted there, and it is empty");
                return self.failed(id, &abs, e, now, work);
            }
        }
        if let Some(folder) = self.folders.get_mut(id)
            && folder.failing
        {
            folder.failing = false;
            tracing::info!(folder = %abs.display(), "folder can be listed again");
        }
        self.apply(id, stamp, listing, now, work, moves);
    }

    /// A look that failed: a vanished folder is its parent's news; anything else (an
    /// unreachable server, a stale handle) keeps what is known and tries again soon.
    fn failed(&mut self, id: u32, abs: &Path, e: io::Error, now: Instant, work: &mut Vec<u32>) {
        let Some(folder) = self.folders.get_mut(id) else {
            return;
        };
        let (root, parent) = (folder.root, folder.parent);
        let Some(parent) = parent else {
            return self.lose_root(root, &e.to_string());
        };
        let gone = matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
        );
        if !folder.failing && !gone {
            tracing::warn!(folder = %abs.display(), error = %e, "cannot look at a folder; what is known of it is kept and it is tried again");
        }
        folder.failing = !gone;
        folder.next_check = now + self.config.roots[root].poll.hot;
        if gone {
            // Its parent's listing changed too; look at it in this pass.
            work.push(parent);
        }
    }

    /// Records a new listing of folder `id`, reporting what arrived and what left.
    fn apply(
        &mut self,
        id: u32,
        stamp: Stamp,
        new: Vec<(OsString, u64, Kind)>,
        now: Instant,
        work: &mut Vec<u32>,
        moves: &mut Moves,
    ) {
        let Some(folder) = self.folders.get_mut(id) else {
            return;
        };
        let (root, rel, initial) = (folder.root, folder.rel.clone(), folder.initial);
        let old = std::mem::take(&mut folder.listing);
        let replaced = folder.stamp.is_some_and(|s| s.ino != stamp.ino);
        let recursive = self.config.roots[root].recursive;
        let mut old_entries: HashMap<&std::ffi::OsStr, (u64, Kind)> =
            old.iter().map(|(n, ino, kind)| (n, (ino, kind))).collect();
        let mut items = Vec::with_capacity(new.len());
        for (name, ino, kind) in new {
            let child_rel = rel.join(&name);
            let before = old_entries.remove(name.as_os_str());
            let kind = match kind {
                Kind::Dir(_) if !recursive && rel.as_os_str().is_empty() => Kind::SkippedDir,
                Kind::Dir(_) if self.config.ignore.is_match(&child_rel) => Kind::SkippedDir,
                Kind::Dir(_) => match before {
                    Some((old_ino, Kind::Dir(child))) if old_ino == ino && !replaced => {
                        Kind::Dir(child)
                    }
                    before => {
                        if let Some((_, Kind::Dir(child))) = before {
                            self.remove_subtree(child, moves);
                        }
                        let child = self.folders.insert(Folder {
                            root,
                            rel: child_rel,
                            parent: Some(id),
                            stamp: None,
                            listing: Listing::default(),
                            // Found at start-up, it has not changed as far as we know.
                            changed_at: (!initial).then_some(now),
                            next_check: now,
                            failing: false,
                            initial,
                        });
                        work.push(child);
                        Kind::Dir(child)
                    }
                },
                Kind::File => {
                    match before {
                        Some((old_ino, Kind::File)) if old_ino == ino && !replaced => {}
                        before => {
                            if let Some((_, Kind::Dir(child))) = before {
                                self.remove_subtree(child, moves);
                            }
                            let watched = !self.config.ignore.is_match(&child_rel);
                            if initial {
                                if watched {
                                    self.found_at_start(id, name.clone(), child_rel, now);
                                }
                            } else {
                                moves.arrived.push((id, name.clone(), ino, watched));
                            }
                        }
                    }
                    Kind::File
                }
                other => {
                    if let Some((_, Kind::Dir(child))) = before {
                        self.remove_subtree(child, moves);
                    }
                    other
                }
            };
            items.push((name, ino, kind));
        }
        for (name, (ino, kind)) in old_entries {
            match kind {
                Kind::File => {
                    let rel = rel.join(name);
                    let report = !self.config.ignore.is_match(&rel);
                    moves.gone.push((root, rel, ino, report));
                }
                Kind::Dir(child) => self.remove_subtree(child, moves),
                Kind::SkippedDir | Kind::Other => {}
            }
        }
        let changed = !initial;
        let settings = self.settings(root);
        if let Some(folder) = self.folders.get_mut(id) {
            folder.listing = Listing::from_sorted(&items);
            folder.stamp = Some(stamp);
            folder.initial = false;
        }
        self.schedule(id, now, changed, settings);
    }

    /// A file found by the initial pass: reported at once, unless its mtime says it may still
    /// be being written (then it is reported once it held still, after the initial scan, as a
    /// file that arrived: the engine runs it unless the store already has that version). The mtime is only a hint
    /// here, for which files to watch: a clock skewed between server and client makes it
    /// wait for nothing or not at all, never lose a file.
    fn found_at_start(&mut self, folder: u32, name: OsString, rel: PathBuf, now: Instant) {
        let root = self.folders.get(folder).map_or(0, |f| f.root);
        let abs = self.root_path(root).join(&rel);
        let quiet = self.settings(root).quiet;
        let recent = std::fs::symlink_metadata(&abs)
            .and_then(|m| m.modified())
            .is_ok_and(|mtime| match SystemTime::now().duration_since(mtime) {
                Ok(age) => age < quiet + RECENT_MARGIN,
                Err(_) => true, // in the future: a skewed clock, or being written now
            });
        if !recent {
            self.emit(root, rel, EventKind::CloseWrite, Origin::InitialScan);
            return;
        }
        self.pending.insert(
            (folder, name),
            Pending {
                version: None,
                since: now,
                next: now,
                kind: EventKind::CloseWrite,
                origin: Origin::Event,
            },
        );
    }

    /// Forgets folder `id` and everything below it, noting its files as gone.
    fn remove_subtree(&mut self, id: u32, moves: &mut Moves) {
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            let Some(folder) = self.folders.remove(id) else {
                continue;
            };
            for (name, ino, kind) in folder.listing.iter() {
                match kind {
                    Kind::File => {
                        let rel = folder.rel.join(name);
                        let report = !self.config.ignore.is_match(&rel);
                        moves.gone.push((folder.root, rel, ino, report));
                    }
                    Kind::Dir(child) => stack.push(child),
                    Kind::SkippedDir | Kind::Other => {}
                }
            }
            self.pending.retain(|(folder, _), _| *folder != id);
        }
    }

    /// Sets when folder `id` is looked at next: soon while it changed recently, else at the
    /// root's cold interval.
    fn schedule(&mut self, id: u32, now: Instant, changed: bool, settings: PollSettings) {
        let Some(folder) = self.folders.get_mut(id) else {
            return;
        };
        if changed {
            folder.changed_at = Some(now);
        }
        let hot = folder.changed_at.is_some_and(|at| {
            now.saturating_duration_since(at) < settings.cold * HOT_FOR_COLD_INTERVALS
        });
        folder.next_check = now + if hot { settings.hot } else { settings.cold };
    }

    /// Reports the pass's deletions and starts watching what arrived.
    fn resolve(&mut self, moves: Moves, now: Instant) {
        // Paired within one root (one device) only: an inode number means nothing across them.
        let gone_inodes: HashSet<(usize, u64)> = moves.gone.iter().map(|g| (g.0, g.2)).collect();
        // A name that is there again (its folder was replaced) was not deleted.
        let arrived_paths: HashSet<(usize, PathBuf)> = moves
            .arrived
            .iter()
            .filter_map(|(folder, name, _, _)| {
                let f = self.folders.get(*folder)?;
                Some((f.root, f.rel.join(name)))
            })
            .collect();
        for (root, rel, _, report) in moves.gone {
            if report && !arrived_paths.contains(&(root, rel.clone())) {
                self.emit(root, rel, EventKind::Delete, Origin::Event);
            }
        }
        for (folder, name, ino, watched) in moves.arrived {
            if !watched {
                continue;
            }
            let moved = self
                .folders
                .get(folder)
                .is_some_and(|f| gone_inodes.contains(&(f.root, ino)));
            if !moved && let Some(f) = self.folders.get(folder) {
                let (root, rel) = (f.root, f.rel.join(&name));
                self.emit(root, rel, EventKind::Create, Origin::Event);
            }
            self.pending.insert(
                (folder, name),
                Pending {
                    version: None,
                    since: now,
                    next: now,
                    kind: if moved {
                        EventKind::MovedTo
                    } else {
                        EventKind::CloseWrite
                    },
                    origin: Origin::Event,
                },
            );
        }
    }

    /// Looks again at files not yet complete; reports those that held still for the quiet
    /// time.
    fn check_pending(&mut self, now: Instant) {
        let due: Vec<(u32, OsString)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(folder) = self.folders.get(key.0) else {
                self.pending.remove(&key);
                continue;
            };
            let root = folder.root;
            if self.is_lost(root) {
                let hot = self.settings(root).hot;
                if let Some(p) = self.pending.get_mut(&key) {
                    p.next = now + hot;
                }
                continue;
            }
            let rel = folder.rel.join(&key.1);
            let abs = self.root_path(root).join(&rel);
            let settings = self.settings(root);
            let current = match std::fs::metadata(&abs) {
                Ok(meta) if meta.is_file() => FileVersion::of(&abs),
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(_) => {
                    // Unreachable for now: keep waiting, the file is not lost.
                    if let Some(p) = self.pending.get_mut(&key) {
                        p.next = now + settings.hot;
                    }
                    continue;
                }
            };
            let Some(current) = current else {
                // Gone or replaced by something else: its folder's listing will tell.
                self.pending.remove(&key);
                continue;
            };
            let Some(pending) = self.pending.get_mut(&key) else {
                continue;
            };
            if pending.version != Some(current) {
                pending.version = Some(current);
                pending.since = now;
            } else if now.saturating_duration_since(pending.since) >= settings.quiet {
                let (kind, origin) = (pending.kind, pending.origin);
                self.pending.remove(&key);
                self.emit(root, rel, kind, origin);
                continue;
            }
            pending.next = (pending.since + settings.quiet).min(now + settings.hot);
        }
    }

    fn emit(&self, root: usize, rel: PathBuf, kind: EventKind, origin: Origin) {
        // A "move" is a guess from a reused inode number: a rule that fires only on complete
        // writes must still hear of the file.
        let kind = if kind == EventKind::MovedTo && !self.config.events.contains(kind) {
            EventKind::CloseWrite
        } else {
            kind
        };
        if origin != Origin::InitialScan && !self.config.events.contains(kind) {
            return;
        }
        self.sink.send(SourceEvent::File(FileEvent {
            root,
            rel,
            kind,
            origin,
        }));
    }

    /// Folders indexed and heap bytes of the index, for the memory figure.
    pub fn index_size(&self) -> (usize, usize) {
        (self.folders.len(), self.folders.heap_bytes())
    }
}

/// A folder's entries, sorted by name; an error when any entry could not be read, since a
/// partial listing would read as deletions.
fn list(abs: &Path) -> io::Result<Vec<(OsString, u64, Kind)>> {
    let mut items = Vec::new();
    for entry in std::fs::read_dir(abs)? {
        let entry = entry?;
        // An entry deleted between the listing and this look is simply not there.
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let kind = if file_type.is_dir() {
            Kind::Dir(u32::MAX)
        } else if file_type.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        items.push((entry.file_name(), entry.ino(), kind));
    }
    items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(items)
}
