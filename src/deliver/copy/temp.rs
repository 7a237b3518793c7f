//! A copy's temp file: named after the claim whose attempt writes it, and locked by that attempt.
//!
//! `.NAME.srcopy<JOB>-<TOKEN>.EXT` beside the destination: two attempts of one job (an old one
//! still running through a network partition while the store gave the job to a new claim) write
//! two files, and neither replaces or removes the other's. The writer holds an exclusive `flock`
//! on a sidecar, `.NAME.srcopy<JOB>-<TOKEN>.EXT.lock`, from before the temp file is made until
//! after it is renamed or removed; an attempt's start removes the temp files of its job's other
//! claims whose sidecar no one holds (a killed or crashed attempt's), and leaves a held one
//! alone.
//!
//! The lock is on a file of its own, not on the temp file, because the copy writes the temp file
//! through one handle and reads it back through another (`O_DIRECT`): on SMB (the Linux CIFS
//! client with its default `brl`) a `flock` may become a mandatory lock of the handle that took
//! it, and the other handle's reads or writes would be refused. The sidecar is never read or
//! written, so no handle of the data meets a lock.
//!
//! The sweep unlinks a temp file only while it holds that claim's sidecar lock, which its writer
//! takes before it makes (or makes again) the file: a claim cannot re-create its temp file
//! between a sweep's check and its unlink.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::deliver::publish::temp_beside;
use crate::os::dir_handle::DirHandle;

/// Longest an attempt waits for its own sidecar lock, which another attempt's sweep holds for
/// the moment it checks and removes files.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The temp-name tag of attempt `attempt` (a claim's token) of job `job`.
pub fn attempt_tag(job: &str, attempt: i64) -> String {
    format!("srcopy{job}-{attempt}")
}

/// The sidecar whose lock marks temp file `name` as its attempt's.
fn lock_name(name: &OsStr) -> OsString {
    let mut lock = name.to_os_string();
    lock.push(".lock");
    lock
}

/// A temp file this attempt made, and the sidecar lock it holds on it; dropping it removes the
/// sidecar and ends the lock (the temp file itself is renamed or removed by then).
#[derive(Debug)]
pub struct TempFile<'a> {
    file: File,
    dir: &'a DirHandle,
    lock_name: OsString,
    lock: Flock<File>,
}

impl<'a> TempFile<'a> {
    /// Locks the sidecar of `name` in `dir`, then makes `name` (a leftover of this very claim is
    /// replaced).
    ///
    /// # Errors
    /// The OS's, or [`std::io::ErrorKind::WouldBlock`] when the sidecar stays locked by another
    /// process for `LOCK_WAIT`.
    pub fn create(dir: &'a DirHandle, name: &OsStr) -> std::io::Result<TempFile<'a>> {
        let lock_name = lock_name(name);
        let lock = lock_sidecar(dir, &lock_name)?;
        let _ = dir.remove(name);
        let made = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.via(name));
        match made {
            Ok(file) => Ok(TempFile {
                file,
                dir,
                lock_name,
                lock,
            }),
            Err(e) => {
                let _ = dir.remove(&lock_name);
                Err(e)
            }
        }
    }

    /// The open temp file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        // Still under the lock: the name is this sidecar, not one another attempt made since.
        if names(self.dir, &self.lock_name, &self.lock) {
            let _ = self.dir.remove(&self.lock_name);
        }
    }
}

/// Opens (or makes) the sidecar `lock_name` and takes its lock, waiting out a sweep that holds
/// it; made again when a sweep removed it as it was locked.
fn lock_sidecar(dir: &DirHandle, lock_name: &OsStr) -> std::io::Result<Flock<File>> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dir.via(lock_name))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) if names(dir, lock_name, &held) => return Ok(held),
            // A sweep removed it between the open and the lock: make it again.
            Ok(_) => {}
            Err((_, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((_, errno)) => return Err(std::io::Error::from(errno)),
        }
    }
}

/// Whether `name` in `dir` is `file` (the same inode).
fn names(dir: &DirHandle, name: &OsStr, file: &File) -> bool {
    match (std::fs::symlink_metadata(dir.via(name)), file.metadata()) {
        (Ok(at), Ok(held)) => at.dev() == held.dev() && at.ino() == held.ino(),
        _ => false,
    }
}

/// Removes from `dir` the temp files that other attempts of the job tagged `tag` left for a
/// transfer to `to` and that no attempt holds (it was killed or its node crashed); returns
/// their names. One still held is another claim's live attempt: left alone.
pub fn remove_abandoned(dir: &DirHandle, to: &Path, tag: &str) -> Vec<OsString> {
    let (Some(own), Some((job, _))) = (temp_beside(to, tag), tag.rsplit_once('-')) else {
        return Vec::new();
    };
    // `.NAME.srcopy<JOB>-` and `.EXT`, around the other attempt's token.
    let Some(prefix) = temp_beside(to, &format!("{job}-")).and_then(|p| {
        let name = p.file_name()?.as_bytes().to_vec();
        let ext = to.extension().map_or(0, |e| e.len() + 1);
        Some(name[..name.len() - ext].to_vec())
    }) else {
        return Vec::new();
    };
    let suffix = to
        .extension()
        .map(|e| [b".", e.as_bytes()].concat())
        .unwrap_or_default();
    let own = own.file_name().unwrap_or_default().to_os_string();
    let Ok(entries) = std::fs::read_dir(dir.via(OsStr::new(""))) else {
        return Vec::new();
    };
    let is_other_attempt = |data: &[u8]| {
        data != own.as_bytes()
            && data.len() > prefix.len() + suffix.len()
            && data.starts_with(&prefix)
            && data.ends_with(&suffix)
            && data[prefix.len()..data.len() - suffix.len()]
                .iter()
                .all(u8::is_ascii_digit)
    };
    // Each other attempt's temp name once, seen by its temp file or by its sidecar alone (an
    // attempt killed between its removal of the one and of the other).
    let mut others = std::collections::BTreeSet::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let bytes = name.as_bytes();
        let data = [Some(bytes), bytes.strip_suffix(b".lock")]
            .into_iter()
            .flatten()
            .find(|data| is_other_attempt(data));
        if let Some(data) = data {
            others.insert(OsStr::from_bytes(data).to_os_string());
        }
    }
    others
        .into_iter()
        .filter_map(|name| remove_if_unheld(dir, &name))
        .collect()
}

/// Removes temp file `name` and its sidecar unless an attempt holds the sidecar's lock; the
/// name removed (the temp file's, else the sidecar's), if any.
///
/// A temp file without a sidecar is a leftover of a release that locked the temp file itself:
/// removed unless that lock is held.
fn remove_if_unheld(dir: &DirHandle, name: &OsStr) -> Option<OsString> {
    let lock_name = lock_name(name);
    let open = |name: &OsStr| {
        File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(dir.via(name))
    };
    match open(&lock_name) {
        Ok(sidecar) => {
            // EWOULDBLOCK: a live attempt holds it.
            let held = Flock::lock(sidecar, FlockArg::LockExclusiveNonblock).ok()?;
            // Checked under the lock: a sidecar removed and made again since it was opened is
            // another attempt's, maybe live.
            if !names(dir, &lock_name, &held) {
                return None;
            }
            // Under the lock no attempt of that claim makes or writes its temp file.
            let data = dir.remove(name).is_ok();
            let sidecar = dir.remove(&lock_name).is_ok();
            match (data, sidecar) {
                (true, _) => Some(name.to_os_string()),
                (false, true) => Some(lock_name),
                (false, false) => None,
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let held = Flock::lock(open(name).ok()?, FlockArg::LockExclusiveNonblock).ok()?;
            // A sidecar made since is a live attempt's: it made its temp file after it.
            let sidecar_made = std::fs::symlink_metadata(dir.via(&lock_name)).is_ok();
            // Checked just before the unlink: the name might have been reused since it was
            // opened.
            (!sidecar_made && names(dir, name, &held) && dir.remove(name).is_ok())
                .then(|| name.to_os_string())
        }
        Err(_) => None,
    }
}
