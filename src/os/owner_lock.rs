//! One owner per folder: an exclusive `flock` on a lock file, held by an open descriptor for
//! the owner's whole life. The kernel drops the lock when that descriptor closes, however the
//! owner ends (`kill -9`, a crash, power loss), so a lock is never stale and there is nothing
//! to clean up. The file's contents only say who holds it, for the message a second owner gets.
//!
//! The descriptor is close-on-exec (as every file std opens), so no child of the owner keeps
//! the lock alive after the owner is gone.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name in the folder it guards.
pub const LOCK_FILE: &str = "daemon.lock";

/// A held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct OwnerLock {
    _file: Flock<File>,
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it.
    #[error("{}", held_message(.dir, .owner))]
    Held {
        /// The folder.
        dir: PathBuf,
        /// What the holder wrote into the file (`pid=…`, `host=…`, `since=…`, `command=…`),
        /// empty when it has not written it yet.
        owner: Owner,
    },
    /// The lock file cannot be opened or locked.
    #[error("cannot lock `{}`: {reason}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS's reason.
        reason: String,
    },
}

/// Who holds a lock, as its file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// The holder's process id.
    pub pid: Option<u32>,
    /// Its host.
    pub host: Option<String>,
    /// When it took the lock (RFC 3339, UTC).
    pub since: Option<String>,
    /// What it is (`shotrouter watch`).
    pub command: Option<String>,
}

impl Owner {
    fn parse(text: &str) -> Owner {
        let mut owner = Owner::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => owner.pid = v.trim().parse().ok(),
                Some(("host", v)) => owner.host = Some(v.trim().to_string()),
                Some(("since", v)) => owner.since = Some(v.trim().to_string()),
                Some(("command", v)) => owner.command = Some(v.trim().to_string()),
                _ => {}
            }
        }
        owner
    }
}

fn held_message(dir: &Path, owner: &Owner) -> String {
    let who = owner.command.as_deref().unwrap_or("another process");
    let pid = owner.pid.map_or_else(
        || "(PID not written yet)".to_string(),
        |p| format!("PID {p}"),
    );
    let host = owner
        .host
        .as_deref()
        .map(|h| format!(" on host {h}"))
        .unwrap_or_default();
    let since = owner
        .since
        .as_deref()
        .map(|s| format!(" since {s}"))
        .unwrap_or_default();
    format!(
        "the store in `{}` is owned by {who} {pid}{host}{since}; stop it first (or use another --state)",
        dir.display()
    )
}

impl OwnerLock {
    /// Takes the lock on `dir` (which must exist) without waiting, then writes who holds it:
    /// this process's id, `host`, the time, and `command`.
    ///
    /// # Errors
    /// [`LockError::Held`] naming the holder when another process has it; [`LockError::Io`].
    pub fn acquire(dir: &Path, host: &str, command: &str) -> Result<OwnerLock, LockError> {
        OwnerLock::acquire_file(dir, LOCK_FILE, host, command)
    }

    /// As [`OwnerLock::acquire`], on the lock file `name` in `dir` (a worker locks its node
    /// name, so two workers on one machine cannot run under the same one).
    ///
    /// # Errors
    /// [`LockError::Held`] naming the holder when another process has it; [`LockError::Io`].
    pub fn acquire_file(
        dir: &Path,
        name: &str,
        host: &str,
        command: &str,
    ) -> Result<OwnerLock, LockError> {
        let path = dir.join(name);
        let io = |e: &dyn std::fmt::Display| LockError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&e))?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((file, Errno::EWOULDBLOCK)) => {
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    owner: read_owner(file),
                });
            }
            Err((_, e)) => return Err(io(&e)),
        };
        let since = humantime::format_rfc3339_seconds(SystemTime::now());
        let text = format!(
            "pid={}\nhost={host}\nsince={since}\ncommand={command}\n",
            std::process::id()
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(text.as_bytes()))
            .map_err(|e| io(&e))?;
        Ok(OwnerLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the holder's record; a holder that has just taken the lock writes it a moment later,
/// so an empty file is read again for a short while.
fn read_owner(mut file: File) -> Owner {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        let mut text = String::new();
        let _ = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text));
        let owner = Owner::parse(&text);
        if owner.command.is_some() || Instant::now() >= deadline {
            return owner;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_record_until_it_lets_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = OwnerLock::acquire(dir.path(), "h1", "shotrouter watch").expect("first");
        let error = OwnerLock::acquire(dir.path(), "h2", "shotrouter watch").expect_err("held");
        let LockError::Held { owner, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(owner.pid, Some(std::process::id()));
        assert_eq!(owner.host.as_deref(), Some("h1"));
        let text = error.to_string();
        assert!(
            text.contains(&format!(
                "is owned by shotrouter watch PID {} on host h1 since ",
                std::process::id()
            )) && text.ends_with("; stop it first (or use another --state)"),
            "{text}"
        );
        drop(first);
        let again = OwnerLock::acquire(dir.path(), "h2", "shotrouter watch").expect("released");
        let written = std::fs::read_to_string(again.path()).expect("record");
        assert!(written.contains("host=h2\n"), "{written}");
        assert_eq!(written.matches("pid=").count(), 1, "rewritten whole");
    }
}
