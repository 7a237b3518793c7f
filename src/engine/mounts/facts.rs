//! The watcher's side of mount facts: which mount holds each of its roots and output folders
//! (point, type, source, mounted folder, depth), with its machine's id, recorded in each job's
//! plan for workers to compare with their own mounts ([`super`]).
//!
//! They are read off the dispatch path: resolving a folder on a hung hard-mounted NFS share
//! blocks forever, and the watcher's loop must not. A plan gets the last facts read; only the
//! first plans of a folder set wait for them, and no longer than `WAIT`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::os::mountinfo::MountTable;

use crate::os::path_text::escape;

/// Which machine, and which boot of it, facts are read or judged on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Its machine id ([`crate::os::machine_id::current`]).
    pub machine: Option<String>,
    /// Its boot id ([`crate::os::machine_id::boot`]).
    pub boot: Option<String>,
}

impl Host {
    /// This machine, now.
    pub fn current() -> Host {
        Host {
            machine: crate::os::machine_id::current(),
            boot: crate::os::machine_id::boot(),
        }
    }
}

/// How long a watcher reuses the facts it read: mounts change rarely, plans are made often.
const FRESH: Duration = Duration::from_secs(5);

/// Longest a plan waits for the first facts of its folders; after that it goes without (a
/// worker then judges the folders as older releases did) while the read goes on.
const WAIT: Duration = Duration::from_secs(2);

/// The mount a folder is on, on the watcher.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountFact {
    /// The folder as the plan names it (a root's or an output folder's path), escaped text.
    pub path: String,
    /// The point of the mount that holds it (symbolic links resolved), escaped text.
    pub mount_point: String,
    /// How many folders below the mount point it lies (0: it is the mount point), counting
    /// those not made yet.
    pub depth: u32,
    /// The mount's file-system type (`nfs4`, `fuse.bindfs`, `ext4`).
    pub fs_type: String,
    /// What is mounted (`server:/export/shots`, `/dev/sdb1`), escaped text.
    pub source: String,
    /// The folder of that file system the mount shows (`/` for all of it, a bind mount's
    /// folder otherwise), escaped text; none in plans of older watchers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The watcher's machine id ([`crate::os::machine_id`]); none in plans of older watchers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The mount's device, `major:minor`: machines cloned from one image share machine ids and
    /// device names, not always device numbers; none in plans of older watchers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// The watcher's boot id ([`crate::os::machine_id::boot`]): an anonymous device's number
    /// (major 0: tmpfs, overlay) means something only within one boot of one kernel; none in
    /// plans of older watchers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
}

/// A device number as mount facts write it.
pub(super) fn dev_text((major, minor): (u64, u64)) -> String {
    format!("{major}:{minor}")
}

/// What a watcher read of the mounts of the folders its plans name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatcherMounts {
    /// One fact per folder whose mount was found.
    pub facts: Vec<MountFact>,
    /// Whether one of the folders is empty: a worker of before mount facts would take it for
    /// an unmounted mount point and decline its jobs until they fail.
    pub any_empty: bool,
}

impl WatcherMounts {
    /// The facts of `folders`, from `table`, on machine `host`; folders without a mount found
    /// get none.
    pub fn gather(folders: &[PathBuf], table: &MountTable, host: &Host) -> WatcherMounts {
        let facts = folders
            .iter()
            .filter_map(|folder| {
                let (canonical, missing) = resolved(folder);
                let mount = table.containing(&canonical)?;
                Some(MountFact {
                    path: escape(folder),
                    mount_point: escape(&mount.point),
                    depth: depth_under(&canonical, &mount.point) + missing,
                    fs_type: mount.fs_type.clone(),
                    source: escape(Path::new(&mount.source)),
                    root: Some(escape(&mount.root)),
                    machine: host.machine.clone(),
                    dev: Some(dev_text(mount.dev)),
                    boot: host.boot.clone(),
                })
            })
            .collect();
        let any_empty = folders.iter().any(|folder| {
            std::fs::read_dir(folder).is_ok_and(|mut entries| entries.next().is_none())
        });
        WatcherMounts { facts, any_empty }
    }

    /// The facts of `folders` on this machine, from its mount table (none when unreadable).
    fn read(folders: &[PathBuf]) -> WatcherMounts {
        match MountTable::read() {
            Ok(table) => WatcherMounts::gather(folders, &table, &Host::current()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read /proc/self/mountinfo: plans carry no mount facts, and workers judge this node's folders as older releases did");
                WatcherMounts::default()
            }
        }
    }
}

/// A watcher's [`WatcherMounts`] for its current folders, read again, on a thread of its own,
/// when older than `FRESH` or when the folders changed (a reload).
#[derive(Debug, Default)]
pub struct MountCache {
    shared: Arc<(Mutex<State>, Condvar)>,
}

#[derive(Debug, Default)]
struct State {
    /// The last facts read.
    last: Option<Read>,
    /// The read under way, if any: of which folders, since when.
    running: Option<(Vec<PathBuf>, Instant)>,
    /// Whether a plan already went without facts because the read under way is slow.
    warned: bool,
}

/// Facts read, of which folders, when.
#[derive(Debug)]
struct Read {
    at: Instant,
    folders: Vec<PathBuf>,
    mounts: Arc<WatcherMounts>,
}

impl MountCache {
    /// The facts of `folders`: the last read of them (starting a new read when it is stale),
    /// waiting for a first read at most `WAIT`, else none.
    pub fn get(&self, folders: &[PathBuf]) -> Arc<WatcherMounts> {
        let (lock, changed) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let known = state.last.as_ref().filter(|read| read.folders == folders);
            if let Some(read) = known
                && read.at.elapsed() < FRESH
            {
                return Arc::clone(&read.mounts);
            }
            if state.running.is_none() {
                self.start(&mut state, folders);
            }
            // Stale facts of these folders serve while the new read runs.
            if let Some(read) = state.last.as_ref().filter(|read| read.folders == folders) {
                return Arc::clone(&read.mounts);
            }
            let Some(left) = state
                .running
                .as_ref()
                .and_then(|(_, since)| WAIT.checked_sub(since.elapsed()))
            else {
                break;
            };
            state = changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if !state.warned {
            state.warned = true;
            let names: Vec<String> = folders.iter().map(|f| f.display().to_string()).collect();
            tracing::warn!(
                folders = %names.join(", "),
                "reading the mounts of the watch roots and output folders takes longer than {} (a hung network share?): plans go without mount facts until it ends, and workers judge their folders as older releases did",
                humantime::format_duration(WAIT)
            );
        }
        Arc::new(WatcherMounts::default())
    }

    /// Starts reading the facts of `folders` on a thread of its own.
    fn start(&self, state: &mut MutexGuard<'_, State>, folders: &[PathBuf]) {
        let shared = Arc::clone(&self.shared);
        let wanted = folders.to_vec();
        let spawned = std::thread::Builder::new()
            .name("mount-facts".into())
            .spawn(move || {
                let mounts = Arc::new(WatcherMounts::read(&wanted));
                let (lock, changed) = &*shared;
                let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
                state.last = Some(Read {
                    at: Instant::now(),
                    folders: wanted,
                    mounts,
                });
                state.running = None;
                state.warned = false;
                changed.notify_all();
            });
        match spawned {
            Ok(_) => state.running = Some((folders.to_vec(), Instant::now())),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a thread to read mount facts: plans go without them");
            }
        }
    }
}

/// The folder with its symbolic links resolved, through its nearest existing ancestor, and how
/// many of its last components do not exist yet.
pub(super) fn resolved(folder: &Path) -> (PathBuf, u32) {
    let mut missing = 0;
    let mut at = folder;
    loop {
        if let Ok(canonical) = at.canonicalize() {
            return (canonical, missing);
        }
        match at.parent() {
            Some(parent) => {
                at = parent;
                missing += 1;
            }
            None => return (folder.to_path_buf(), 0),
        }
    }
}

/// How many folders `path` lies below mount point `point`.
pub(super) fn depth_under(path: &Path, point: &Path) -> u32 {
    path.strip_prefix(point)
        .map_or(0, |rest| rest.components().count() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_name_the_mount_and_the_depth_of_folders_not_made_yet() {
        let table = MountTable::parse(b"27 1 254:0 /vol / rw - ext4 /dev/vda rw\n");
        let dir = tempfile::tempdir().expect("dir");
        let canonical = dir.path().canonicalize().expect("canonical");
        let later = dir.path().join("a/b");
        let mounts = WatcherMounts::gather(
            &[dir.path().to_path_buf(), later],
            &table,
            &Host {
                machine: Some("machine:m1".into()),
                boot: Some("b1".into()),
            },
        );
        let depth = canonical.components().count() as u32 - 1;
        assert_eq!(
            mounts.facts.iter().map(|f| f.depth).collect::<Vec<_>>(),
            [depth, depth + 2]
        );
        assert_eq!(mounts.facts[0].mount_point, "/");
        assert_eq!(mounts.facts[0].fs_type, "ext4");
        assert_eq!(mounts.facts[0].root.as_deref(), Some("/vol"));
        assert_eq!(mounts.facts[1].machine.as_deref(), Some("machine:m1"));
        assert_eq!(mounts.facts[1].dev.as_deref(), Some("254:0"));
        assert_eq!(mounts.facts[1].boot.as_deref(), Some("b1"));
        assert!(mounts.any_empty, "the temp folder is empty");
    }

    #[test]
    fn a_plan_never_waits_on_a_slow_read_longer_than_the_limit() {
        let cache = MountCache::default();
        let dir = tempfile::tempdir().expect("dir");
        let folders = [dir.path().to_path_buf()];
        // A read under way since long ago, that never ends (a hung share).
        cache.shared.0.lock().expect("lock").running =
            Some((folders.to_vec(), Instant::now() - WAIT));
        let began = Instant::now();
        assert!(cache.get(&folders).facts.is_empty(), "no facts yet");
        assert!(began.elapsed() < WAIT, "did not wait for the hung read");
        // Once it ends, its facts serve.
        cache.shared.0.lock().expect("lock").running = None;
        let mounts = cache.get(&folders);
        assert_eq!(mounts.facts.len(), 1, "{mounts:?}");
        assert!(
            Arc::ptr_eq(&mounts, &cache.get(&folders)),
            "reused while fresh"
        );
    }
}
