//! One step of a job: its argv (never through a shell) in a process group of its own,
//! stdout and stderr appended to the job's log, under the watchdog's deadline and cancel. When
//! the step ends, stragglers of its group are killed and reaped (the daemon is a child
//! subreaper), so no step leaves orphans or zombies behind.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::exec::hooks::JobHooks;
use crate::exec::watchdog::{JobControl, Watchdog};

/// How long a step may run before its start is reported (and recorded with its process group).
/// With the committer's start window (`engine::node::outbox::START_WINDOW`, 2 ms) it bounds how
/// long a crash may leave a step's processes unknown to the next start: 3 ms.
pub const QUICK_STEP: Duration = Duration::from_millis(1);

/// How a step ended.
pub(super) enum StepResult {
    Exited(std::process::ExitStatus),
    TimedOut,
    Cancelled,
    SpawnFailed(String),
}

pub(super) fn describe(result: &StepResult) -> String {
    match result {
        StepResult::Exited(status) => exit_text(*status),
        StepResult::TimedOut => "timed out; process group killed".into(),
        StepResult::Cancelled => "cancelled; process group killed".into(),
        StepResult::SpawnFailed(reason) => format!("could not start: {reason}"),
    }
}

pub(super) fn exit_text(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended".into(),
    }
}

/// Opens the job's log for appending, making its folder on the rule's first job.
pub(super) fn open_log(path: &Path) -> Result<File, String> {
    let open = || File::options().create(true).append(true).open(path);
    match open() {
        Ok(file) => Ok(file),
        // The rule's log folder is made on its first job, not checked on every one.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            open().map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Runs one step's argv to its end (or its deadline, or a cancel).
pub(super) fn run_step(
    argv: &[OsString],
    log: &File,
    deadline: Option<Instant>,
    job: u64,
    control: &Arc<JobControl>,
    watchdog: &Watchdog,
    hooks: &mut dyn JobHooks,
) -> StepResult {
    if control.is_cancelled() {
        return StepResult::Cancelled;
    }
    if deadline.is_some_and(|d| d <= Instant::now()) {
        return StepResult::TimedOut;
    }
    let (stdout, stderr) = match (log.try_clone(), log.try_clone()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return StepResult::SpawnFailed(format!("cannot share the log file: {e}"));
        }
    };
    let mut command = crate::os::program::spawnable(&argv[0], &argv[1..]);
    command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own process group, so a timeout reaches everything the command spawned.
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return StepResult::SpawnFailed(e.to_string()),
    };
    let pgid = i32::try_from(child.id()).unwrap_or(0);
    control.set_group(pgid);
    // A step over within QUICK_STEP is not reported as started: its end says so, and naming its
    // group for recovery (a /proc read) cost more than a quick copy. Still unreaped, so the pid
    // is still this child's.
    let quick = hooks.records_starts()
        && !control.is_cancelled()
        && crate::os::process::ends_within(pgid, QUICK_STEP);
    if !quick && !hooks.group_started(pgid) {
        control.mark_cancelled();
        control.signal(Signal::SIGKILL);
    }
    if let Some(deadline) = deadline {
        watchdog.arm(job, deadline, control);
    }
    if control.is_cancelled() {
        // Cancelled while starting: the canceller saw no group yet.
        control.signal(Signal::SIGTERM);
    }
    // Blocks until the child exits; the watchdog's signals are what end a stuck one.
    let status = child.wait();
    if deadline.is_some() {
        watchdog.disarm(job);
    }
    control.set_group(0);
    reap_group(pgid);
    if control.is_cancelled() {
        StepResult::Cancelled
    } else if control.take_timed_out() {
        StepResult::TimedOut
    } else {
        match status {
            Ok(status) => StepResult::Exited(status),
            Err(e) => StepResult::SpawnFailed(format!("lost track of the process: {e}")),
        }
    }
}

/// Kills whatever is left of a finished job's process group and reaps the members that were
/// re-parented to us. A member whose parent just died reaches us a moment later, so this looks
/// again until the group is empty (bounded: a member that left the group is not ours to wait for).
fn reap_group(pgid: i32) {
    if pgid <= 0 {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let members_left = killpg(Pid::from_raw(pgid), Signal::SIGKILL) != Err(Errno::ESRCH);
        while let Ok(status) = waitpid(Pid::from_raw(-pgid), Some(WaitPidFlag::WNOHANG)) {
            if status == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
        if !members_left || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
