//! The mount table of this process's mount namespace, as `/proc/self/mountinfo` lists it:
//! each mount's point, file-system type and source, with the kernel's octal escapes (`\040`
//! for a space, `\011`, `\012`, `\134`) undone so paths with spaces and any bytes survive.
//!
//! Which mount holds a path is decided by the path's device and the longest mount point above
//! it, the topmost mount winning where several are stacked on one point.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The mount table file of this process.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount's id (unique in the namespace; a remount at the same point gets a new one).
    pub id: u64,
    /// The id of the mount it is mounted on.
    pub parent: u64,
    /// The device (`major`, `minor`) of its file system.
    pub dev: (u64, u64),
    /// The folder of its file system that is mounted (`/` for a whole one; a bind mount's or
    /// a container volume's own folder otherwise): two mounts of one device differ by it.
    pub root: PathBuf,
    /// Where it is mounted.
    pub point: PathBuf,
    /// Its file-system type (`ext4`, `nfs4`, `fuse.bindfs`, `tmpfs`).
    pub fs_type: String,
    /// What is mounted (`server:/export/shots`, `/dev/sdb1`, `tmpfs`).
    pub source: OsString,
}

/// Every mount, in the table's order.
#[derive(Debug, Clone, Default)]
pub struct MountTable {
    /// The mounts.
    pub mounts: Vec<Mount>,
}

impl MountTable {
    /// Reads this process's table.
    ///
    /// # Errors
    /// When `/proc/self/mountinfo` cannot be read (no `/proc`).
    pub fn read() -> std::io::Result<MountTable> {
        Ok(MountTable::parse(&std::fs::read(MOUNTINFO)?))
    }

    /// Parses a table's text; lines it cannot read are left out.
    pub fn parse(bytes: &[u8]) -> MountTable {
        MountTable {
            mounts: bytes
                .split(|&b| b == b'\n')
                .filter_map(parse_line)
                .collect(),
        }
    }

    /// The mount that holds `path` (absolute, symbolic links resolved): of the mounts whose
    /// point is `path` or above it, the deepest one on `path`'s device, else the deepest one
    /// (a btrfs subvolume has a device of its own), the topmost where mounts are stacked.
    pub fn containing(&self, path: &Path) -> Option<&Mount> {
        let dev = std::fs::metadata(path).ok().map(|m| {
            (
                nix::sys::stat::major(m.dev()),
                nix::sys::stat::minor(m.dev()),
            )
        });
        let above: Vec<&Mount> = self
            .mounts
            .iter()
            .filter(|m| path.starts_with(&m.point))
            // A mount with another mounted on the same point is hidden under it.
            .filter(|m| {
                !self
                    .mounts
                    .iter()
                    .any(|o| o.parent == m.id && o.point == m.point && o.id != m.id)
            })
            .collect();
        let depth = |m: &&&Mount| m.point.as_os_str().len();
        above
            .iter()
            .filter(|m| Some(m.dev) == dev)
            .max_by_key(depth)
            .or_else(|| above.iter().max_by_key(depth))
            .copied()
    }
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`: id,
/// parent, device, root, point, options, optional fields up to `-`, type, source, options.
fn parse_line(line: &[u8]) -> Option<Mount> {
    let mut fields = line.split(|&b| b == b' ');
    let number = |field: &[u8]| std::str::from_utf8(field).ok()?.parse::<u64>().ok();
    let id = number(fields.next()?)?;
    let parent = number(fields.next()?)?;
    let (major, minor) = std::str::from_utf8(fields.next()?).ok()?.split_once(':')?;
    let dev = (major.parse().ok()?, minor.parse().ok()?);
    let root = PathBuf::from(OsString::from_vec(unescape(fields.next()?)));
    let point = PathBuf::from(OsString::from_vec(unescape(fields.next()?)));
    let mut rest = fields.skip_while(|f| *f != b"-");
    rest.next()?;
    let fs_type = String::from_utf8_lossy(&unescape(rest.next()?)).into_owned();
    let source = OsString::from_vec(unescape(rest.next()?));
    Some(Mount {
        id,
        parent,
        dev,
        root,
        point,
        fs_type,
        source,
    })
}

/// Undoes the kernel's escapes: a backslash and three octal digits stand for one byte.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && let Some(code) = field.get(i + 1..i + 4)
            && code.iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push(code.iter().fold(0u8, |n, c| (n << 3) | (c - b'0')));
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    const TABLE: &[u8] = b"22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
        27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
        36 27 0:50 / /shots/my\\040plates rw shared:7 master:1 - nfs4 srv:/ex\\040port\\134x rw\n\
        37 36 0:51 /a\\040b /shots/my\\040plates/deep\\012er rw - fuse.bindfs /\\377raw rw\n\
        38 27 0:52 / /san rw - tmpfs tmpfs rw\n\
        39 38 0:53 / /san rw - nfs srv:/san rw\n\
        not a line\n";

    #[test]
    fn lines_are_read_with_their_escapes_undone() {
        let table = MountTable::parse(TABLE);
        assert_eq!(table.mounts.len(), 6, "the bad line is left out");
        let m = &table.mounts[2];
        assert_eq!(
            (m.id, m.parent, m.dev, m.point.as_path(), m.fs_type.as_str()),
            (36, 27, (0, 50), Path::new("/shots/my plates"), "nfs4")
        );
        assert_eq!(m.source, OsString::from("srv:/ex port\\x"));
        let m = &table.mounts[3];
        assert_eq!(m.point, Path::new("/shots/my plates/deep\ner"));
        assert_eq!(
            m.root,
            Path::new("/a b"),
            "the mounted folder of its file system"
        );
        assert_eq!(table.mounts[2].root, Path::new("/"));
        assert_eq!(m.source.as_bytes(), b"/\xffraw", "bytes that are not UTF-8");
    }

    #[test]
    fn the_deepest_topmost_mount_above_a_path_holds_it() {
        let table = MountTable::parse(TABLE);
        let point = |p: &str| table.containing(Path::new(p)).map(|m| m.id);
        // These paths do not exist here: no device to match, the deepest point decides.
        assert_eq!(point("/shots/my plates/sh010"), Some(36));
        assert_eq!(point("/shots/my plates"), Some(36));
        assert_eq!(
            point("/shots/my platesX"),
            Some(27),
            "whole components only"
        );
        assert_eq!(point("/san/day1"), Some(39), "stacked: the top one");
        assert_eq!(point("/elsewhere"), Some(27));
        // This machine's own table: a temp folder is on some mount.
        let here = MountTable::read().expect("mountinfo");
        let tmp = std::env::temp_dir().canonicalize().expect("tmp");
        assert!(here.containing(&tmp).is_some());
    }
}
