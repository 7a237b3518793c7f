//! Whether a worker may use a watcher's folder at the watcher's own path. The watcher records,
//! in each job's plan, the mount each of its roots and output folders is on (the mount's
//! point, type and source, and how deep under it the folder lies); a worker uses the same path
//! only where its own mount table shows the same kind of mount at least as deep. Emptiness
//! proves nothing (a new show's delivery folder is empty), so it is never asked, except of
//! plans from older watchers, which carry no facts. `--map` entries are taken as given.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::os::fs_kind::is_remote_type;
use crate::os::mountinfo::{Mount, MountTable};

use super::plan::{escape, unescape};

/// How long a watcher reuses the facts it read: mounts change rarely, plans are made often.
const FRESH: Duration = Duration::from_secs(5);

/// The mount a folder is on, on the watcher.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountFact {
    /// The folder as the plan names it (a root's or an output folder's path), escaped text.
    pub path: String,
    /// The point of the mount that holds it (symbolic links resolved), escaped text.
    pub mount_point: String,
    /// How many folders below the mount point it lies (0: it is the mount point).
    pub depth: u32,
    /// The mount's file-system type (`nfs4`, `fuse.bindfs`, `ext4`).
    pub fs_type: String,
    /// What is mounted (`server:/export/shots`, `/dev/sdb1`), escaped text.
    pub source: String,
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
    /// The facts of `folders`, from `table`; folders without a mount found get none.
    pub fn gather(folders: &[PathBuf], table: &MountTable) -> WatcherMounts {
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
                })
            })
            .collect();
        let any_empty = folders.iter().any(|folder| {
            std::fs::read_dir(folder).is_ok_and(|mut entries| entries.next().is_none())
        });
        WatcherMounts { facts, any_empty }
    }
}

/// A watcher's [`WatcherMounts`] for its current folders, read again when older than
/// `FRESH` or when the folders changed (a reload).
#[derive(Debug, Default)]
pub struct MountCache {
    last: Mutex<Option<Read>>,
}

/// Facts read, of which folders, when.
#[derive(Debug)]
struct Read {
    at: Instant,
    folders: Vec<PathBuf>,
    mounts: Arc<WatcherMounts>,
}

impl MountCache {
    /// The facts of `folders`, fresh enough; none when this machine's mount table cannot be read.
    pub fn get(&self, folders: &[PathBuf]) -> Arc<WatcherMounts> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(read) = last.as_ref()
            && read.at.elapsed() < FRESH
            && read.folders == folders
        {
            return Arc::clone(&read.mounts);
        }
        let mounts = Arc::new(match MountTable::read() {
            Ok(table) => WatcherMounts::gather(folders, &table),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read /proc/self/mountinfo: plans carry no mount facts, and workers judge this node's folders as older releases did");
                WatcherMounts::default()
            }
        });
        *last = Some(Read {
            at: Instant::now(),
            folders: folders.to_vec(),
            mounts: Arc::clone(&mounts),
        });
        mounts
    }
}

/// Why a worker cannot use a watcher's folder at the watcher's own path.
#[derive(Debug)]
pub enum Unmapped {
    /// No such folder here.
    Missing {
        /// The folder.
        path: PathBuf,
    },
    /// This worker's mount table cannot be read.
    NoTable {
        /// Why (shared: one read serves every folder of a job).
        source: Arc<std::io::Error>,
    },
    /// The folder is here on another kind of mount than on the watcher, or on a shallower
    /// one: the watcher's file system is not mounted here.
    OtherMount {
        /// The folder.
        path: PathBuf,
        /// Its mount on the watcher.
        there: Box<MountFact>,
        /// Its mount here.
        here: Box<Mount>,
    },
    /// A plan without mount facts (from an older watcher) names a folder that is empty here,
    /// which such a plan takes for an unmounted mount point.
    Empty {
        /// The folder.
        path: PathBuf,
    },
}

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unmapped::Missing { path } => {
                write!(f, "`{}` does not exist on this worker", path.display())
            }
            Unmapped::NoTable { source } => write!(
                f,
                "cannot read this worker's mount table `/proc/self/mountinfo`: {source}"
            ),
            Unmapped::OtherMount { path, there, here } => write!(
                f,
                "`{}` is on {} `{}` mounted at `{}` on the watcher, but here on {} `{}` mounted at `{}`: that file system is not mounted here",
                path.display(),
                there.fs_type,
                unescape(&there.source).display(),
                unescape(&there.mount_point).display(),
                here.fs_type,
                Path::new(&here.source).display(),
                here.point.display(),
            ),
            Unmapped::Empty { path } => write!(
                f,
                "`{}` is empty on this worker, and the job's plan (from a watcher older than mount facts) takes that for an unmounted mount point",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Unmapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Unmapped::NoTable { source } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Whether this worker may use the watcher's folder `watcher` at the same path: it exists here,
/// and the mount that holds it is the kind the watcher's `fact` describes:
/// - a network or FUSE mount here (a share) at least as deep as the watcher's mount, whatever
///   the watcher's (a file server's own disk is reached over the network elsewhere);
/// - the same local file system (type and source) as deep as on the watcher: the same machine.
///
/// Anything else, the bare root file system under a folder where the watcher has a mount
/// first, means the watcher's file system is not mounted here. Without a fact (a plan of an
/// older watcher) the folder must not be empty, as before.
///
/// # Errors
/// Why the folder cannot be used.
pub fn check(
    watcher: &Path,
    fact: Option<&MountFact>,
    table: &Result<MountTable, Arc<std::io::Error>>,
) -> Result<(), Unmapped> {
    let missing = || Unmapped::Missing {
        path: watcher.to_path_buf(),
    };
    let Some(fact) = fact else {
        let mut entries = std::fs::read_dir(watcher).map_err(|_| missing())?;
        return match entries.next() {
            Some(_) => Ok(()),
            None => Err(Unmapped::Empty {
                path: watcher.to_path_buf(),
            }),
        };
    };
    let canonical = watcher
        .canonicalize()
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(missing)?;
    let table = table.as_ref().map_err(|e| Unmapped::NoTable {
        source: Arc::clone(e),
    })?;
    let here = table.containing(&canonical).ok_or_else(missing)?;
    let depth = depth_under(&canonical, &here.point);
    let share_here = is_remote_type(&here.fs_type);
    let same_local = !is_remote_type(&fact.fs_type)
        && here.fs_type == fact.fs_type
        && Path::new(&here.source) == unescape(&fact.source)
        && depth == fact.depth;
    if (share_here && depth <= fact.depth) || same_local {
        return Ok(());
    }
    // A file server's own disk, reached here through a share mounted higher up.
    if share_here && !is_remote_type(&fact.fs_type) {
        return Ok(());
    }
    Err(Unmapped::OtherMount {
        path: watcher.to_path_buf(),
        there: Box::new(fact.clone()),
        here: Box::new(here.clone()),
    })
}

/// The folder with its symbolic links resolved, through its nearest existing ancestor, and how
/// many of its last components do not exist yet.
fn resolved(folder: &Path) -> (PathBuf, u32) {
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

fn depth_under(path: &Path, point: &Path) -> u32 {
    path.strip_prefix(point)
        .map_or(0, |rest| rest.components().count() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(path: &str, point: &str, depth: u32, fs_type: &str, source: &str) -> MountFact {
        MountFact {
            path: path.into(),
            mount_point: point.into(),
            depth,
            fs_type: fs_type.into(),
            source: source.into(),
        }
    }

    #[test]
    fn a_folder_is_used_where_the_same_kind_of_mount_holds_it() {
        let dir = tempfile::tempdir().expect("dir");
        let folder = dir.path().join("san");
        std::fs::create_dir(&folder).expect("folder");
        let canonical = folder.canonicalize().expect("canonical");
        let table = MountTable::read().map_err(Arc::new);
        let here = table
            .as_ref()
            .expect("mountinfo")
            .containing(&canonical)
            .expect("a mount")
            .clone();
        let depth = depth_under(&canonical, &here.point);
        let text = folder.display().to_string();
        let point = here.point.display().to_string();
        let source = escape(Path::new(&here.source));
        let ok = |f: &MountFact| check(&folder, Some(f), &table).is_ok();

        // The same machine: the same mount, an empty folder included.
        assert!(ok(&fact(&text, &point, depth, &here.fs_type, &source)));
        // The watcher had it on a share (or its own disk) mounted deeper: not mounted here.
        assert!(!ok(&fact(
            &text,
            &canonical.display().to_string(),
            0,
            "nfs4",
            "srv:/san"
        )));
        assert!(!ok(&fact(
            &text,
            &canonical.display().to_string(),
            0,
            "tmpfs",
            "tmpfs"
        )));
        // Another local disk of the same type.
        assert!(!ok(&fact(
            &text,
            &point,
            depth,
            &here.fs_type,
            "/dev/other"
        )));
        let err = check(
            &folder,
            Some(&fact(&text, &text, 0, "nfs4", "srv:/san")),
            &table,
        )
        .expect_err("declined");
        assert!(
            err.to_string().contains(&format!(
                "is on nfs4 `srv:/san` mounted at `{text}` on the watcher, but here on {}",
                here.fs_type
            )),
            "{err}"
        );
        // Missing here, whatever the facts.
        let gone = dir.path().join("gone");
        assert!(matches!(
            check(
                &gone,
                Some(&fact(&text, &point, depth, &here.fs_type, &source)),
                &table
            ),
            Err(Unmapped::Missing { .. })
        ));
        // A plan without facts keeps the old rule: an empty folder is not used.
        assert!(matches!(
            check(&folder, None, &table),
            Err(Unmapped::Empty { .. })
        ));
        std::fs::write(folder.join("x"), b"x").expect("file");
        assert!(check(&folder, None, &table).is_ok());
    }

    #[test]
    fn a_share_here_at_least_as_deep_holds_the_watchers_folder() {
        let table = MountTable::parse(
            b"27 1 254:0 / / rw - ext4 /dev/vda rw\n40 27 0:60 / / rw - nfs4 srv:/ rw\n",
        );
        // Stacked on `/`: the share is on top; any folder here is on it.
        let dir = tempfile::tempdir().expect("dir");
        let table = Ok(table);
        let text = dir.path().display().to_string();
        for (there, ok) in [
            (fact(&text, "/mnt", 5, "nfs", "srv:/"), true),
            (fact(&text, "/srv", 9, "xfs", "/dev/sdb"), true),
            (fact(&text, "/", 0, "cifs", "//nas/x"), false),
        ] {
            let mut there = there;
            if !ok {
                there.mount_point = text.clone();
            }
            assert_eq!(
                check(dir.path(), Some(&there), &table).is_ok(),
                ok,
                "{there:?}"
            );
        }
    }

    #[test]
    fn facts_name_the_mount_and_the_depth_of_folders_not_made_yet() {
        let table = MountTable::parse(b"27 1 254:0 / / rw - ext4 /dev/vda rw\n");
        let dir = tempfile::tempdir().expect("dir");
        let canonical = dir.path().canonicalize().expect("canonical");
        let later = dir.path().join("a/b");
        let mounts = WatcherMounts::gather(&[dir.path().to_path_buf(), later], &table);
        let depth = canonical.components().count() as u32 - 1;
        assert_eq!(
            mounts.facts.iter().map(|f| f.depth).collect::<Vec<_>>(),
            [depth, depth + 2]
        );
        assert_eq!(mounts.facts[0].mount_point, "/");
        assert_eq!(mounts.facts[0].fs_type, "ext4");
        assert!(mounts.any_empty, "the temp folder is empty");
    }
}
