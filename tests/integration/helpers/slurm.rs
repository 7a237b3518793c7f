//! A real one-node Slurm cluster for the tests of the Slurm executor: Debian 12's Slurm 22.05
//! (`slurmctld`, `slurmd`, `slurm-client`), no munge (`auth/none`), no slurmdbd. [`Cluster::start`]
//! writes a `slurm.conf` into a temp folder, with the state, spool, pid and log files beside it,
//! starts `slurmctld -D -i` and `slurmd -D -N <host>` as children of the test, and returns once
//! the node is `idle`; dropping the cluster kills them. Every client command must carry
//! `SLURM_CONF` ([`Cluster::command`], [`Cluster::env`]): without it a client reads
//! `/etc/slurm/slurm.conf`, another cluster or none.
//!
//! Clusters run side by side, as the tests do: each has its own ports (picked free, started
//! again on others if one was taken meanwhile), folders and `ClusterName`, and two `slurmd` with
//! the same `NodeName` share nothing on this machine (no shared memory, nothing under `/run`), so
//! no lock serializes them. The daemons run as the user running the tests (`SlurmUser` is that
//! user), root or not; the jobs run as that user too.
//!
//! What Slurm 22.05 does here, measured, that a test should know:
//! - [`Cluster::start`] takes about 0.1 s: slurmd starts once the controller listens (started
//!   together, slurmd registers only on its retry, a second later).
//! - Nothing is scheduled until about 3 s after the controller starts: `sched_interval=1` is
//!   read on the scheduler's first pass, which comes on the defaults' 3 s. After that a batch
//!   job, array or not, starts within 1 s of `sbatch` (the controller never starts a batch job
//!   at submission; its background pass runs once a second), and the next one at once when one
//!   ends. A `true` job goes from `sbatch` to `COMPLETED` in 0.05 to 1 s.
//! - The controller tests time limits every 30 s of its uptime (compiled in, not a setting), so
//!   `--time=1` (the least) reaches `TIMEOUT` 60 to 90 s after the job starts: 87 s for one
//!   started on a fresh controller's first pass, 90 s after `start`. Restarting the controller
//!   30 s or more after the job started moves that test to 30 s after the restart (62 s after
//!   the job started, restarted at 32 s). A job that ignores SIGTERM is then `COMPLETING` for
//!   `KillWait` more (5 s here).
//! - While the controller is down, each client command fails only after `MessageTimeout - 1`
//!   seconds of retries (9 s by default). A job that ends meanwhile shows `RUNNING` until its
//!   slurmstepd retries its completion (every 15 s, for an hour), so up to 15 s after the
//!   controller is back.

#![allow(dead_code)] // Shared by the tests of the Slurm executor; each uses part of it.

use std::ffi::OsString;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::require::{DEPS, cannot_run, require_program};

/// How long a daemon may take to come up, and to go after SIGTERM before SIGKILL.
const START_LIMIT: Duration = Duration::from_secs(30);
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// A running one-node cluster in a temp folder, its daemons children of this process.
pub struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    name: String,
    node: String,
    ctld_port: u16,
    slurmd_port: u16,
    slurmctld: PathBuf,
    slurmd: PathBuf,
    ctld_child: Mutex<Option<Child>>,
    slurmd_child: Mutex<Option<Child>>,
}

/// Why a start failed: a port taken meanwhile (start again on others) or anything else.
enum Failure {
    PortTaken,
    Other(String),
}

impl Cluster {
    /// Starts a cluster with the default settings and returns once its node is idle. `None`
    /// only when Slurm is missing and `SHOTROUTER_ALLOW_SKIP=1` (the test then returns);
    /// otherwise a missing Slurm fails the test, as does a cluster that does not come up.
    #[must_use]
    #[track_caller]
    pub fn start() -> Option<Cluster> {
        Cluster::start_with(&[])
    }

    /// Starts a cluster whose `slurm.conf` has these `(key, value)` settings in place of the
    /// defaults' (or added to them): `("KillWait", "30")`, `("MessageTimeout", "3")`.
    #[must_use]
    #[track_caller]
    pub fn start_with(settings: &[(&str, &str)]) -> Option<Cluster> {
        let slurmctld = find_daemon("slurmctld")?;
        let slurmd = find_daemon("slurmd")?;
        for client in ["sbatch", "squeue", "scancel", "sinfo", "scontrol"] {
            if !require_program(client, "slurm-client") {
                return None;
            }
        }
        static CLUSTERS: AtomicU32 = AtomicU32::new(0);
        let n = CLUSTERS.fetch_add(1, Ordering::SeqCst);
        let dir = tempfile::Builder::new()
            .prefix("shotrouter-slurm-")
            .tempdir()
            .expect("temp dir");
        let conf = dir.path().join("slurm.conf");
        let mut cluster = Cluster {
            dir,
            conf,
            name: format!("sr{}n{n}", std::process::id()),
            node: short_hostname(),
            ctld_port: 0,
            slurmd_port: 0,
            slurmctld,
            slurmd,
            ctld_child: Mutex::new(None),
            slurmd_child: Mutex::new(None),
        };
        for attempt in 1.. {
            (cluster.ctld_port, cluster.slurmd_port) = two_free_ports();
            cluster.write_conf(settings);
            match cluster.try_start() {
                Ok(()) => return Some(cluster),
                Err(Failure::PortTaken) if attempt < 3 => cluster.kill_daemons(),
                Err(Failure::PortTaken) => panic!(
                    "the Slurm cluster found its ports taken three times\n{}",
                    cluster.log_tail()
                ),
                Err(Failure::Other(why)) => {
                    panic!(
                        "the Slurm cluster did not start: {why}\n{}",
                        cluster.log_tail()
                    )
                }
            }
        }
        unreachable!()
    }

    /// Its `slurm.conf`.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Its temp folder: `slurm.conf`, `state/`, `spool/`, `ctld.log`, `d.log`; a test may keep
    /// its jobs' output here too.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its `ClusterName`, unique among the clusters of all running tests.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its one node's name, this machine's short host name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The environment a Slurm client needs to talk to this cluster.
    pub fn env(&self) -> [(&'static str, OsString); 1] {
        [("SLURM_CONF", self.conf.clone().into_os_string())]
    }

    /// `program` (`sbatch`, `squeue`, …) with `SLURM_CONF` set, run in [`Cluster::dir`] (where a
    /// job without `--output` leaves its `slurm-<id>.out`).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env()).current_dir(self.dir());
        command
    }

    /// Runs `program ARGS` against the cluster and returns its stdout; panics with its stderr
    /// and the daemons' logs when it fails.
    #[track_caller]
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("`{program}` runs: {e}"));
        assert!(
            out.status.success(),
            "`{program} {}` failed ({}): {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The node's state as `sinfo -h -o %t` prints it (`idle`, `mix`, `alloc`, `unk`, `idle*`
    /// when not responding…), or `None` when the controller does not answer (after
    /// `MessageTimeout - 1` seconds).
    pub fn node_state(&self) -> Option<String> {
        let out = self
            .command("sinfo")
            .args(["-h", "-o", "%t"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The last lines of the controller's and slurmd's logs, for a failure's message.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        for (what, log, stderr) in [
            ("slurmctld", "ctld.log", "ctld.stderr"),
            ("slurmd", "d.log", "d.stderr"),
        ] {
            let mut path = self.dir().join(log);
            let mut lines = read_lines(&path);
            if lines.is_empty() {
                // A daemon that fails before it opens its log says why on stderr only.
                path = self.dir().join(stderr);
                lines = read_lines(&path);
            }
            let skip = lines.len().saturating_sub(25);
            text.push_str(&format!("--- {what}: the end of {}\n", path.display()));
            for line in &lines[skip..] {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// Stops the controller (SIGTERM, SIGKILL after 10 s) and waits until it is gone; slurmd
    /// and the running jobs stay. Client commands then fail, slowly (see the module's notes).
    pub fn stop_controller(&self) {
        if let Some(child) = lock(&self.ctld_child).take() {
            stop(child);
        }
    }

    /// Starts the controller again on the same port and state (its jobs come back) and waits
    /// until slurmd answers it again. Scheduling resumes about 3 s after this.
    #[track_caller]
    pub fn start_controller(&self) {
        assert!(
            lock(&self.ctld_child).is_none(),
            "the controller is running; stop it first"
        );
        let ready = self.spawn_controller().and_then(|()| {
            self.wait_for("slurmd to answer the controller again", |state| {
                !state.starts_with("unk") && !state.starts_with("down") && !state.ends_with('*')
            })
        });
        match ready {
            Ok(()) => {}
            Err(Failure::PortTaken) => panic!(
                "the controller's port {} was taken while it was stopped\n{}",
                self.ctld_port,
                self.log_tail()
            ),
            Err(Failure::Other(why)) => {
                panic!(
                    "the controller did not start again: {why}\n{}",
                    self.log_tail()
                )
            }
        }
    }

    fn write_conf(&self, settings: &[(&str, &str)]) {
        let d = self.dir().display();
        let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
        let mut lines: Vec<(String, String)> = [
            ("ClusterName", self.name.clone()),
            ("SlurmctldHost", format!("{}(127.0.0.1)", self.node)),
            ("SlurmctldPort", self.ctld_port.to_string()),
            ("SlurmdPort", self.slurmd_port.to_string()),
            ("AuthType", "auth/none".into()),
            ("CredType", "cred/none".into()),
            // The daemons run as the user running the tests, as do the jobs.
            ("SlurmUser", uid.to_string()),
            ("SlurmdUser", uid.to_string()),
            ("StateSaveLocation", format!("{d}/state")),
            ("SlurmdSpoolDir", format!("{d}/spool")),
            ("SlurmctldPidFile", format!("{d}/ctld.pid")),
            ("SlurmdPidFile", format!("{d}/d.pid")),
            ("SlurmctldLogFile", format!("{d}/ctld.log")),
            ("SlurmdLogFile", format!("{d}/d.log")),
            ("ProctrackType", "proctrack/linuxproc".into()),
            ("TaskPlugin", "task/none".into()),
            ("JobAcctGatherType", "jobacct_gather/none".into()),
            ("AccountingStorageType", "accounting_storage/none".into()),
            ("JobCompType", "jobcomp/none".into()),
            ("SelectType", "select/cons_tres".into()),
            ("SelectTypeParameters", "CR_Core".into()),
            ("MpiDefault", "none".into()),
            ("ReturnToService", "2".into()),
            // The node claims 4 CPUs whatever this machine has.
            ("SlurmdParameters", "config_overrides".into()),
            ("SchedulerParameters", "sched_interval=1".into()),
            // Ended jobs stay in `squeue --states=all` for 5 minutes.
            ("MinJobAge", "300".into()),
            // SIGKILL 5 s after SIGTERM (a timed-out or cancelled job), not 30: slurmd's least.
            ("KillWait", "5".into()),
            // The default, /bin/mail, is missing: an error in the log at every start.
            ("MailProg", "/bin/true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, value) in settings {
            match lines.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
                Some(line) => line.1 = (*value).to_owned(),
                None => lines.push(((*key).to_owned(), (*value).to_owned())),
            }
        }
        let mut text: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        text.push_str(&format!(
            "NodeName={} NodeAddr=127.0.0.1 CPUs=4 RealMemory=4000 State=UNKNOWN\n\
             PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            self.node
        ));
        std::fs::write(&self.conf, text).expect("write slurm.conf");
    }

    /// Starts both daemons from empty state and waits until the node is idle.
    fn try_start(&self) -> Result<(), Failure> {
        for sub in ["state", "spool"] {
            let path = self.dir().join(sub);
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("state and spool folders");
        }
        for log in ["ctld.log", "d.log", "ctld.stderr", "d.stderr"] {
            let _ = std::fs::remove_file(self.dir().join(log));
        }
        // slurmd registers at once with a controller that listens; started together it
        // registers only on its retry, a second later.
        self.spawn_controller()?;
        let node = self.node.clone();
        let child = self.spawn(&self.slurmd, &["-D", "-N", &node], "d.stderr");
        *lock(&self.slurmd_child) = Some(child);
        self.wait_for("the node to be idle", |state| state == "idle")?;
        // Whoever answered on these ports, it was these daemons.
        if !self.owns_listener(&self.slurmd_child, self.slurmd_port) {
            return Err(Failure::PortTaken);
        }
        let config = self.run("scontrol", &["show", "config"]);
        if !config.lines().any(|l| {
            l.split_whitespace()
                .eq(["ClusterName", "=", self.name.as_str()])
        }) {
            return Err(Failure::Other(format!(
                "the controller on port {} is not cluster {}",
                self.ctld_port, self.name
            )));
        }
        Ok(())
    }

    /// Starts `slurmctld` and waits until it listens on its port.
    fn spawn_controller(&self) -> Result<(), Failure> {
        let child = self.spawn(&self.slurmctld, &["-D", "-i"], "ctld.stderr");
        *lock(&self.ctld_child) = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        while !self.owns_listener(&self.ctld_child, self.ctld_port) {
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(Failure::Other(format!(
                    "slurmctld does not listen on port {} after {START_LIMIT:?}",
                    self.ctld_port
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn spawn(&self, program: &Path, args: &[&str], stderr: &str) -> Child {
        let stderr = std::fs::File::create(self.dir().join(stderr)).expect("daemon stderr");
        Command::new(program)
            .args(args)
            .envs(self.env())
            .current_dir(self.dir())
            .stdin(Stdio::null())
            // With -D a daemon logs to its log file and, again, to stderr: keep one copy.
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()))
    }

    /// Polls `sinfo` until `ok` holds for the node's state, failing when a daemon exits.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> Result<(), Failure> {
        let deadline = Instant::now() + START_LIMIT;
        let mut last = None;
        loop {
            self.check_alive()?;
            let state = self.node_state();
            if state.as_deref().is_some_and(&ok) {
                return self.check_alive();
            }
            if Instant::now() > deadline {
                return Err(Failure::Other(format!(
                    "timed out after {START_LIMIT:?} waiting for {what}; the node's state: {}",
                    last.or(state).unwrap_or_else(|| "no answer".into())
                )));
            }
            last = state;
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails when either daemon has exited: a taken port when its log says so.
    fn check_alive(&self) -> Result<(), Failure> {
        for (child, what, log) in [
            (&self.ctld_child, "slurmctld", "ctld.stderr"),
            (&self.slurmd_child, "slurmd", "d.stderr"),
        ] {
            let mut guard = lock(child);
            let Some(child) = guard.as_mut() else {
                continue;
            };
            if let Some(status) = child.try_wait().expect("poll a daemon") {
                guard.take();
                let said = std::fs::read_to_string(self.dir().join(log)).unwrap_or_default();
                if said.contains("Address already in use") {
                    return Err(Failure::PortTaken);
                }
                return Err(Failure::Other(format!("{what} exited ({status})")));
            }
        }
        Ok(())
    }

    /// Whether the daemon in `child` holds the socket listening on TCP `port`.
    fn owns_listener(&self, child: &Mutex<Option<Child>>, port: u16) -> bool {
        let Some(pid) = lock(child).as_ref().map(Child::id) else {
            return false;
        };
        let inodes = listening_inodes(port);
        !inodes.is_empty()
            && std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|link| {
                    inodes
                        .iter()
                        .any(|i| link == Path::new(&format!("socket:[{i}]")))
                })
    }

    /// SIGTERMs both daemons, SIGKILLs what is left after 10 s, then SIGKILLs what runs the
    /// cluster's jobs (slurmstepd leaves slurmd's process tree and would run on). No `scancel`.
    fn kill_daemons(&self) {
        let children: Vec<Child> = [&self.ctld_child, &self.slurmd_child]
            .into_iter()
            .filter_map(|c| lock(c).take())
            .collect();
        for child in &children {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        for child in children {
            stop(child);
        }
        let deadline = Instant::now() + STOP_LIMIT;
        loop {
            let left = self.job_processes();
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The slurmstepd of this cluster's jobs (they keep slurmd's `SLURM_CONF`) and the jobs'
    /// processes (Slurm gives them `SLURM_CLUSTER_NAME`).
    fn job_processes(&self) -> Vec<i32> {
        let conf = format!("SLURM_CONF={}", self.conf.display());
        let name = format!("SLURM_CLUSTER_NAME={}", self.name);
        let ours = |pid: i32| {
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                return false;
            };
            let has = |var: &str| environ.split(|b| *b == 0).any(|v| v == var.as_bytes());
            has(&name)
                || (has(&conf)
                    && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.starts_with("slurmstepd")))
        };
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| *pid as u32 != std::process::id() && ours(*pid))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_daemons();
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "the Slurm cluster's folder is kept: {}",
                self.dir().display()
            );
        }
    }
}

/// Waits up to 10 s for a daemon sent SIGTERM (sends it now if not yet), then SIGKILLs it.
fn stop(mut child: Child) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + STOP_LIMIT;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn lock(child: &Mutex<Option<Child>>) -> MutexGuard<'_, Option<Child>> {
    child
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `program` on PATH or in /usr/sbin (not on a user's PATH on Debian); `None` after
/// [`cannot_run`] when missing.
#[track_caller]
fn find_daemon(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        cannot_run(
            &format!("`{program}` is neither on PATH nor in /usr/sbin"),
            &format!("install Debian's `{program}`: {DEPS}"),
        );
    }
    found
}

/// This machine's host name up to its first dot, as Slurm compares it with `SlurmctldHost`.
fn short_hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("the host name");
    name.trim().split('.').next().unwrap_or_default().to_owned()
}

/// Two distinct ports free now on 127.0.0.1.
fn two_free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("a free port");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().expect("its address").port();
    (port(&a), port(&b))
}

/// The inodes of the TCP sockets listening on `port` (any address, IPv4 or IPv6).
fn listening_inodes(port: u16) -> Vec<String> {
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|table| read_lines(Path::new(table)))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st … uid timeout inode
            (fields.len() > 9 && fields[1].ends_with(&local) && fields[3] == "0A")
                .then(|| fields[9].to_owned())
        })
        .collect()
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read(path)
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
