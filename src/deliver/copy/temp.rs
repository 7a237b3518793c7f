//! A copy's temp file: named after the claim whose attempt writes it, and locked by that attempt.
//!
//! `.NAME.srcopy<JOB>-<TOKEN>.EXT` beside the destination: two attempts of one job (an old one
//! still running through a network partition while the store gave the job to a new claim) write
//! two files, and neither replaces or removes the other's. The writer holds an exclusive `flock`
//! on its temp file from creation until the rename or removal; an attempt's start removes the
//! temp files of its job's other claims that no one holds (a killed or crashed attempt's), and
//! leaves a held one alone.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::deliver::publish::temp_beside;
use crate::os::dir_handle::DirHandle;

/// The temp-name tag of attempt `attempt` (a claim's token) of job `job`.
pub fn attempt_tag(job: &str, attempt: i64) -> String {
    format!("srcopy{job}-{attempt}")
}

/// A temp file this attempt made and holds locked; the lock ends when it is dropped.
#[derive(Debug)]
pub struct TempFile {
    file: Flock<File>,
}

impl TempFile {
    /// Makes `name` in `dir` (a leftover of this very claim is replaced) and locks it.
    ///
    /// # Errors
    /// The OS's, or [`std::io::ErrorKind::Other`] when another attempt's sweep removed the file
    /// between its creation and its lock.
    pub fn create(dir: &DirHandle, name: &OsStr) -> std::io::Result<TempFile> {
        let _ = dir.remove(name);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.via(name))?;
        let file = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| std::io::Error::from(errno))?;
        // A sweep that locked it before this attempt did has removed it.
        if !names(dir, name, &file) {
            return Err(std::io::Error::other(
                "another attempt removed the temp file as it was made",
            ));
        }
        Ok(TempFile { file })
    }

    /// The open temp file.
    pub fn file(&self) -> &File {
        &self.file
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
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let bytes = name.as_bytes();
        let is_other_attempt = name != own
            && bytes.len() > prefix.len() + suffix.len()
            && bytes.starts_with(&prefix)
            && bytes.ends_with(&suffix)
            && bytes[prefix.len()..bytes.len() - suffix.len()]
                .iter()
                .all(u8::is_ascii_digit);
        if is_other_attempt && remove_if_unheld(dir, &name) {
            removed.push(name);
        }
    }
    removed
}

/// Removes `name` unless an attempt holds its lock.
fn remove_if_unheld(dir: &DirHandle, name: &OsStr) -> bool {
    let Ok(file) = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.via(name))
    else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        // Checked under the lock: the name might have been reused since it was opened.
        Ok(held) => names(dir, name, &held) && dir.remove(name).is_ok(),
        // EWOULDBLOCK: a live attempt holds it.
        Err(_) => false,
    }
}
