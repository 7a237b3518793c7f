//! Scale-out with real processes: a watcher that only enqueues (`watch --no-run`) and
//! `shotrouter worker` nodes that claim and run, on a store they share. The same scenarios run
//! against the embedded SQLite store here and against a real PostgreSQL server in `pg_cluster`.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::daemon::{Daemon, argvdump, counts};
use crate::env::{Env, stderr, wait_until};

/// A `shotrouter worker` process whose log goes to a file.
pub struct Worker {
    child: Child,
    log: PathBuf,
    /// The log's length when this worker was spawned: a worker restarted under the same name
    /// appends to its predecessor's log, whose lines say nothing of this one.
    log_from: usize,
}

impl Worker {
    /// Starts a worker on `store` and waits until it runs.
    pub fn start(env: &Env, store: &str, name: &str, extra: &[&str]) -> Worker {
        Worker::start_under(env, &[], store, name, extra)
    }

    /// Starts a worker as [`Worker::start`] does, run by `wrapper` (`unshare -m …`: the
    /// worker's binary and arguments follow it) when it is not empty.
    pub fn start_under(
        env: &Env,
        wrapper: &[&str],
        store: &str,
        name: &str,
        extra: &[&str],
    ) -> Worker {
        let mut args = vec!["--store", store];
        args.extend_from_slice(extra);
        Worker::spawn_full(env, wrapper, name, &args, &[]).started(name)
    }

    /// Starts a worker with `args` (its store among them, or in `vars`) and these environment
    /// variables, and waits until it runs.
    pub fn start_with(env: &Env, name: &str, args: &[&str], vars: &[(&str, &str)]) -> Worker {
        Worker::spawn_full(env, &[], name, args, vars).started(name)
    }

    /// Starts a worker on `store` without waiting for it (the tests of nodes started
    /// together); see [`Worker::is_started`].
    pub fn spawn(env: &Env, store: &str, name: &str, extra: &[&str]) -> Worker {
        let mut args = vec!["--store", store];
        args.extend_from_slice(extra);
        Worker::spawn_full(env, &[], name, &args, &[])
    }

    /// Waits until the worker runs.
    fn started(self, name: &str) -> Worker {
        wait_until(
            &format!("worker {name} to start"),
            Duration::from_secs(30),
            || self.is_started(),
        );
        self
    }

    /// Starts a worker with `args` and `vars`, run by `wrapper` when it is not empty, without
    /// waiting for it.
    fn spawn_full(
        env: &Env,
        wrapper: &[&str],
        name: &str,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> Worker {
        let log = env.path(format!("{name}.log"));
        let log_from = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let mut argv = vec!["worker", "--name", name];
        argv.extend_from_slice(args);
        // On PostgreSQL a worker's default state folder is machine-wide (as root,
        // `/var/lib/shotrouter/worker`), where a worker of the same name in another test would
        // hold its name's lock: keep each test's workers in its own folder.
        let state = env.path("worker-state");
        let state = state.to_str().expect("a UTF-8 temp path");
        let on_postgres = args.iter().any(|a| a.starts_with("postgres"))
            || vars.iter().any(|(_, v)| v.starts_with("postgres"));
        if on_postgres && !args.contains(&"--state") {
            argv.extend(["--state", state]);
        }
        let mut command = match wrapper.split_first() {
            None => env.command(&argv),
            Some((program, rest)) => {
                let mut command = std::process::Command::new(program);
                command
                    .args(rest)
                    .arg(env!("CARGO_BIN_EXE_shotrouter"))
                    .args(&argv)
                    .current_dir(env.root());
                command
            }
        };
        let child = command
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("worker log"),
            )
            .env("SHOTROUTER_LOG", "info")
            .spawn()
            .expect("worker starts");
        Worker {
            child,
            log,
            log_from,
        }
    }

    /// Whether this worker (not an earlier one of its name) has opened its store and started.
    pub fn is_started(&self) -> bool {
        let log = std::fs::read(&self.log).unwrap_or_default();
        log.get(self.log_from..)
            .is_some_and(|own| own.windows(14).any(|w| w == b"worker started"))
    }

    /// The worker's exit status once it has exited, without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("poll the worker")
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signal the worker");
    }

    /// SIGKILLs the worker (no clean-up at all) and reaps it.
    pub fn kill_hard(mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Waits for the worker to exit by itself; its exit code.
    pub fn wait(mut self) -> Option<i32> {
        self.child.wait().expect("worker exits").code()
    }

    /// SIGTERM; the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.signal(Signal::SIGTERM);
        self.child.wait().expect("worker exits").code()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A rules file whose one rule records each run in `runs.log` (the input's relative path),
/// optionally waits, and publishes a copy beside the input. Its jobs run only on workers.
pub fn write_rules(env: &Env, sleep_ms: u64) {
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nrules:\n  - name: copy\n    match: \"**/*.dat\"\n    retries: 5\n    backoff: 100ms\n    output: \"{{dir}}/{{stem}}.out\"\n    steps: [[sh, -c, 'sleep {secs}; exec \"$0\" \"$@\"', {dump}, {runs}, \"{{rel}}\"], [cp, \"{{path}}\", \"{{out}}\"]]\n",
            secs = sleep_ms as f64 / 1000.0,
            dump = argvdump().display(),
            runs = env.path("runs.log").display(),
        ),
    );
}

/// Every job of the store, through the real `shotrouter jobs --json`.
pub fn jobs(env: &Env, store_args: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["jobs", "--json", "--limit", "100000"];
    args.extend_from_slice(store_args);
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Asserts every one of `names` has exactly one done job and one correct output, and returns
/// how many runs each file had.
pub fn assert_each_done_once(env: &Env, store_args: &[&str], names: &[String]) {
    let rows = jobs(env, store_args);
    for name in names {
        let done: Vec<_> = rows
            .iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(name.as_str()))
            })
            .filter(|r| r["status"] == "done")
            .collect();
        assert_eq!(done.len(), 1, "one done job for {name}: {rows:?}");
        let out = env.path(format!("shots/{}", name.replace(".dat", ".out")));
        assert_eq!(
            std::fs::read(&out).expect("output"),
            name.as_bytes(),
            "the output of {name}"
        );
    }
    let stray: Vec<_> = walk(&env.path("shots"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    assert!(stray.is_empty(), "no temp output left: {stray:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Writes `n` input files (each holding its own name) and returns their names.
pub fn arrive(env: &Env, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let name = format!("sh{:03}/f{i:04}.dat", i % 10);
            env.write(format!("shots/{name}"), &name);
            name
        })
        .collect()
}

/// How many times each input ran (from `runs.log`).
pub fn runs(env: &Env) -> std::collections::HashMap<Vec<u8>, usize> {
    counts(&env.path("runs.log"))
}

/// Four workers run `files` jobs while one of them, chosen at random, is SIGKILLed and
/// started again every `every`: every file ends with one done job and one output, and the
/// only files that ran more than once are those a killed worker held.
pub fn chaos(env: &Env, store: &str, store_args: &[&str], files: usize, every: Duration) {
    let names: Vec<String> = ["c1", "c2", "c3", "c4"].map(String::from).to_vec();
    let args = ["--jobs", "2", "--lease", "2s"];
    let mut workers: Vec<Option<Worker>> = names
        .iter()
        .map(|n| Some(Worker::start(env, store, n, &args)))
        .collect();
    let inputs = arrive(env, files);
    let mut seed: u64 = 0x5eed_1234;
    let mut kills = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let done = |env: &Env| {
        jobs(env, store_args)
            .iter()
            .filter(|r| r["status"] == "done")
            .count()
    };
    while done(env) < files {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: {} of {files} done after {kills} kills",
            done(env)
        );
        std::thread::sleep(every);
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let victim = (seed >> 33) as usize % workers.len();
        if let Some(worker) = workers[victim].take() {
            worker.kill_hard();
            kills += 1;
        }
        workers[victim] = Some(Worker::start(env, store, &names[victim], &args));
    }
    assert!(kills >= 2, "the run outlived at least two kills ({kills})");
    assert_each_done_once(env, store_args, &inputs);
    let reruns: usize = runs(env).values().map(|n| n - 1).sum();
    assert!(
        reruns <= kills * 2,
        "{reruns} re-runs for {kills} kills of workers holding at most 2 jobs each"
    );
    for worker in workers.into_iter().flatten() {
        let log = worker.log.clone();
        let status = worker.stop();
        assert_eq!(
            status,
            Some(0),
            "a worker's stop; its log:\n{}",
            String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default())
        );
    }
}

pub fn sqlite_store(env: &Env) -> String {
    env.path(".shotrouter").display().to_string()
}

#[test]
fn issue_12_workers_run_what_a_no_run_watcher_queued_each_once() {
    let env = Env::new();
    write_rules(&env, 0);
    let watcher = Daemon::start(&env, &["--no-run"], &[]);
    let store = sqlite_store(&env);
    let workers = [
        Worker::start(&env, &store, "w1", &["--jobs", "2"]),
        Worker::start(&env, &store, "w2", &["--jobs", "2"]),
    ];
    let names = arrive(&env, 40);
    wait_until("40 jobs done", Duration::from_secs(60), || {
        jobs(&env, &[])
            .iter()
            .filter(|r| r["status"] == "done")
            .count()
            == 40
    });
    assert_each_done_once(&env, &[], &names);
    assert!(runs(&env).values().all(|&n| n == 1), "each file ran once");
    let rows = jobs(&env, &[]);
    let by = |node: &str| rows.iter().filter(|r| r["node"] == node).count();
    assert_eq!(by("w1") + by("w2"), 40, "workers ran every job: {rows:?}");
    let status = env.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    let roles: Vec<(String, String)> = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or_default().to_string(),
                n["role"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (name, role) in [("w1", "worker"), ("w2", "worker")] {
        assert!(
            roles.contains(&(name.to_string(), role.to_string())),
            "{name} is a {role}: {roles:?}"
        );
    }
    assert!(
        roles.iter().any(|(_, r)| r == "watcher"),
        "the watcher is listed: {roles:?}"
    );
    assert!(
        !watcher.log_text().contains(" claimed"),
        "the watcher ran nothing"
    );
    for w in workers {
        assert_eq!(w.stop(), Some(0));
    }
}

#[test]
fn issue_12_a_worker_stopped_past_its_lease_loses_its_job_and_cannot_publish() {
    let env = Env::new();
    write_rules(&env, 1500);
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    let store = sqlite_store(&env);
    let frozen = Worker::start(&env, &store, "frozen", &["--jobs", "1", "--lease", "1s"]);
    let names = arrive(&env, 1);
    wait_until(
        "the job to be claimed by `frozen`",
        Duration::from_secs(20),
        || frozen.log_text().contains("claimed"),
    );
    frozen.signal(Signal::SIGSTOP);
    let rescuer = Worker::start(&env, &store, "rescuer", &["--jobs", "1", "--lease", "1s"]);
    wait_until(
        "the rescuer to finish the job",
        Duration::from_secs(30),
        || jobs(&env, &[]).iter().any(|r| r["status"] == "done"),
    );
    // The frozen worker's step finished meanwhile; resumed, its claim is gone.
    frozen.signal(Signal::SIGCONT);
    wait_until(
        "the frozen worker to notice",
        Duration::from_secs(20),
        || {
            let log = frozen.log_text();
            log.contains("claim lost") || log.contains("stale") || log.contains("taken over")
        },
    );
    let rows = jobs(&env, &[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "done");
    assert_eq!(rows[0]["node"], "rescuer", "{rows:?}");
    assert_each_done_once(&env, &[], &names);
    drop(rescuer);
}

#[test]
fn issue_12_workers_killed_at_random_lose_nothing_and_repeat_only_what_they_held() {
    let env = Env::new();
    write_rules(&env, 200);
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    chaos(
        &env,
        &sqlite_store(&env),
        &[],
        150,
        Duration::from_millis(1500),
    );
}

/// A bind mount of `from` at `at`, undone when dropped: a second machine's view of the tree.
pub struct BindMount(PathBuf);

impl BindMount {
    pub fn new(from: &Path, at: &Path) -> BindMount {
        std::fs::create_dir_all(at).expect("mount point");
        let status = std::process::Command::new("mount")
            .arg("--bind")
            .arg(from)
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(status.success(), "bind mount (the tests run as root)");
        BindMount(at.to_path_buf())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn issue_12_workers_map_the_tree_where_their_machine_mounts_it_and_decline_what_they_cannot() {
    let env = Env::new();
    write_rules(&env, 0);
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    let store = sqlite_store(&env);
    let _a = BindMount::new(&env.path("shots"), &env.path("farm-a/shots"));
    let _b = BindMount::new(&env.path("shots"), &env.path("farm-b/mnt/show"));

    // A worker whose mapping points nowhere declines the job without spending an attempt.
    let map = |p: &str| format!("shots={}", env.path(p).display());
    let lost = Worker::start(&env, &store, "lost", &["--map", &map("nowhere")]);
    let first = arrive(&env, 1);
    wait_until(
        "the lost worker to decline",
        Duration::from_secs(20),
        || lost.log_text().contains("declined"),
    );
    assert_eq!(lost.stop(), Some(0));
    let row = &jobs(&env, &[])[0];
    assert_eq!(
        (row["status"].as_str(), row["attempts"].as_u64()),
        (Some("queued"), Some(0))
    );
    assert!(
        row["result"]
            .as_str()
            .is_some_and(|r| r.contains("missing on this worker")),
        "{row}"
    );

    let mut all = first;
    for (name, mount) in [("a", "farm-a/shots"), ("b", "farm-b/mnt/show")] {
        let worker = Worker::start(&env, &store, name, &["--map", &map(mount)]);
        if name == "b" {
            all.extend(
                (0..3)
                    .map(|i| {
                        let rel = format!("sh900/b{i}.dat");
                        env.write(format!("shots/{rel}"), &rel);
                        rel
                    })
                    .collect::<Vec<_>>(),
            );
        }
        wait_until(
            &format!("worker {name} to run its jobs"),
            Duration::from_secs(30),
            || {
                jobs(&env, &[])
                    .iter()
                    .filter(|r| r["status"] == "done")
                    .count()
                    == all.len()
            },
        );
        let log = worker.log_text();
        assert!(
            log.contains(&env.path(mount).display().to_string()),
            "worker {name} ran on its own mount: {log}"
        );
        assert_eq!(worker.stop(), Some(0));
    }
    assert_each_done_once(&env, &[], &all);
    let rows = jobs(&env, &[]);
    assert!(rows.iter().any(|r| r["node"] == "a") && rows.iter().any(|r| r["node"] == "b"));
}
