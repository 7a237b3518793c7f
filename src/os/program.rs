//! Starting programs the cheap and safe way: bare names resolved against `PATH` up front (so std
//! can use `posix_spawn`), and the daemon as the reaper of its jobs' orphans.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What the daemon's environment holds for the daemon alone: systemd's notify socket (a child
/// must not report readiness for it) and the store's credentials (a password, or a URL with
/// one). Every program shotrouter starts (jobs, notification commands, ffprobe) goes without.
pub const PRIVATE_ENV: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "PGPASSWORD",
    "PGPASSFILE",
    "SHOTROUTER_STORE",
];

/// `program ARGS` as a duct expression, resolved against `PATH` and without [`PRIVATE_ENV`].
pub fn command<A: AsRef<OsStr>>(program: &OsStr, args: &[A]) -> duct::Expression {
    PRIVATE_ENV.iter().fold(
        duct::cmd(
            resolve_program(&program.to_os_string()),
            args.iter().map(AsRef::as_ref),
        ),
        |expression, name| expression.env_remove(name),
    )
}

/// `program ARGS` as a std command, resolved against `PATH` and without [`PRIVATE_ENV`]: for a
/// job's steps, started on every job. Unlike [`command`] it leaves the environment alone when
/// none of those is set, so std hands the daemon's own to `posix_spawn` instead of copying it
/// into a new one per spawn; and it skips duct's wrapping: together about half of a job
/// thread's CPU per job in a burst of trivial jobs.
pub fn spawnable<A: AsRef<OsStr>>(program: &OsStr, args: &[A]) -> std::process::Command {
    let mut command = std::process::Command::new(resolve_program(&program.to_os_string()));
    command.args(args);
    for name in PRIVATE_ENV {
        if std::env::var_os(name).is_some() {
            command.env_remove(name);
        }
    }
    command
}

/// Runs `expression` (a [`command`] with its stdin and outputs set) for at most `deadline`:
/// its output, whatever its exit status, or `None` when it took longer and was killed. For the
/// short programs shotrouter runs itself (a probe, a decode, a poster frame, a notification).
///
/// # Errors
/// When it cannot be started or waited for.
pub fn output_within(
    expression: duct::Expression,
    deadline: std::time::Duration,
) -> std::io::Result<Option<std::process::Output>> {
    let handle = expression.unchecked().start()?;
    match handle.wait_timeout(deadline)? {
        Some(output) => Ok(Some(output.clone())),
        None => {
            let _ = handle.kill();
            Ok(None)
        }
    }
}

/// Makes this process the reaper of its jobs' orphaned descendants, so that none is left as a
/// zombie where PID 1 does not reap (containers).
pub fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(error = %e, "cannot become a child subreaper; orphans of killed jobs are left to init");
    }
}

/// Where a bare program name is found in `PATH`, searched in order as `execvp` does; `None`
/// when no folder of `PATH` holds an executable file of that name.
pub fn find_program(program: &OsStr) -> Option<PathBuf> {
    let search = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a file someone may execute (what `execvp` needs, short of permissions).
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The absolute path of a bare program name, found in `PATH` as `execvp` would. With an absolute
/// program std starts the child with `posix_spawn` (no copy of the daemon's memory); given a bare
/// name together with an environment (duct always passes one) it must `fork`, which copies the
/// page tables of a daemon holding a large queue on every job. Lookups are cached per thread.
pub fn resolve_program(program: &OsString) -> OsString {
    thread_local! {
        static FOUND: std::cell::RefCell<HashMap<OsString, OsString>> = std::cell::RefCell::new(HashMap::new());
    }
    if program.as_bytes().contains(&b'/') {
        return program.clone();
    }
    if let Some(found) = FOUND.with(|cache| cache.borrow().get(program).cloned()) {
        return found;
    }
    match find_program(program).map(PathBuf::into_os_string) {
        Some(path) => {
            FOUND.with(|cache| cache.borrow_mut().insert(program.clone(), path.clone()));
            path
        }
        // Not found: spawning the bare name reports "not found" in the job's outcome.
        None => program.clone(),
    }
}
