//! What kind of file system a folder is on: local ones deliver inotify events for every writer,
//! network and FUSE ones only for writes made through this machine.

use std::path::Path;

/// The kind of a network or FUSE file system `dir` is on (`nfs`, `cifs/smb`, `fuse`, `ceph`,
/// `9p`), or `None` for a local one.
pub fn network_kind(dir: &Path) -> Option<&'static str> {
    use nix::sys::statfs::{FUSE_SUPER_MAGIC, NFS_SUPER_MAGIC, SMB_SUPER_MAGIC, statfs};
    let fs = statfs(dir).ok()?.filesystem_type();
    let raw = fs.0 as u64;
    if fs == NFS_SUPER_MAGIC {
        Some("nfs")
    } else if fs == SMB_SUPER_MAGIC || raw == 0xFF53_4D42 || raw == 0xFE53_4D42 {
        Some("cifs/smb")
    } else if fs == FUSE_SUPER_MAGIC {
        Some("fuse")
    } else if raw == 0x00C3_6400 {
        Some("ceph")
    } else if raw == 0x0102_1997 {
        Some("9p")
    } else {
        None
    }
}
