//! A test that cannot run its real part (a tool, a FUSE mount, root for a tmpfs or the inotify
//! limit) fails, saying what is missing and how to get it, so CI never stays green with the test
//! skipped. Only `SHOTROUTER_ALLOW_SKIP=1` lets it print `skipped: <why>` and pass instead (a
//! laptop without FUSE, say). Every such decision goes through [`cannot_run`].

use std::path::Path;

/// The variable that lets a test skip what it cannot run here.
pub const ALLOW_SKIP: &str = "SHOTROUTER_ALLOW_SKIP";

/// How to get the tools the tests use.
pub const DEPS: &str = "run `scripts/deps test`";

/// How to get what mounts and kernel limits need.
pub const AS_ROOT: &str = "run the tests as root where mounts and /proc/sys may be changed (CI, a VM, a privileged container)";

/// Ends a test that cannot run: panics naming `what` is missing and `fix`, unless
/// `SHOTROUTER_ALLOW_SKIP=1`, when it prints `skipped: <what>` and returns (the caller then
/// returns too).
#[track_caller]
pub fn cannot_run(what: &str, fix: &str) {
    if std::env::var_os(ALLOW_SKIP).is_some_and(|v| v == "1") {
        eprintln!("skipped: {what}");
        return;
    }
    panic!("cannot run this test: {what}; {fix} (or set {ALLOW_SKIP}=1 to let it skip)");
}

/// Whether `program` is on PATH; when not, [`cannot_run`] says to install `package` with
/// `scripts/deps test`. `false` (only with `SHOTROUTER_ALLOW_SKIP=1`) means skip what needs it.
#[must_use]
#[track_caller]
pub fn require_program(program: &str, package: &str) -> bool {
    if on_path(program) {
        return true;
    }
    cannot_run(
        &format!("`{program}` is not on PATH"),
        &format!("install Debian's `{package}`: {DEPS}"),
    );
    false
}

/// Whether an executable file named `program` is in one of PATH's folders.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
