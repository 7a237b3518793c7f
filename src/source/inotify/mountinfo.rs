//! The mount table, as `/proc/self/mountinfo` gives it: the inotify source follows mounts
//! under its roots, since a watch on a folder does not reach a file system mounted on it later.
//!
//! The kernel flags every change of the table on this file with `POLLPRI | POLLERR`, so the
//! inotify thread adds it to the descriptors it waits on and re-reads it (from the start) when
//! it fires; only the mount points are kept, to tell which appeared and which went.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

/// `/proc/self/mountinfo`, open, and the mounts it last listed.
pub(super) struct MountTable {
    file: File,
    /// (mount id, mount point): a remount at the same point has a new id.
    mounts: BTreeSet<(u64, PathBuf)>,
}

impl MountTable {
    /// Opens and reads the table.
    pub(super) fn open() -> io::Result<MountTable> {
        let mut table = MountTable {
            file: File::open("/proc/self/mountinfo")?,
            mounts: BTreeSet::new(),
        };
        table.mounts = table.read()?;
        Ok(table)
    }

    /// Every mount point now.
    pub(super) fn points(&self) -> impl Iterator<Item = &PathBuf> + '_ {
        self.mounts.iter().map(|(_, p)| p)
    }

    /// Re-reads the table; returns the mount points that appeared or went since the last read
    /// (a point mounted over again counts once).
    pub(super) fn changes(&mut self) -> io::Result<BTreeSet<PathBuf>> {
        let now = self.read()?;
        let changed = now
            .symmetric_difference(&self.mounts)
            .map(|(_, p)| p.clone())
            .collect();
        self.mounts = now;
        Ok(changed)
    }

    fn read(&mut self) -> io::Result<BTreeSet<(u64, PathBuf)>> {
        self.file.rewind()?;
        let mut bytes = Vec::new();
        self.file.read_to_end(&mut bytes)?;
        Ok(parse(&bytes))
    }
}

impl AsFd for MountTable {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// (mount id, mount point) of each line, read by the one mountinfo parser.
fn parse(bytes: &[u8]) -> BTreeSet<(u64, PathBuf)> {
    crate::os::mountinfo::MountTable::parse(bytes)
        .mounts
        .into_iter()
        .map(|m| (m.id, m.point))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_with_their_escapes_undone() {
        let table = b"22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                      36 35 98:0 /mnt1 /shots/my\\040plates rw - ext3 /dev/root rw\n";
        let mounts: Vec<(u64, PathBuf)> = parse(table).into_iter().collect();
        assert_eq!(
            mounts,
            vec![
                (22, PathBuf::from("/proc")),
                (36, PathBuf::from("/shots/my plates"))
            ]
        );
        assert!(MountTable::open().is_ok_and(|t| t.points().any(|p| p.as_os_str() == "/")));
    }
}
