//! Runs one job: each step's argv through `duct` (never a shell), in its own process group,
//! with stdout and stderr in the job's log file, a timeout, and the atomic publish of its output.
//!
//! A failing, missing or hanging command is an [`Outcome`], never an error of the daemon. On
//! timeout or cancel the whole group gets SIGTERM, then SIGKILL after a short grace; when a job
//! ends, stragglers of its group are killed and reaped (the daemon is a child subreaper), so no
//! job leaves orphans or zombies behind.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::os::program::resolve_program;
use crate::os::quote::shell_quote;
use crate::os::version::FileVersion;
use crate::route::plan::OutputPaths;

/// How long a job's group has between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// Everything needed to run one attempt of a job.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Unique job id, used in the log and temp names.
    pub id: String,
    /// The rule's name.
    pub rule: String,
    /// The triggering file.
    pub path: PathBuf,
    /// Each step's argv.
    pub steps: Vec<Vec<OsString>>,
    /// The product, if the rule declares one.
    pub output: Option<OutputPaths>,
    /// Where outputs may be published.
    pub allowed_roots: Vec<PathBuf>,
    /// Longest the job may run.
    pub timeout: Option<Duration>,
    /// The job's log file.
    pub log_path: PathBuf,
    /// 1 for the first try.
    pub attempt: u32,
    /// The job's claim in the store (its fencing token), when jobs are recorded.
    pub claim: Option<crate::store::queue::Claim>,
    /// Symlink view of a sequence, made before the first step and removed after the last.
    pub view: Option<crate::media::sequence::View>,
    /// What the product must be, checked with ffprobe before it is published.
    pub verify: Option<crate::deliver::verify::Expectations>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step exited 0 and the output, if any, was published.
    Succeeded {
        /// The published product.
        published: Option<PathBuf>,
    },
    /// The job failed; retrying may help.
    Failed(Failure),
    /// Stopped on request (shutdown or cancel).
    Cancelled,
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// A step exited non-zero or was killed by a signal.
    #[error("step {step} {status}")]
    Exit {
        /// 1-based step number.
        step: usize,
        /// `exited with status 1` or `killed by signal 9`.
        status: String,
    },
    /// A step ran longer than the rule's `timeout`.
    #[error(
        "step {step} timed out after {:?}; its process group was killed",
        limit
    )]
    TimedOut {
        /// 1-based step number.
        step: usize,
        /// The timeout.
        limit: Duration,
    },
    /// A step's program could not be started.
    #[error("step {step}: cannot run `{program}`: {reason}")]
    Spawn {
        /// 1-based step number.
        step: usize,
        /// The program name.
        program: String,
        /// The OS's reason.
        reason: String,
    },
    /// Every step succeeded but the output was not written.
    #[error("the commands exited 0 but did not write `{}`", .0.display())]
    NoOutput(PathBuf),
    /// The output folder or the final rename failed, or it leads outside the allowed roots.
    #[error("cannot publish: {0}")]
    Publish(String),
    /// The product was written but is not what the rule's `verify:` asks for.
    #[error("verification failed: {0}")]
    Verify(String),
    /// A sequence's view could not be made.
    #[error("cannot make the sequence view: {0}")]
    View(String),
    /// The log file could not be opened.
    #[error("cannot open job log `{}`: {reason}", path.display())]
    Log {
        /// The log path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A handle on a running job, shared with the [`Watchdog`] and with whoever may cancel it.
#[derive(Debug, Default)]
pub struct JobControl {
    pgid: AtomicI32,
    cancelled: AtomicBool,
    timed_out: AtomicBool,
}

impl JobControl {
    fn signal(&self, signal: Signal) {
        let pgid = self.pgid.load(Ordering::SeqCst);
        if pgid > 0 {
            let _ = killpg(Pid::from_raw(pgid), signal);
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

enum Alarm {
    /// SIGTERM the job's group at the deadline (its timeout), SIGKILL after [`KILL_GRACE`].
    Timeout(u64, Instant, Arc<JobControl>),
    /// SIGTERM now (cancel), SIGKILL after [`KILL_GRACE`].
    Cancel(u64, Arc<JobControl>),
    /// The job ended: forget it.
    Disarm(u64),
}

/// One thread that owns every running job's deadline, so workers can block in a plain `wait()`
/// (woken directly by the kernel when their child exits) instead of polling for timeouts.
#[derive(Debug, Clone)]
pub struct Watchdog {
    alarms: crossbeam_channel::Sender<Alarm>,
}

impl Watchdog {
    /// Starts the watchdog thread; it ends when every `Watchdog` clone is dropped.
    pub fn start() -> Watchdog {
        let (alarms, rx) = crossbeam_channel::unbounded();
        let spawned = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || watchdog(&rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the watchdog thread; timeouts will not be enforced");
        }
        Watchdog { alarms }
    }

    /// Asks the job to stop: SIGTERM to its group now, SIGKILL after [`KILL_GRACE`].
    pub fn cancel(&self, job: u64, control: &Arc<JobControl>) {
        control.cancelled.store(true, Ordering::SeqCst);
        let _ = self.alarms.send(Alarm::Cancel(job, control.clone()));
    }
}

fn watchdog(alarms: &crossbeam_channel::Receiver<Alarm>) {
    // job -> (when to act next, signal to send then, control)
    let mut armed: HashMap<u64, (Instant, Signal, Arc<JobControl>)> = HashMap::new();
    loop {
        let next = armed.values().map(|(at, _, _)| *at).min();
        let received = match next {
            Some(at) => alarms.recv_deadline(at),
            None => alarms
                .recv()
                .map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(Alarm::Timeout(job, at, control)) => {
                armed.insert(job, (at, Signal::SIGTERM, control));
            }
            Ok(Alarm::Cancel(job, control)) => {
                control.signal(Signal::SIGTERM);
                armed.insert(job, (Instant::now() + KILL_GRACE, Signal::SIGKILL, control));
            }
            Ok(Alarm::Disarm(job)) => {
                armed.remove(&job);
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        for (at, signal, control) in armed.values_mut() {
            if *at <= now {
                if *signal == Signal::SIGTERM {
                    control.timed_out.store(true, Ordering::SeqCst);
                }
                control.signal(*signal);
                // After SIGTERM, SIGKILL; after SIGKILL, again until the job disarms.
                *signal = Signal::SIGKILL;
                *at = now + KILL_GRACE;
            }
        }
    }
}

/// What a running job reports as it goes, so it can be recorded durably.
pub trait JobHooks {
    /// A step's process group started (the daemon may die; a later one must be able to kill it).
    /// Returning false stops the job at once (a user cancelled it while it waited).
    fn group_started(&mut self, pgid: i32) -> bool;
    /// The product is about to be renamed into place with this version. Returning false
    /// discards it instead: the attempt no longer holds the job's claim.
    fn publishing(&mut self, output: &Path, version: FileVersion) -> bool;
}

/// Runs one attempt of a job to the end. `job` is a number unique among running jobs.
pub fn run(
    spec: &JobSpec,
    job: u64,
    control: &Arc<JobControl>,
    watchdog: &Watchdog,
    hooks: &mut dyn JobHooks,
) -> Outcome {
    if let Some(view) = &spec.view
        && let Err(e) = view.create()
    {
        view.remove();
        return Outcome::Failed(Failure::View(format!("{}: {e}", view.dir.display())));
    }
    let outcome = run_attempt(spec, job, control, watchdog, hooks);
    if let Some(view) = &spec.view {
        view.remove();
    }
    outcome
}

fn run_attempt(
    spec: &JobSpec,
    job: u64,
    control: &Arc<JobControl>,
    watchdog: &Watchdog,
    hooks: &mut dyn JobHooks,
) -> Outcome {
    let mut log = match open_log(&spec.log_path) {
        Ok(log) => log,
        Err(reason) => {
            return Outcome::Failed(Failure::Log {
                path: spec.log_path.clone(),
                reason,
            });
        }
    };
    note(
        &mut log,
        format!(
            "== job {} rule {} attempt {} file {}",
            spec.id,
            spec.rule,
            spec.attempt,
            spec.path.display()
        ),
    );
    if let Some(output) = &spec.output
        && let Err(reason) = prepare_output(output, &spec.allowed_roots)
    {
        note(&mut log, format!("== cannot publish: {reason}"));
        return Outcome::Failed(Failure::Publish(reason));
    }
    let deadline = spec.timeout.map(|t| Instant::now() + t);
    for (index, argv) in spec.steps.iter().enumerate() {
        let step = index + 1;
        let display: Vec<String> = argv.iter().map(|a| shell_quote(a.as_bytes())).collect();
        note(&mut log, format!("$ {}", display.join(" ")));
        let result = run_step(argv, &log, deadline, job, control, watchdog, hooks);
        note(&mut log, format!("== step {step}: {}", describe(&result)));
        let failure = match result {
            StepResult::Exited(status) if status.success() => continue,
            StepResult::Exited(status) => Failure::Exit {
                step,
                status: exit_text(status),
            },
            StepResult::TimedOut => Failure::TimedOut {
                step,
                limit: spec.timeout.unwrap_or_default(),
            },
            StepResult::Cancelled => {
                discard_output(spec);
                return Outcome::Cancelled;
            }
            StepResult::SpawnFailed(reason) => Failure::Spawn {
                step,
                program: String::from_utf8_lossy(argv[0].as_bytes()).into_owned(),
                reason,
            },
        };
        discard_output(spec);
        return Outcome::Failed(failure);
    }
    if let (Some(expected), Some(output)) = (&spec.verify, &spec.output)
        && output.temp_path.exists()
    {
        let result = crate::deliver::verify::probe(&output.temp_path).map(|probed| {
            let differences = expected.differences(&probed);
            (probed, differences)
        });
        let failure = match result {
            Ok((probed, differences)) if differences.is_empty() => {
                note(&mut log, format!("== verified: {probed}"));
                None
            }
            Ok((_, differences)) => Some(differences.join("; ")),
            Err(reason) => Some(reason),
        };
        if let Some(reason) = failure {
            note(
                &mut log,
                format!("== verification failed, not published: {reason}"),
            );
            discard_output(spec);
            return Outcome::Failed(Failure::Verify(reason));
        }
    }
    let published = match &spec.output {
        Some(output) => match publish(output, hooks) {
            Ok(path) => Some(path),
            Err(failure) => {
                note(&mut log, format!("== {failure}"));
                discard_output(spec);
                return Outcome::Failed(failure);
            }
        },
        None => None,
    };
    if let Some(path) = &published {
        note(&mut log, format!("== published {}", path.display()));
    }
    Outcome::Succeeded { published }
}

enum StepResult {
    Exited(std::process::ExitStatus),
    TimedOut,
    Cancelled,
    SpawnFailed(String),
}

fn describe(result: &StepResult) -> String {
    match result {
        StepResult::Exited(status) => exit_text(*status),
        StepResult::TimedOut => "timed out; process group killed".into(),
        StepResult::Cancelled => "cancelled; process group killed".into(),
        StepResult::SpawnFailed(reason) => format!("could not start: {reason}"),
    }
}

fn exit_text(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended".into(),
    }
}

/// Appends one line to the job log in a single write (an unbuffered `writeln!` would issue one
/// system call per formatting fragment).
fn note(log: &mut File, mut line: String) {
    line.push('\n');
    let _ = log.write_all(line.as_bytes());
}

fn open_log(path: &Path) -> Result<File, String> {
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

fn run_step(
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
    let expression = duct::cmd(resolve_program(&argv[0]), &argv[1..])
        .stdin_null()
        .stdout_file(stdout)
        .stderr_file(stderr)
        .unchecked()
        .before_spawn(|command| {
            // Its own process group, so a timeout reaches everything the command spawned.
            command.process_group(0);
            Ok(())
        });
    let handle = match expression.start() {
        Ok(handle) => handle,
        Err(e) => return StepResult::SpawnFailed(e.to_string()),
    };
    let pgid = handle.pids().first().map_or(0, |&p| p as i32);
    control.pgid.store(pgid, Ordering::SeqCst);
    if !hooks.group_started(pgid) {
        control.cancelled.store(true, Ordering::SeqCst);
        control.signal(Signal::SIGKILL);
    }
    if let Some(deadline) = deadline {
        let _ = watchdog
            .alarms
            .send(Alarm::Timeout(job, deadline, control.clone()));
    }
    if control.is_cancelled() {
        // Cancelled while starting: the canceller saw no group yet.
        control.signal(Signal::SIGTERM);
    }
    // Blocks until the child exits; the watchdog's signals are what end a stuck one.
    let status = handle.wait().map(|output| output.status);
    if deadline.is_some() {
        let _ = watchdog.alarms.send(Alarm::Disarm(job));
    }
    control.pgid.store(0, Ordering::SeqCst);
    reap_group(pgid);
    if control.is_cancelled() {
        StepResult::Cancelled
    } else if control.timed_out.swap(false, Ordering::SeqCst) {
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

/// Creates the output's folder and refuses one that resolves (through symlinks) outside the
/// allowed roots; removes a stale temp file from an earlier, killed attempt.
fn prepare_output(output: &OutputPaths, allowed: &[PathBuf]) -> Result<(), String> {
    let dir = output
        .final_path
        .parent()
        .ok_or_else(|| format!("output `{}` has no folder", output.final_path.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let real = dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve `{}`: {e}", dir.display()))?;
    let inside = allowed
        .iter()
        .filter_map(|root| root.canonicalize().ok())
        .any(|root| real.starts_with(root));
    if !inside {
        return Err(format!(
            "output folder `{}` resolves to `{}`, outside the watch roots and `outputs:` folders",
            dir.display(),
            real.display()
        ));
    }
    match std::fs::remove_file(&output.temp_path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "cannot remove stale `{}`: {e}",
            output.temp_path.display()
        )),
    }
}

fn publish(output: &OutputPaths, hooks: &mut dyn JobHooks) -> Result<PathBuf, Failure> {
    let Some(version) = FileVersion::of(&output.temp_path) else {
        return Err(Failure::NoOutput(output.temp_path.clone()));
    };
    // Recorded before the rename: the rename's own inotify event already finds it, and a crash
    // between the two is recognisable at recovery.
    if !hooks.publishing(&output.final_path, version) {
        let _ = std::fs::remove_file(&output.temp_path);
        return Err(Failure::Publish(
            "this attempt's claim was superseded (the job was claimed again or cancelled); its product was discarded"
                .into(),
        ));
    }
    std::fs::rename(&output.temp_path, &output.final_path).map_err(|e| {
        Failure::Publish(format!(
            "cannot rename `{}` to `{}`: {e}",
            output.temp_path.display(),
            output.final_path.display()
        ))
    })?;
    Ok(output.final_path.clone())
}

fn discard_output(spec: &JobSpec) {
    if let Some(output) = &spec.output {
        let _ = std::fs::remove_file(&output.temp_path);
    }
}
