//! A running `shotrouter watch` under test, and the argv-recording helper its rules call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::env::{Env, wait_until};

/// The compiled argv-recording helper (built once per test run with the system C compiler).
pub fn argvdump() -> &'static Path {
    static HELPER: OnceLock<PathBuf> = OnceLock::new();
    HELPER.get_or_init(|| compile_helper("argvdump"))
}

/// The compiled stalling writer (`helpers/slowwriter.c`).
pub fn slowwriter() -> &'static Path {
    static HELPER: OnceLock<PathBuf> = OnceLock::new();
    HELPER.get_or_init(|| compile_helper("slowwriter"))
}

/// Builds `helpers/NAME.c` with the system C compiler into the test binary's temp folder.
fn compile_helper(name: &str) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration/helpers")
        .join(format!("{name}.c"));
    let status = std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&source)
        .status()
        .expect("a C compiler (cc) builds the test helper");
    assert!(status.success(), "compiling {}", source.display());
    out
}

/// The records of an argvdump log: each call's arguments, as bytes.
pub fn records(log: &Path) -> Vec<Vec<Vec<u8>>> {
    let Ok(bytes) = std::fs::read(log) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let mut args = Vec::new();
        while bytes[at] != b'\n' {
            let colon = at
                + bytes[at..]
                    .iter()
                    .position(|&b| b == b':')
                    .expect("length prefix");
            let len: usize = std::str::from_utf8(&bytes[at..colon])
                .expect("digits")
                .parse()
                .expect("length");
            args.push(bytes[colon + 1..colon + 1 + len].to_vec());
            at = colon + 1 + len;
        }
        at += 1;
        records.push(args);
    }
    records
}

/// How many records name each first argument.
pub fn counts(log: &Path) -> HashMap<Vec<u8>, usize> {
    let mut counts = HashMap::new();
    for record in records(log) {
        *counts
            .entry(record.into_iter().next().unwrap_or_default())
            .or_insert(0) += 1;
    }
    counts
}

/// A `shotrouter watch` process whose log goes to a file.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    /// `None` for a daemon started by a test that holds [`INOTIFY_LIMITS`] exclusively.
    _inotify: Option<std::sync::RwLockReadGuard<'static, ()>>,
}

/// inotify's per-user limits are machine-wide: tests that run a watcher share this lock, and the
/// one test that lowers the watch limit takes it exclusively.
pub static INOTIFY_LIMITS: std::sync::RwLock<()> = std::sync::RwLock::new(());

impl Daemon {
    /// Starts `shotrouter watch ARGS... rules.yaml` in `env` and waits until its watches are placed.
    pub fn start(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Daemon {
        let daemon = Daemon::spawn(env, extra, vars);
        daemon.wait_watching();
        daemon
    }

    /// Starts `shotrouter watch ARGS... rules.yaml` in `env` without waiting for it (the tests
    /// of nodes started together); see [`Daemon::is_watching`].
    pub fn spawn(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Daemon {
        let inotify = INOTIFY_LIMITS
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Daemon::spawn_with(env, extra, vars, Some(inotify))
    }

    /// Starts a daemon as [`Daemon::start`] does, for a test that already holds
    /// [`INOTIFY_LIMITS`] exclusively (it changes the limits while the daemon runs).
    pub fn start_holding_limits(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Daemon {
        let daemon = Daemon::spawn_with(env, extra, vars, None);
        daemon.wait_watching();
        daemon
    }

    fn spawn_with(
        env: &Env,
        extra: &[&str],
        vars: &[(&str, &str)],
        inotify: Option<std::sync::RwLockReadGuard<'static, ()>>,
    ) -> Daemon {
        let log = env.path("daemon.log");
        let mut args = vec!["watch"];
        args.extend_from_slice(extra);
        args.push("rules.yaml");
        let mut command = env.command(&args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("daemon log"))
            .env("SHOTROUTER_LOG", "info");
        for (k, v) in vars {
            command.env(k, v);
        }
        let child = command.spawn().expect("daemon starts");
        Daemon {
            child,
            log,
            _inotify: inotify,
        }
    }

    fn wait_watching(&self) {
        wait_until(
            "the daemon to place its watches",
            Duration::from_secs(30),
            || self.is_watching(),
        );
    }

    /// Whether the daemon has placed its watches (so it has opened its store, if any).
    pub fn is_watching(&self) -> bool {
        let log = self.log_text();
        log.contains(" watching ") || log.contains("\"message\":\"watching\"")
    }

    /// The daemon's exit status once it has exited, without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("poll the daemon")
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits until the daemon reports that all work is done with `succeeded` jobs in total.
    pub fn wait_idle_with(&self, succeeded: usize, limit: Duration) {
        let want = format!("succeeded={succeeded} ");
        wait_until(&format!("an idle line with {want}"), limit, || {
            self.log_text()
                .lines()
                .any(|l| l.contains("idle:") && l.contains(&want))
        });
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.child.wait().expect("daemon exits").code()
    }

    /// SIGKILLs the daemon (no chance to clean up) and reaps it.
    pub fn kill_hard(mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal the daemon");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
