//! Folders the inotify source lists on a timer instead of hearing from the kernel: folders it
//! ran out of watches for, and folders on network or FUSE storage mounted under a root.
//!
//! A file is reported once its (inode, size, mtime) held still across two looks
//! ([`POLL_EVERY`](super::tree::POLL_EVERY) apart) and differs from what was last reported, so
//! a file still growing is not reported at each look. The source's own poller (`source::poll`)
//! indexes whole roots with hot/cold schedules and root health; these are a handful of loose
//! folders inside a watched tree, so this small index is all they need.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a folder is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// No inotify watch could be placed (the per-user limit): retried until one is.
    NoWatch,
    /// It is on network or FUSE storage, where inotify misses other machines' writes.
    Remote,
}

/// What identifies a version of a file for the poller.
type Version = (u64, u64, i64);

/// One file of a polled folder.
#[derive(Debug)]
struct Seen {
    /// At the last look.
    last: Version,
    /// Last reported (or found by the scan that started polling the folder).
    reported: Option<Version>,
}

/// One polled folder.
#[derive(Debug)]
struct Folder {
    why: Why,
    files: HashMap<OsString, Seen>,
}

/// What a folder holds now: files with their versions, and sub-folders.
pub(super) struct Listing {
    files: Vec<(OsString, Version)>,
    /// Names of the folders in it.
    pub(super) dirs: Vec<OsString>,
}

/// Lists `abs`: its regular files with their versions and its folders.
pub(super) fn list(abs: &Path) -> io::Result<Listing> {
    let mut listing = Listing {
        files: Vec::new(),
        dirs: Vec::new(),
    };
    for entry in std::fs::read_dir(abs)?.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            listing.dirs.push(entry.file_name());
        } else if meta.is_file() {
            let mtime = meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec();
            listing
                .files
                .push((entry.file_name(), (meta.ino(), meta.size(), mtime)));
        }
    }
    Ok(listing)
}

/// The polled folders, by root index and path relative to the root.
#[derive(Debug, Default)]
pub(super) struct Polled {
    folders: BTreeMap<(usize, PathBuf), Folder>,
}

/// What one look at a polled folder found.
pub(super) struct Look {
    /// Files to report (they held still since the last look and are new or changed).
    pub(super) ready: Vec<OsString>,
    /// The folders in it.
    pub(super) dirs: Vec<OsString>,
}

impl Polled {
    /// Starts polling a folder whose files were just listed and reported by a scan: what is
    /// there now counts as reported. Returns whether it is new to the set.
    pub(super) fn insert(&mut self, root: usize, rel: &Path, abs: &Path, why: Why) -> bool {
        let key = (root, rel.to_path_buf());
        if let Some(folder) = self.folders.get_mut(&key) {
            folder.why = why;
            return false;
        }
        let files = list(abs)
            .map(|l| {
                l.files
                    .into_iter()
                    .map(|(name, v)| {
                        let seen = Seen {
                            last: v,
                            reported: Some(v),
                        };
                        (name, seen)
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.folders.insert(key, Folder { why, files });
        true
    }

    /// Whether a folder is polled.
    pub(super) fn contains(&self, root: usize, rel: &Path) -> bool {
        self.folders.contains_key(&(root, rel.to_path_buf()))
    }

    /// Stops polling a folder (it is watched now); what the poller knew of it, to report only
    /// what changed since.
    pub(super) fn remove(&mut self, root: usize, rel: &Path) -> Option<Known> {
        self.folders
            .remove(&(root, rel.to_path_buf()))
            .map(|f| Known(f.files))
    }

    /// Stops polling every folder for which `drop` says so.
    pub(super) fn remove_where(&mut self, mut drop: impl FnMut(usize, &Path) -> bool) {
        self.folders.retain(|(root, rel), _| !drop(*root, rel));
    }

    /// The folders polled for `why`.
    pub(super) fn folders(&self, why: Why) -> Vec<(usize, PathBuf)> {
        self.folders
            .iter()
            .filter(|(_, f)| f.why == why)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// How many folders are polled for `why`.
    pub(super) fn count(&self, why: Why) -> usize {
        self.folders.values().filter(|f| f.why == why).count()
    }

    /// Looks at one folder (`abs` is where it is); `None` when it cannot be listed: a folder
    /// gone is dropped (its parent's next look finds what replaced it); any other failure (a
    /// remote folder that does not answer, too many open files) keeps it, to look again.
    pub(super) fn look(&mut self, root: usize, rel: &Path, abs: &Path) -> Option<Look> {
        let key = (root, rel.to_path_buf());
        let listing = match list(abs) {
            Ok(listing) => listing,
            // A remote folder that does not answer (a crashed FUSE daemon, an NFS server
            // away) is kept and looked at again: nothing above it would find it again.
            Err(e) if e.kind() != io::ErrorKind::NotFound => return None,
            Err(_) => {
                self.folders.remove(&key);
                return None;
            }
        };
        let folder = self.folders.get_mut(&key)?;
        let mut ready = Vec::new();
        let mut files = HashMap::with_capacity(listing.files.len());
        for (name, version) in listing.files {
            let Some(mut seen) = folder.files.remove(&name) else {
                // First seen: it must hold still until the next look.
                let seen = Seen {
                    last: version,
                    reported: None,
                };
                files.insert(name, seen);
                continue;
            };
            if seen.last == version {
                if seen.reported != Some(version) {
                    seen.reported = Some(version);
                    ready.push(name.clone());
                }
            } else {
                seen.last = version;
            }
            files.insert(name, seen);
        }
        folder.files = files;
        Some(Look {
            ready,
            dirs: listing.dirs,
        })
    }
}

/// What the poller knew of a folder's files when it stopped polling it.
pub(super) struct Known(HashMap<OsString, Seen>);

impl Known {
    /// The files of `listing` not reported as they are now: written while the folder was
    /// polled but not yet reported, or since its last look.
    pub(super) fn unreported(&self, listing: &Listing) -> Vec<OsString> {
        listing
            .files
            .iter()
            .filter(|(name, v)| self.0.get(name).is_none_or(|s| s.reported != Some(*v)))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_reported_once_it_held_still_and_again_only_when_changed() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("old.exr"), "o").expect("write");
        let mut polled = Polled::default();
        assert!(polled.insert(0, Path::new("a"), dir.path(), Why::NoWatch));
        std::fs::write(dir.path().join("new.exr"), "n").expect("write");
        let look = |p: &mut Polled| p.look(0, Path::new("a"), dir.path()).expect("listed").ready;
        assert!(look(&mut polled).is_empty(), "first seen: not yet still");
        assert_eq!(look(&mut polled), vec![OsString::from("new.exr")]);
        assert!(look(&mut polled).is_empty(), "reported once");
        std::fs::write(dir.path().join("old.exr"), "changed").expect("write");
        assert!(look(&mut polled).is_empty());
        assert_eq!(look(&mut polled), vec![OsString::from("old.exr")]);

        std::fs::write(dir.path().join("late.exr"), "l").expect("write");
        let known = polled.remove(0, Path::new("a")).expect("was polled");
        let unreported = known.unreported(&list(dir.path()).expect("list"));
        assert_eq!(unreported, vec![OsString::from("late.exr")]);
        assert_eq!(polled.count(Why::NoWatch), 0);
    }
}
