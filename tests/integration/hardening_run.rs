//! The daemon under the faults a fault-injection run found: a second daemon on one store,
//! SIGKILLs in a burst, a stop with jobs that ignore SIGTERM, and an output folder swapped for a
//! symlink while its job runs. Real processes, real signals, real files.

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::env::{Env, stderr, wait_until};

/// Waits for `child` to exit (at most `limit`) and returns its output.
fn wait_exit(mut child: Child, limit: Duration) -> Output {
    wait_until("the process to exit", limit, || {
        child.try_wait().expect("try_wait").is_some()
    });
    child.wait_with_output().expect("output")
}

/// Rows of `shotrouter jobs --json`.
fn jobs(env: &Env) -> Vec<serde_json::Value> {
    let out = env.run(&["jobs", "--json", "--limit", "1000000"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn mkdir(path: &Path) {
    std::fs::create_dir_all(path).expect("mkdir");
}

#[test]
fn a_second_daemon_on_one_store_exits_2_naming_the_first_and_a_killed_owner_leaves_no_lock() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: touch\n    match: \"**/*.dat\"\n    run: [\"true\"]\n",
    );
    mkdir(&env.path("shots"));
    let first = Daemon::start(&env, &[], &[]);
    let second = env
        .command(&["watch", "rules.yaml"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("second daemon starts");
    let out = wait_exit(second, Duration::from_secs(20));
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "is owned by shotrouter watch PID {} on host ",
            first.pid()
        )) && text.contains("stop it first (or use another --state)"),
        "{text}"
    );
    // The operations CLI reads and writes beside the owner.
    let status = env.run(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    env.write("shots/a.dat", "a");
    wait_until("the owner to run the job", Duration::from_secs(20), || {
        jobs(&env).iter().any(|j| j["status"] == "done")
    });
    first.kill_hard();
    // No stale lock: a new daemon starts at once after the owner's SIGKILL.
    let started = Instant::now();
    let third = Daemon::start(&env, &[], &[]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!third.log_text().contains("is owned by"));
    assert_eq!(third.stop(), Some(0));
}

/// Whether a live (non-zombie) process's command line contains `needle`.
fn process_with(needle: &str) -> bool {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .any(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            !zombie
                && String::from_utf8_lossy(&cmdline)
                    .split('\0')
                    .any(|arg| arg == needle)
        })
}

#[test]
fn a_stop_ends_within_grace_plus_a_second_and_the_interrupted_attempt_is_not_counted() {
    let env = Env::new();
    let marker = env.path("may-finish");
    let tag = format!("stubborn-{}", std::process::id());
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nrules:\n  - name: stubborn\n    match: \"**/*.dat\"\n    run: [sh, -c, \"test -e '{}' && exit 0; trap '' TERM; sleep 60\", {tag}]\n",
            marker.display()
        ),
    );
    mkdir(&env.path("shots"));
    let daemon = Daemon::start(&env, &["--grace", "2s"], &[]);
    env.write("shots/a.dat", "a");
    wait_until("the job to run", Duration::from_secs(20), || {
        jobs(&env).iter().any(|j| j["status"] == "running")
    });
    wait_until("its shell to start", Duration::from_secs(5), || {
        process_with(&tag)
    });
    let signalled = Instant::now();
    let code = daemon.stop();
    let took = signalled.elapsed();
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_millis(3000),
        "the stop took {took:?} with --grace 2s"
    );
    assert!(
        took >= Duration::from_secs(2),
        "the job had its grace: {took:?}"
    );
    eprintln!("stop with --grace 2s and a job ignoring SIGTERM took {took:?}");
    assert!(!process_with(&tag), "the job's group was killed");
    let rows = jobs(&env);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "queued", "{rows:?}");
    assert_eq!(rows[0]["attempts"], 0, "{rows:?}");
    let id = rows[0]["id"].to_string();

    std::fs::write(&marker, "").expect("marker");
    let daemon = Daemon::start(&env, &["--grace", "2s"], &[]);
    wait_until("the job to succeed", Duration::from_secs(20), || {
        jobs(&env).iter().any(|j| j["status"] == "done")
    });
    let out = env.run(&["job", &id, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(daemon.stop(), Some(0));
}

/// Every hidden file under `dir` (temp outputs are hidden; the test's own files are not).
fn hidden_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if entry.file_type().expect("type").is_dir() {
            found.extend(hidden_files(&path));
        } else if entry.file_name().as_encoded_bytes().starts_with(b".") {
            found.push(path);
        }
    }
    found
}

/// Paths of the jobs with one of `statuses`.
fn paths_with(rows: &[serde_json::Value], statuses: &[&str]) -> Vec<String> {
    rows.iter()
        .filter(|j| statuses.iter().any(|s| j["status"] == *s))
        .map(|j| j["path"].as_str().expect("path").to_string())
        .collect()
}

#[test]
fn sigkills_in_a_burst_leave_no_temp_output_and_rerun_only_what_was_in_flight() {
    const FILES: usize = 36;
    let env = Env::new();
    let invocations = env.path("invocations.log");
    // Each invocation appends its input to the log, then writes its output a moment later from
    // a process in a session of its own: killing the job's recorded group does not reach it,
    // as with a converter orphaned before its group was recorded.
    let script = env.write(
        "convert.sh",
        "printf '%s\\n' \"$1\" >> \"$3\"\nsetsid sh -c 'sleep 0.3; cp \"$1\" \"$2\"' copy \"$1\" \"$2\" &\nwait\n",
    );
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\njobs: 4\nrules:\n  - name: slow\n    match: \"**/*.dat\"\n    output: \"{{dir}}/out/{{stem}}.out\"\n    run: [sh, \"{}\", \"{{path}}\", \"{{out}}\", \"{}\"]\n",
            script.display(),
            invocations.display()
        ),
    );
    mkdir(&env.path("shots/sq010"));
    let mut daemon = Daemon::start(&env, &[], &[]);
    for i in 0..FILES {
        env.write(format!("shots/sq010/f{i:03}.dat"), format!("frame {i}"));
    }
    let mut in_flight: Vec<String> = Vec::new();
    for round in 1..=3 {
        wait_until(
            "jobs to run before the kill",
            Duration::from_secs(60),
            || {
                let rows = jobs(&env);
                paths_with(&rows, &["done"]).len() >= round * FILES / 5
                    && !paths_with(&rows, &["running"]).is_empty()
            },
        );
        daemon.kill_hard();
        // The store as the kill left it: what was claimed or running may run again.
        let rows = jobs(&env);
        let flying = paths_with(&rows, &["claimed", "running"]);
        assert!(!flying.is_empty());
        in_flight.extend(flying);
        daemon = Daemon::start(&env, &[], &[]);
    }
    wait_until("every job to be done", Duration::from_secs(120), || {
        paths_with(&jobs(&env), &["done"]).len() == FILES
    });
    let rows = jobs(&env);
    assert_eq!(rows.len(), FILES, "one job per file: {rows:?}");
    let mut done = paths_with(&rows, &["done"]);
    done.sort();
    done.dedup();
    assert_eq!(done.len(), FILES, "each file done exactly once");
    for i in 0..FILES {
        let product = env.path(format!("shots/sq010/out/f{i:03}.out"));
        assert_eq!(
            std::fs::read_to_string(&product).expect("product"),
            format!("frame {i}")
        );
    }
    // Every start-up swept before running, and the last run left nothing either.
    assert_eq!(
        hidden_files(&env.path("shots")),
        Vec::<std::path::PathBuf>::new()
    );
    let log = std::fs::read_to_string(&invocations).expect("invocations");
    let mut runs: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for line in log.lines() {
        *runs.entry(line).or_insert(0) += 1;
    }
    assert_eq!(runs.len(), FILES);
    let reruns: usize = runs.values().map(|n| n - 1).sum();
    eprintln!(
        "{FILES} jobs, 3 SIGKILLs: {} in flight at the kills, {reruns} re-runs",
        in_flight.len()
    );
    for (path, n) in &runs {
        let flying = in_flight.iter().filter(|p| p == path).count();
        assert!(
            n - 1 <= flying,
            "{path} ran {n} times but was in flight at {flying} kills"
        );
    }
    assert!(reruns <= in_flight.len());
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn an_output_folder_swapped_for_a_symlink_while_its_job_runs_gets_nothing_outside() {
    let env = Env::new();
    let outside = env.path("outside");
    mkdir(&outside);
    let (started, go) = (env.path("started"), env.path("go"));
    // The converter says it started, waits for the test's go, then writes `{out}`.
    let script = env.write(
        "convert.sh",
        "touch \"$3\"\nwhile [ ! -e \"$4\" ]; do sleep 0.02; done\ncp \"$1\" \"$2\"\n",
    );
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nrules:\n  - name: convert\n    match: \"**/*.dat\"\n    output: \"{{dir}}/out/{{stem}}.out\"\n    run: [sh, \"{}\", \"{{path}}\", \"{{out}}\", \"{}\", \"{}\"]\n",
            script.display(),
            started.display(),
            go.display()
        ),
    );
    mkdir(&env.path("shots/sh010/out"));
    let daemon = Daemon::start(&env, &[], &[]);
    env.write("shots/sh010/a.dat", "a");
    wait_until("the converter to start", Duration::from_secs(20), || {
        started.exists()
    });
    std::fs::rename(env.path("shots/sh010/out"), env.path("shots/sh010/moved")).expect("move");
    std::os::unix::fs::symlink(&outside, env.path("shots/sh010/out")).expect("swap");
    std::fs::write(&go, "").expect("go");
    wait_until("the job to end", Duration::from_secs(20), || {
        jobs(&env)
            .iter()
            .any(|j| j["status"] == "failed" || j["status"] == "done")
    });
    let rows = jobs(&env);
    let outside_entries: Vec<_> = std::fs::read_dir(&outside)
        .expect("outside")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        outside_entries.is_empty(),
        "written outside: {outside_entries:?}"
    );
    let moved_product = env.path("shots/sh010/moved/a.out").exists();
    let result = rows[0]["result"].as_str().unwrap_or_default().to_string();
    assert!(
        (rows[0]["status"] == "failed" && result.contains("was moved to")) || moved_product,
        "{rows:?}"
    );
    eprintln!(
        "swapped output folder: status {}, {result}",
        rows[0]["status"]
    );
    assert_eq!(
        hidden_files(&env.path("shots")),
        Vec::<std::path::PathBuf>::new(),
        "the temp output was removed through the handle"
    );
    assert_eq!(daemon.stop(), Some(0));
}
