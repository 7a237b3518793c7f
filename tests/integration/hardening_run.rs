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
