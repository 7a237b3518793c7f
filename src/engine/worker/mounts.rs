//! Whether a worker may use a watcher's folder at the watcher's own path. The watcher records,
//! in each job's plan, the mount each of its roots and output folders is on
//! ([`super::mount_facts`]); a worker uses the same path only where its own mount table shows
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

pub use super::mount_facts::{MountCache, MountFact, WatcherMounts};
use super::mount_facts::{depth_under, resolved};
use super::plan::unescape;

/// This worker's side: its mount table, read after the folders asked about were opened, and
/// its machine's id.
#[derive(Debug)]
pub struct LocalMounts {
    table: Result<MountTable, Arc<std::io::Error>>,
    machine: Option<String>,
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
            machine: crate::os::machine_id::current(),
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
/// job) is the one the watcher's `fact` describes, as [`judge`] decides. Without a fact (a
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
    judge(fact, &here, &folder, depth, local.machine.as_deref()).map_err(|why| {
        Unmapped::OtherMount {
            path: watcher.to_path_buf(),
            there: Box::new(fact.clone()),
            here: Box::new(here),
            why,
        }
    })
}

/// Whether mount `here`, holding `folder` `depth` folders below its point on this worker
/// (machine `machine`), is the watcher's mount `fact` describes:
/// - a local file system on both: the same machine (when the plan names the watcher's), the
///   same type, source and mounted folder, at the same depth;
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
    machine: Option<&str>,
) -> Result<(), Mismatch> {
    let share_there = is_remote_type(&fact.fs_type);
    let share_here = is_remote_type(&here.fs_type);
    let root_there = fact.root.as_deref().map(unescape);
    if !share_here {
        if share_there {
            return Err(Mismatch::NotMounted);
        }
        if fact.machine.is_some() && fact.machine.as_deref() != machine {
            return Err(Mismatch::OtherMachine);
        }
        if here.fs_type != fact.fs_type
            || Path::new(&here.source) != unescape(&fact.source)
            || depth != fact.depth
        {
            return Err(Mismatch::NotMounted);
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
    let serves = |source: &Path, root: &Path, below: u32| {
        let (server, path) = share_of(source);
        let mut served = PathBuf::from("/");
        served.extend(
            path.components()
                .filter(|c| matches!(c, Component::Normal(_))),
        );
        served.extend(
            root.components()
                .filter(|c| matches!(c, Component::Normal(_))),
        );
        let n = folder.components().count();
        served.extend(folder.components().skip(n.saturating_sub(below as usize)));
        (server, served)
    };
    let (server_here, path_here) = serves(Path::new(&here.source), &here.root, depth);
    let (server_there, path_there) = serves(
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

/// Whether two names of servers name the same one: the same name, or the same short name
/// (`srv1`, `srv1.studio.lan`); addresses only as written.
fn same_host(a: &str, b: &str) -> bool {
    let address = |h: &str| h.starts_with('[') || h.parse::<IpAddr>().is_ok();
    let short = |h: &str| h.split('.').next().unwrap_or(h).to_ascii_lowercase();
    a.eq_ignore_ascii_case(b) || (!address(a) && !address(b) && short(a) == short(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::worker::plan::escape;

    fn fact(path: &str, point: &str, depth: u32, fs_type: &str, source: &str) -> MountFact {
        MountFact {
            path: path.into(),
            mount_point: point.into(),
            depth,
            fs_type: fs_type.into(),
            source: source.into(),
            root: None,
            machine: None,
        }
    }

    /// The fact as this release's watcher writes it: with its mounted folder and machine.
    fn on(mut fact: MountFact, root: &str, machine: &str) -> MountFact {
        fact.root = Some(root.into());
        fact.machine = Some(machine.into());
        fact
    }

    /// One mount of a constructed table.
    fn mount(root: &str, point: &str, fs_type: &str, source: &str) -> Mount {
        let line = format!("40 1 0:60 {root} {point} rw - {fs_type} {source} rw\n");
        MountTable::parse(line.as_bytes()).mounts.remove(0)
    }

    /// [`judge`] of folder `/srv/shows/x`, `depth` below mount `here`, on machine `m1`.
    fn judged(there: &MountFact, here: &Mount, depth: u32) -> Result<(), Mismatch> {
        judge(
            there,
            here,
            Path::new("/srv/shows/x"),
            depth,
            Some("machine:m1"),
        )
    }

    #[test]
    fn a_folder_is_used_where_the_same_kind_of_mount_holds_it() {
        let dir = tempfile::tempdir().expect("dir");
        let folder = dir.path().join("san");
        std::fs::create_dir(&folder).expect("folder");
        let canonical = folder.canonicalize().expect("canonical");
        let local = LocalMounts::read([folder.as_path()]);
        let here = local
            .table
            .as_ref()
            .expect("mountinfo")
            .containing(&canonical)
            .expect("a mount")
            .clone();
        let depth = depth_under(&canonical, &here.point);
        let text = folder.display().to_string();
        let point = here.point.display().to_string();
        let source = escape(Path::new(&here.source));
        let root = escape(&here.root);
        let machine = local.machine.clone().expect("machine id");
        let ok = |f: &MountFact| check(&folder, Some(f), &local).is_ok();
        let same = fact(&text, &point, depth, &here.fs_type, &source);

        // The same machine: the same mount, an empty folder included.
        assert!(ok(&same));
        assert!(ok(&on(same.clone(), &root, &machine)));
        // The watcher had it on a share (or its own disk) mounted deeper: not mounted here.
        let deeper = canonical.display().to_string();
        assert!(!ok(&fact(&text, &deeper, 0, "nfs4", "srv:/san")));
        assert!(!ok(&fact(&text, &deeper, 0, "tmpfs", "tmpfs")));
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
            &local,
        )
        .expect_err("declined");
        assert!(
            err.to_string().contains(&format!(
                "is on nfs4 `srv:/san` mounted at `{text}` on the watcher, but here on {}",
                here.fs_type
            )),
            "{err}"
        );
        // A folder not made yet, here as on the watcher: the job makes it.
        let later = dir.path().join("new show/delivery");
        let text = later.display().to_string();
        let later_fact = fact(&text, &point, depth + 1, &here.fs_type, &source);
        assert!(check(&later, Some(&later_fact), &local).is_ok());
        let shallower = fact(&text, &point, depth, &here.fs_type, &source);
        assert!(check(&later, Some(&shallower), &local).is_err());
        // A plan without facts keeps the old rule: an empty folder is not used, nor a
        // missing one.
        assert!(matches!(
            check(&folder, None, &local),
            Err(Unmapped::Empty { .. })
        ));
        assert!(matches!(
            check(&later, None, &local),
            Err(Unmapped::Missing { .. })
        ));
        std::fs::write(folder.join("x"), b"x").expect("file");
        assert!(check(&folder, None, &local).is_ok());
    }

    #[test]
    fn a_share_here_at_least_as_deep_holds_the_watchers_folder() {
        let here = mount("/", "/srv/shows", "nfs4", "srv:/export/shows");
        // The watcher's file server's own disk, or the same share.
        assert_eq!(
            judged(&fact("", "/srv", 2, "xfs", "/dev/sdb"), &here, 1),
            Ok(())
        );
        assert_eq!(
            judged(
                &fact("", "/srv/shows", 1, "nfs", "srv:/export/shows"),
                &here,
                1
            ),
            Ok(())
        );
        // The share here is the watcher's mounted deeper: the watcher's path runs through it.
        assert_eq!(
            judged(
                &fact("", "/srv", 2, "nfs4", "srv.studio.lan:/export"),
                &here,
                1
            ),
            Ok(())
        );
    }

    #[test]
    fn a_share_mounted_higher_than_the_watchers_mount_is_declined() {
        // A diskless node: its `/` is a share, and `/srv/shows` an empty folder on it where
        // the watcher mounts its delivery volume.
        let root = mount("/", "/", "nfs4", "boot:/nodes/n7");
        for there in [
            fact("", "/srv/shows", 1, "xfs", "/dev/sdb"),
            fact("", "/srv/shows", 1, "nfs4", "srv:/shows"),
        ] {
            assert_eq!(
                judged(&there, &root, 3),
                Err(Mismatch::Higher { depth: 3, there: 1 }),
                "{there:?}"
            );
        }
        // Even as deep: a share as the root file system is the node's own, not the watcher's
        // disk.
        assert_eq!(
            judged(&fact("", "/", 3, "ext4", "/dev/sda1"), &root, 3),
            Err(Mismatch::RootShare)
        );
        // An automounted `/net` share holding the folder higher up.
        let net = mount("/", "/srv", "nfs", "filer:/vol/srv");
        assert!(judged(&fact("", "/srv/shows", 1, "xfs", "/dev/sdb"), &net, 2).is_err());
        let err = Unmapped::OtherMount {
            path: "/srv/shows/x".into(),
            there: Box::new(fact("", "/srv/shows", 1, "xfs", "/dev/sdb")),
            here: Box::new(root),
            why: Mismatch::Higher { depth: 3, there: 1 },
        };
        assert!(
            err.to_string()
                .contains("at depth 3 under it here, 1 on the watcher"),
            "{err}"
        );
    }

    #[test]
    fn another_server_or_export_is_not_the_watchers_share() {
        let showa = fact("", "/srv/shows", 1, "nfs4", "srv1:/showA");
        let scratch = mount("/", "/srv/shows", "nfs4", "srv2:/scratch");
        assert_eq!(
            judged(&showa, &scratch, 1),
            Err(Mismatch::OtherShare {
                here: "srv2:/scratch/x".into(),
                there: "srv1:/showA/x".into()
            })
        );
        let other_server = mount("/", "/srv/shows", "nfs4", "srv2:/showA");
        assert!(judged(&showa, &other_server, 1).is_err());
        let other_export = mount("/", "/srv/shows", "nfs4", "srv1:/showB");
        assert!(judged(&showa, &other_export, 1).is_err());
        // The same export under the server's long name, or through SMB's form.
        assert_eq!(
            judged(
                &showa,
                &mount("/", "/srv/shows", "nfs", "SRV1.studio.lan:/showA/"),
                1
            ),
            Ok(())
        );
        let smb = fact("", "/srv/shows", 1, "cifs", "//nas/shows");
        assert_eq!(
            judged(&smb, &mount("/", "/srv/shows", "cifs", "//nas/shows"), 1),
            Ok(())
        );
        assert!(judged(&smb, &mount("/", "/srv/shows", "cifs", "//nas/other"), 1).is_err());
        // Addresses are compared as written.
        let by_address = fact("", "/srv/shows", 1, "nfs4", "10.0.0.1:/showA");
        assert!(
            judged(
                &by_address,
                &mount("/", "/srv/shows", "nfs4", "10.0.0.2:/showA"),
                1
            )
            .is_err()
        );
    }

    #[test]
    fn a_local_disk_is_the_watchers_only_on_the_watchers_machine() {
        // Cloned render nodes: the same device name on every one.
        let here = mount("/", "/", "ext4", "/dev/sda1");
        let there = on(fact("", "/", 3, "ext4", "/dev/sda1"), "/", "machine:m2");
        assert_eq!(judged(&there, &here, 3), Err(Mismatch::OtherMachine));
        let mine = on(fact("", "/", 3, "ext4", "/dev/sda1"), "/", "machine:m1");
        assert_eq!(judged(&mine, &here, 3), Ok(()));
        // A plan of an older watcher names no machine: judged as before.
        assert_eq!(
            judged(&fact("", "/", 3, "ext4", "/dev/sda1"), &here, 3),
            Ok(())
        );
        // Two containers of one machine, each with its own folder bind-mounted at `/srv`.
        let volume = mount("/data/b", "/srv", "ext4", "/dev/sda1");
        let there = on(
            fact("", "/srv", 2, "ext4", "/dev/sda1"),
            "/data/a",
            "machine:m1",
        );
        assert_eq!(
            judged(&there, &volume, 2),
            Err(Mismatch::OtherFolder {
                there: "/data/a".into()
            })
        );
        let same = on(
            fact("", "/srv", 2, "ext4", "/dev/sda1"),
            "/data/b",
            "machine:m1",
        );
        assert_eq!(judged(&same, &volume, 2), Ok(()));
    }
}
