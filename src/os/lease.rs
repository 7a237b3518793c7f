//! Whether any process on this machine still has a file open for writing, asked of the kernel.
//!
//! A file found by a scan (a folder moved into the tree mid-copy, a daemon started while a
//! render writes) cannot tell by its size or mtime whether its writer merely stalled. The
//! kernel can: a read lease (`F_SETLEASE`, `F_RDLCK`) is refused with `EAGAIN` while any
//! descriptor or shared writable mapping of the file is open for writing, on any process. The
//! lease is released at once; it is a question, not a lock.
//!
//! Taking a lease needs the file's owner or `CAP_LEASE` (the packaged service unit grants it);
//! without either, or on a file system without leases, the answer is [`Writers::Unknown`] and
//! the caller falls back to waiting for stillness. Writers on *other* machines are never
//! visible this way, so on anything but a local file system the answer is `Unknown` too (NFSv4
//! and SMB clients even refuse every lease the server has not delegated, which would read as
//! "still written" forever).
//!
//! The crate's only `unsafe`: nix does not wrap `F_SETLEASE`, so two `libc::fcntl` calls on a
//! descriptor owned here, with integer arguments.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Once};

/// What the kernel says of a file's writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// Nobody on this machine has it open for writing.
    None,
    /// Some process has it open (or mapped) for writing.
    Open,
    /// The kernel would not say (not the owner and no `CAP_LEASE`, leases unsupported, or the
    /// file is gone or not a regular file).
    Unknown,
}

/// Asks the kernel whether `path` is open for writing anywhere on this machine.
pub fn writers(path: &Path) -> Writers {
    // Only regular files: opening a device node can have effects of its own (a tape rewinds).
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Writers::Unknown;
    }
    quiet_lease_breaks();
    // Non-blocking, so a FIFO that matched a rule never blocks the daemon in `open`.
    let Ok(file) = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    else {
        return Writers::Unknown;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Writers::Unknown;
    }
    // On NFS, SMB and FUSE the lease speaks only for this machine (NFSv4 and SMB even refuse
    // it whenever the server granted no delegation or oplock): no answer there.
    let local = nix::sys::statfs::fstatfs(&file)
        .is_ok_and(|fs| crate::os::fs_kind::is_local_magic(fs.filesystem_type().0 as u32 as u64));
    if !local {
        return Writers::Unknown;
    }
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns, with integer arguments only.
    let taken = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
    if taken == 0 {
        // SAFETY: as above; releasing the lease just taken.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        return Writers::None;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Writers::Open,
        _ => Writers::Unknown,
    }
}

/// A writer opening the file in the instant the lease is held makes the kernel send the
/// holder `SIGIO`, whose default action ends the process. A handler (not `SIG_IGN`, which
/// children would inherit across `exec`) makes it harmless.
fn quiet_lease_breaks() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let raised = Arc::new(AtomicBool::new(false));
        if let Err(error) = signal_hook::flag::register(libc::SIGIO, raised) {
            tracing::warn!(%error, "cannot handle SIGIO; a lease break could end the daemon");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn an_open_writer_is_seen_and_a_closed_file_is_free() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("frame.exr");
        let mut file = File::create(&path).expect("create");
        file.write_all(b"half").expect("write");
        assert_eq!(writers(&path), Writers::Open);
        drop(file);
        assert_eq!(writers(&path), Writers::None);
    }

    #[test]
    fn a_missing_file_or_a_folder_is_unknown() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(writers(&dir.path().join("gone")), Writers::Unknown);
        assert_eq!(writers(dir.path()), Writers::Unknown);
    }
}
