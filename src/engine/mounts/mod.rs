//! Whether a worker may use a watcher's folder at the watcher's own path. The watcher records,
//! in each job's plan, the mount each of its roots and output folders is on
//! (`facts`); a worker uses the same path only where its own mount table shows
//! that mount, or a share at least as deep. Emptiness proves nothing (a new show's delivery
//! folder is empty), so it is never asked, except of plans from older watchers, which carry
//! no facts. `--map` entries are taken as given. When in doubt, the folder is declined, with
//! a reason, and a `--map` settles it.

use std::ffi::OsStr;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::os::fs_kind::is_remote_type;
use crate::os::mountinfo::{Mount, MountTable};

mod facts;

use crate::os::path_text::unescape;
pub use facts::{Host, MountCache, MountFact, WatcherMounts};
use facts::{depth_under, dev_text, resolved};

/// This worker's side: its mount table, read after the folders asked about were opened, and
/// its machine's and boot's ids.
#[derive(Debug)]
pub struct LocalMounts {
    table: Result<MountTable, Arc<std::io::Error>>,
    host: Host,
}

impl LocalMounts {
    /// Opens each of `folders` (its nearest existing ancestor), which mounts an automounted
    /// share (autofs, systemd automount) there, and then reads the mount table: read first,
    /// it would show the automount trigger, not the share.
    pub fn read<'a>(folders: impl IntoIterator<Item = &'a Path>) -> LocalMounts {
        for folder in folders {
            touch(&resolved(folder).0);
        }
        LocalMounts {
            table: MountTable::read().map_err(Arc::new),
            host: Host::current(),
        }
    }
}

/// Opens a folder without listing it: enough to trigger an automount.
fn touch(folder: &Path) {
    drop(std::fs::read_dir(folder));
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
    /// The mount that holds the folder here is not, or may not be, the watcher's.
    OtherMount {
        /// The folder.
        path: PathBuf,
        /// Its mount on the watcher.
        there: Box<MountFact>,
        /// Its mount here.
        here: Box<Mount>,
        /// What differs.
        why: Mismatch,
    },
    /// A plan without mount facts (from an older watcher) names a folder that is empty here,
    /// which such a plan takes for an unmounted mount point.
    Empty {
        /// The folder.
        path: PathBuf,
    },
}

/// What tells a mount here from the watcher's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Another kind of mount, another device, or the same one at another depth.
    NotMounted,
    /// A local disk, and this worker is another machine than the watcher.
    OtherMachine,
    /// A local file system of the same name, but another device (machines cloned from one
    /// image share machine ids and device names).
    OtherDevice {
        /// Its device here, `major:minor`.
        here: String,
        /// On the watcher.
        there: String,
    },
    /// A file system without a disk (tmpfs, overlay: device major 0) of the same number, but
    /// another boot: such numbers are unique only within one boot of one kernel.
    OtherBoot,
    /// The same device, but another of its folders mounted (bind mounts, container volumes).
    OtherFolder {
        /// Its folder mounted on the watcher.
        there: PathBuf,
    },
    /// A share here, mounted higher up than the watcher's mount: it may merely hold an empty
    /// folder where the watcher's file system is mounted.
    Higher {
        /// How deep the folder lies under it.
        depth: u32,
        /// How deep under the watcher's mount.
        there: u32,
    },
    /// The watcher's folder is on its local disk, and the share here is this worker's root
    /// file system (a diskless node): not the watcher's disk.
    RootShare,
    /// Shares on both, but of other servers or other exported folders.
    OtherShare {
        /// The folder as the share here serves it (server, path).
        here: String,
        /// As the watcher's share serves it.
        there: String,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::NotMounted => write!(f, "that file system is not mounted here"),
            Mismatch::OtherMachine => write!(
                f,
                "that is a local disk of the watcher's machine, and this worker is another machine (their machine ids differ)"
            ),
            Mismatch::OtherDevice { here, there } => write!(
                f,
                "its device here is {here}, on the watcher {there}: another disk (or a machine cloned from the watcher's image)"
            ),
            Mismatch::OtherBoot => write!(
                f,
                "that file system has no disk (tmpfs, overlay) and this worker runs under another kernel boot than the watcher (their boot ids differ, or one is unknown): another machine or container host"
            ),
            Mismatch::OtherFolder { there } => write!(
                f,
                "another folder of that file system is mounted here (the watcher mounts its `{}`)",
                there.display()
            ),
            Mismatch::Higher { depth, there } => write!(
                f,
                "the share here is mounted higher up than the watcher's mount (the folder lies at depth {depth} under it here, {there} on the watcher): it may only hold the bare folder the watcher's file system is mounted on"
            ),
            Mismatch::RootShare => write!(
                f,
                "the share here is this worker's root file system, not the watcher's disk"
            ),
            Mismatch::OtherShare { here, there } => write!(
                f,
                "the share here serves `{here}`, the watcher's `{there}`: another export"
            ),
        }
    }
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
            Unmapped::OtherMount {
                path,
                there,
                here,
                why,
            } => write!(
                f,
                "`{}` is on {} `{}` mounted at `{}` on the watcher, but here on {} `{}` mounted at `{}`: {why}",
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

/// Whether this worker may use the watcher's folder `watcher` at the same path: the mount that
/// holds it here (or holds its nearest existing ancestor: a folder not made yet is made by the
/// job) is the one the watcher's `fact` describes, as `judge` decides. Without a fact (a
/// plan of an older watcher) the folder must exist and not be empty, as before.
///
/// # Errors
/// Why the folder cannot be used.
pub fn check(
    watcher: &Path,
    fact: Option<&MountFact>,
    local: &LocalMounts,
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
    let table = local.table.as_ref().map_err(|e| Unmapped::NoTable {
        source: Arc::clone(e),
    })?;
    let (canonical, absent) = resolved(watcher);
    let mut here = table.containing(&canonical).ok_or_else(missing)?.clone();
    if here.fs_type == "autofs" {
        // Still the trigger: the share may have been mounted since the table was read.
        touch(&canonical);
        if let Some(mounted) = MountTable::read()
            .ok()
            .and_then(|t| t.containing(&canonical).cloned())
        {
            here = mounted;
        }
    }
    let depth = depth_under(&canonical, &here.point) + absent;
    let mut folder = canonical;
    folder.extend(
        watcher
            .components()
            .skip(watcher.components().count() - absent as usize),
    );
    judge(fact, &here, &folder, depth, &local.host).map_err(|why| Unmapped::OtherMount {
        path: watcher.to_path_buf(),
        there: Box::new(fact.clone()),
        here: Box::new(here),
        why,
    })
}

/// Whether mount `here`, holding `folder` `depth` folders below its point on this worker
/// (`host`), is the watcher's mount `fact` describes:
/// - a local file system on both: the same machine (when the plan names the watcher's), the
///   same device (when the plan names it) and, for one without a disk (major 0: tmpfs,
///   overlay), the same boot, the same type, source and mounted folder, at the same depth;
/// - a share here, at least as deep as the watcher's mount: of the same server and exported
///   folder where the watcher's is a share too; where the watcher's is its own disk (a file
///   server's), any share but this worker's root file system.
///
/// # Errors
/// What differs.
pub(super) fn judge(
    fact: &MountFact,
    here: &Mount,
    folder: &Path,
    depth: u32,
    host: &Host,
) -> Result<(), Mismatch> {
    let share_there = is_remote_type(&fact.fs_type);
    let share_here = is_remote_type(&here.fs_type);
    let root_there = fact.root.as_deref().map(unescape);
    if !share_here {
        if share_there {
            return Err(Mismatch::NotMounted);
        }
        if fact.machine.is_some() && fact.machine != host.machine {
            return Err(Mismatch::OtherMachine);
        }
        if here.fs_type != fact.fs_type
            || Path::new(&here.source) != unescape(&fact.source)
            || depth != fact.depth
        {
            return Err(Mismatch::NotMounted);
        }
        if let Some(there) = &fact.dev {
            let dev = dev_text(here.dev);
            if *there != dev {
                return Err(Mismatch::OtherDevice {
                    here: dev,
                    there: there.clone(),
                });
            }
            if here.dev.0 == 0 && (fact.boot.is_none() || fact.boot != host.boot) {
                return Err(Mismatch::OtherBoot);
            }
        }
        return match root_there {
            Some(there) if there != here.root => Err(Mismatch::OtherFolder { there }),
            _ => Ok(()),
        };
    }
    if depth > fact.depth {
        return Err(Mismatch::Higher {
            depth,
            there: fact.depth,
        });
    }
    if !share_there {
        return if here.point == Path::new("/") {
            Err(Mismatch::RootShare)
        } else {
            Ok(())
        };
    }
    let serves = |fs_type: &str, source: &Path, root: &Path, below: u32| {
        let (server, path) = share_of(source);
        let mut served = PathBuf::from("/");
        served.extend(
            path.components()
                .filter(|c| matches!(c, Component::Normal(_))),
        );
        // NFS names the mounted folder itself in the source (`srv:/export/sub` for a bind
        // mount of `sub`); other sources name the share, and the root the folder in it.
        if !matches!(fs_type, "nfs" | "nfs4") {
            served.extend(
                root.components()
                    .filter(|c| matches!(c, Component::Normal(_))),
            );
        }
        let n = folder.components().count();
        served.extend(folder.components().skip(n.saturating_sub(below as usize)));
        (server, served)
    };
    let (server_here, path_here) =
        serves(&here.fs_type, Path::new(&here.source), &here.root, depth);
    let (server_there, path_there) = serves(
        &fact.fs_type,
        &unescape(&fact.source),
        root_there.as_deref().unwrap_or(Path::new("/")),
        fact.depth,
    );
    let same_server = match (&server_here, &server_there) {
        (Some(a), Some(b)) => same_host(a, b),
        (a, b) => a == b,
    };
    if same_server && path_here == path_there {
        return Ok(());
    }
    let show = |server: &Option<String>, path: &Path| match server {
        Some(server) => format!("{server}:{}", path.display()),
        None => path.display().to_string(),
    };
    Err(Mismatch::OtherShare {
        here: show(&server_here, &path_here),
        there: show(&server_there, &path_there),
    })
}

/// A share's server and exported folder, from its mount's source: `srv:/export/x` (NFS,
/// sshfs, Ceph, Lustre), `//srv/share/x` (SMB); a source of neither form is all folder.
fn share_of(source: &Path) -> (Option<String>, PathBuf) {
    let bytes = source.as_os_str().as_bytes();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if let Some(rest) = bytes.strip_prefix(b"//") {
        let cut = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        let path = PathBuf::from(OsStr::from_bytes(&rest[cut..]));
        return (Some(text(&rest[..cut])), path);
    }
    match bytes.windows(2).position(|w| w == b":/") {
        Some(cut) => (
            Some(text(&bytes[..cut])),
            PathBuf::from(OsStr::from_bytes(&bytes[cut + 1..])),
        ),
        None => (None, source.to_path_buf()),
    }
}

/// Whether two names of servers name the same one: the same name (in any case), or a short
/// name and a full one that starts with it (`srv1`, `srv1.studio.lan`). Two full names must
/// match whole: `nas01.site-a.lan` is not `nas01.site-b.lan`. Addresses only as written.
fn same_host(a: &str, b: &str) -> bool {
    let address = |h: &str| h.starts_with('[') || h.parse::<IpAddr>().is_ok();
    let short = |h: &str| h.split('.').next().unwrap_or(h).to_ascii_lowercase();
    a.eq_ignore_ascii_case(b)
        || (!address(a)
            && !address(b)
            && (!a.contains('.') || !b.contains('.'))
            && short(a) == short(b))
}

#[cfg(test)]
mod tests;
