//! A file's version as the file system tells it: (device, inode, size, mtime). Two stats that
//! agree mean the contents did not change in between, as far as anyone can tell without reading.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One version of a file's contents, as far as the file system tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileVersion {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl FileVersion {
    /// The version of a regular file, or `None` when it is missing or not a regular file.
    pub fn of(path: &Path) -> Option<FileVersion> {
        FileVersion::from_metadata(&std::fs::metadata(path).ok()?)
    }

    /// The version `meta` describes, or `None` when it is not a regular file's.
    pub fn from_metadata(meta: &std::fs::Metadata) -> Option<FileVersion> {
        meta.is_file().then(|| FileVersion {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        })
    }

    /// Whether `other` is the same version, the device aside (the store does not keep it).
    pub fn is_same_as(&self, other: &FileVersion) -> bool {
        (self.ino, self.size, self.mtime_ns) == (other.ino, other.size, other.mtime_ns)
    }
}
