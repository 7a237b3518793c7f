//! What kind of file system a folder is on: local ones deliver inotify events for every writer,
//! network and FUSE ones only for writes made through this machine.
//!
//! The kernel's `statfs` magic number classifies; `/proc/self/mountinfo` (matched by device
//! number) gives the name an operator knows (`nfs4`, `fuse.bindfs`, `cifs`). A file system
//! known to neither list counts as remote: polling works everywhere, while inotify on a remote
//! one fails silently, and silence is the failure that must not happen.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What [`detect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsKind {
    /// The file system's name: its mountinfo type when known (`nfs4`, `fuse.bindfs`), else
    /// the name of its magic number, else the magic number in hex.
    pub name: String,
    /// Whether writers on other machines (or in a FUSE daemon) can change it unseen by inotify.
    pub remote: bool,
    /// The `statfs` magic number, to tell later whether the same kind of file system is
    /// mounted there again.
    pub magic: u64,
}

/// Local file systems: inotify sees every write, since every write goes through this kernel.
const LOCAL: &[(u64, &str)] = &[
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x2FC1_2FC1, "zfs"),
    (0x0102_1994, "tmpfs"),
    (0x8584_58F6, "ramfs"),
    (0x794C_7630, "overlay"),
    (0xF2F5_2010, "f2fs"),
    (0x5265_4973, "reiserfs"),
    (0x3153_464A, "jfs"),
    (0xCA45_1A4E, "bcachefs"),
    (0x3434, "nilfs"),
    (0x4D44, "vfat"),
    (0x2011_BAB0, "exfat"),
    (0x5346_544E, "ntfs"),
    (0x7371_7368, "squashfs"),
    (0x9660, "iso9660"),
    (0x1CD1, "devpts"),
    (0x6265_6572, "sysfs"),
    (0x9FA0, "proc"),
];

/// Network, cluster and FUSE file systems: other machines (or a user-space daemon) write to
/// them without this kernel's inotify hearing of it.
const REMOTE: &[(u64, &str)] = &[
    (0x6969, "nfs"),
    (0x517B, "smb"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x6573_5546, "fuse"),
    (0x00C3_6400, "ceph"),
    (0x0102_1997, "9p"),
    (0x0BD0_0BD0, "lustre"),
    (0x4750_4653, "gpfs"),
    (0x5346_414F, "afs"),
    (0x6B41_4653, "afs"),
    (0x7375_7245, "coda"),
    (0x564C, "ncp"),
    (0x7461_636F, "ocfs2"),
    (0x0116_1970, "gfs2"),
    (0x1983_0326, "beegfs"),
    (0x2003_0528, "orangefs"),
    (0xAAD7_AAEA, "panfs"),
    (0x786F_4256, "vboxsf"),
];

/// mountinfo type names of remote file systems whose magic number is not in [`REMOTE`] (or is
/// shared), matched on the part before any `.` (`fuse.sshfs` → `fuse`).
const REMOTE_NAMES: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "9p",
    "lustre",
    "gpfs",
    "glusterfs",
    "afs",
    "fuse",
    "fuseblk",
    "beegfs",
    "davfs",
    "virtiofs",
];

/// The file system `dir` is on.
///
/// # Errors
/// When `dir` cannot be looked at (missing, unreachable mount).
pub fn detect(dir: &Path) -> std::io::Result<FsKind> {
    let magic = nix::sys::statfs::statfs(dir)
        .map_err(std::io::Error::from)?
        .filesystem_type()
        .0 as u32 as u64;
    let dev = std::fs::metadata(dir)?.dev();
    Ok(classify(magic, mount_type(dev).as_deref()))
}

/// Whether a `statfs` magic number is a local file system, where every write goes through
/// this kernel (so what it says of open files is the whole truth).
pub fn is_local_magic(magic: u64) -> bool {
    LOCAL.iter().any(|(m, _)| *m == magic)
}

/// Classifies a magic number, named by its mountinfo type when one is known.
fn classify(magic: u64, mount_type: Option<&str>) -> FsKind {
    let known = |table: &[(u64, &'static str)]| {
        table
            .iter()
            .find(|(m, _)| *m == magic)
            .map(|(_, name)| *name)
    };
    let remote_name = mount_type.is_some_and(|t| {
        let family = t.split('.').next().unwrap_or(t);
        REMOTE_NAMES.contains(&family)
    });
    let (fallback, remote) = match (known(REMOTE), known(LOCAL)) {
        (Some(name), _) => (name.to_string(), true),
        (None, Some(name)) => (name.to_string(), remote_name),
        (None, None) => (format!("0x{magic:x}"), true),
    };
    FsKind {
        name: mount_type.map_or(fallback, str::to_string),
        remote,
        magic,
    }
}

/// The mountinfo type of the mount whose device is `dev` (`fuse.bindfs`, `nfs4`), if listed.
fn mount_type(dev: u64) -> Option<String> {
    let want = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    super::mountinfo::MountTable::read()
        .ok()?
        .mounts
        .into_iter()
        .find(|m| m.dev == want)
        .map(|m| m.fs_type)
}

/// Whether a mountinfo type (`nfs4`, `fuse.sshfs`, `ext4`) names a network, cluster or FUSE
/// file system, one that other machines (or a user-space daemon) can write to.
pub fn is_remote_type(fs_type: &str) -> bool {
    let family = fs_type.split('.').next().unwrap_or(fs_type);
    REMOTE_NAMES.contains(&family) || REMOTE.iter().any(|(_, name)| *name == fs_type)
}

/// The kind of a network or FUSE file system `dir` is on, or `None` for a local one (or one
/// that cannot be looked at).
pub fn network_kind(dir: &Path) -> Option<&'static str> {
    let magic = nix::sys::statfs::statfs(dir).ok()?.filesystem_type().0 as u32 as u64;
    REMOTE
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_classify_and_mount_types_name() {
        let cases = [
            (0xEF53, None, "ext4", false),
            (0x0102_1994, Some("tmpfs"), "tmpfs", false),
            (0x6969, Some("nfs4"), "nfs4", true),
            (0xFF53_4D42, Some("cifs"), "cifs", true),
            (0x6573_5546, Some("fuse.bindfs"), "fuse.bindfs", true),
            (0x6573_5546, Some("fuse.glusterfs"), "fuse.glusterfs", true),
            (0x00C3_6400, None, "ceph", true),
            (0x0BD0_0BD0, None, "lustre", true),
            (0x4750_4653, None, "gpfs", true),
            (0x5346_414F, None, "afs", true),
            (0x0102_1997, Some("9p"), "9p", true),
            (0x1234_5678, None, "0x12345678", true),
        ];
        for (magic, mount, name, remote) in cases {
            let kind = classify(magic, mount);
            assert_eq!(
                (kind.name.as_str(), kind.remote),
                (name, remote),
                "{magic:x}"
            );
        }
    }

    #[test]
    fn mount_types_tell_shares_from_local_disks() {
        for (fs_type, remote) in [
            ("nfs4", true),
            ("nfs", true),
            ("cifs", true),
            ("fuse.bindfs", true),
            ("fuse.sshfs", true),
            ("gfs2", true),
            ("ext4", false),
            ("tmpfs", false),
            ("overlay", false),
        ] {
            assert_eq!(is_remote_type(fs_type), remote, "{fs_type}");
        }
    }

    #[test]
    fn a_temp_folder_is_local_and_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let kind = detect(dir.path()).expect("statfs");
        assert!(!kind.remote, "{kind:?}");
        assert!(
            !kind.name.is_empty() && !kind.name.starts_with("0x"),
            "{kind:?}"
        );
        assert!(detect(&dir.path().join("missing")).is_err());
    }
}
