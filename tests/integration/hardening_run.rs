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
