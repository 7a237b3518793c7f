//! Folders held open by a handle that was checked, so that later writes cannot be redirected.
//!
//! A path is looked up again at every use: a folder swapped for a symlink between a check and a
//! write would send the write wherever the symlink points. A [`DirHandle`] is an open folder;
//! files are made, renamed and removed relative to it, and a child process reaches it through
//! `/proc/<pid>/fd/<n>`, a link that names the open folder itself, not a path. Whatever happens
//! to the path meanwhile, the writes stay in the folder that was checked.
//!
//! The folder is reached one component at a time from a trusted root (`mkdirat`, then `openat`
//! on the handle of the component before), and each handle's real location (the kernel's
//! `/proc/self/fd/<n>`) is checked against the allowed roots before anything is made inside it.
//! This allows symlinks that stay inside the allowed roots, as the rules do, where `openat2`
//! with `RESOLVE_BENEATH` would refuse one into another allowed root; it needs nothing newer
//! than `openat`.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// An open folder whose location was checked when it was opened.
#[derive(Debug)]
pub struct DirHandle {
    dir: File,
    /// Where it was when checked.
    checked: PathBuf,
}

impl PartialEq for DirHandle {
    fn eq(&self, other: &Self) -> bool {
        self.dir.as_raw_fd() == other.dir.as_raw_fd()
    }
}

impl Eq for DirHandle {}

/// Whether `real` (a resolved path) lies inside one of the resolved `allowed` roots.
fn inside(real: &Path, allowed: &[PathBuf]) -> bool {
    allowed.iter().any(|root| real.starts_with(root))
}

impl DirHandle {
    /// Opens `root`/`rel`, making the folders that are missing, and checks at every step that
    /// the folder reached (symlinks followed) lies inside one of `allowed` (resolved paths).
    /// `root` itself is trusted (a watch root or `outputs:` folder) and made if missing.
    ///
    /// # Errors
    /// A folder that cannot be made or opened, or one that resolves outside `allowed`; the
    /// message names the path and what it resolved to.
    pub fn open_checked(root: &Path, rel: &Path, allowed: &[PathBuf]) -> Result<DirHandle, String> {
        std::fs::create_dir_all(root)
            .map_err(|e| format!("cannot create `{}`: {e}", root.display()))?;
        let dir = File::open(root).map_err(|e| format!("cannot open `{}`: {e}", root.display()))?;
        let mut handle = DirHandle::checked(dir, root, allowed)?;
        let mut shown = root.to_path_buf();
        for component in rel.components() {
            let Component::Normal(name) = component else {
                return Err(format!(
                    "output folder `{}` is not a plain path below `{}`",
                    root.join(rel).display(),
                    root.display()
                ));
            };
            shown.push(name);
            match mkdirat(handle.dir.as_fd(), name, Mode::from_bits_truncate(0o777)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(format!("cannot create `{}`: {e}", shown.display())),
            }
            let fd = openat(
                handle.dir.as_fd(),
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| format!("cannot open `{}`: {e}", shown.display()))?;
            handle = DirHandle::checked(File::from(fd), &shown, allowed)?;
        }
        Ok(handle)
    }

    fn checked(dir: File, shown: &Path, allowed: &[PathBuf]) -> Result<DirHandle, String> {
        let mut handle = DirHandle {
            dir,
            checked: PathBuf::new(),
        };
        let real = handle
            .real_path()
            .map_err(|e| format!("cannot resolve `{}`: {e}", shown.display()))?;
        if !inside(&real, allowed) {
            return Err(format!(
                "output folder `{}` resolves to `{}`, outside the watch roots and `outputs:` folders",
                shown.display(),
                real.display()
            ));
        }
        handle.checked = real;
        Ok(handle)
    }

    /// Where the folder is now, as the kernel knows the open folder (not a path lookup).
    ///
    /// # Errors
    /// `/proc` is not mounted.
    pub fn real_path(&self) -> std::io::Result<PathBuf> {
        std::fs::read_link(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
    }

    /// Where the folder was when it was checked.
    pub fn checked_path(&self) -> &Path {
        &self.checked
    }

    /// `name` in this folder, as a path any process of this user can open while this process
    /// holds the handle (`/proc/<pid>/fd/<n>/name`): it reaches the open folder, not a path.
    pub fn via(&self, name: &OsStr) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.dir.as_raw_fd()
        ))
        .join(name)
    }

    /// Renames `from` to `to`, both in this folder.
    ///
    /// # Errors
    /// The OS's.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> std::io::Result<()> {
        renameat(self.dir.as_fd(), from, self.dir.as_fd(), to).map_err(std::io::Error::from)
    }

    /// Removes `name` from this folder; a missing one is no error.
    ///
    /// # Errors
    /// The OS's.
    pub fn remove(&self, name: &OsStr) -> std::io::Result<()> {
        match unlinkat(self.dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Flushes the folder's entries (a rename) to disk.
    ///
    /// # Errors
    /// The OS's; some file systems refuse to sync a folder.
    pub fn sync(&self) -> std::io::Result<()> {
        self.dir.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_through_the_handle_stay_in_the_checked_folder_after_a_swap() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).expect("outside");
        let allowed = [dir.path().canonicalize().expect("real").join("root")];
        let handle = DirHandle::open_checked(&root, Path::new("a/out"), &allowed).expect("open");
        assert_eq!(
            handle.checked_path(),
            allowed[0].join("a/out"),
            "made and checked"
        );
        std::fs::rename(root.join("a/out"), root.join("a/moved")).expect("move");
        std::os::unix::fs::symlink(&outside, root.join("a/out")).expect("swap");
        std::fs::write(handle.via(OsStr::new(".t")), b"x").expect("write via the handle");
        handle
            .rename(OsStr::new(".t"), OsStr::new("f"))
            .expect("rename");
        assert!(root.join("a/moved/f").exists());
        assert_eq!(std::fs::read_dir(&outside).expect("read").count(), 0);
        assert_eq!(
            handle.real_path().expect("real"),
            allowed[0].join("a/moved")
        );
        let error = DirHandle::open_checked(&root, Path::new("a/out/deeper"), &allowed)
            .expect_err("outside");
        assert!(error.contains("outside the watch roots"), "{error}");
        assert!(!outside.join("deeper").exists(), "nothing made outside");
    }
}
