//! Rules' `window:` with real processes and a fake clock (`SHOTROUTER_FAKE_NOW` names a file
//! holding the local time of day, which the test rewrites): outside the window a job stays
//! queued with the reason, moving the clock into the window starts it, `run-now` starts a
//! chosen one at once.

use std::time::Duration;

use crate::cluster::jobs;
use crate::daemon::Daemon;
use crate::env::{Env, stderr, wait_until};

/// (status, result) of the job on `rel`.
fn job_of(env: &Env, rel: &str) -> Option<(String, String)> {
    jobs(env, &[])
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with(rel)))
        .map(|r| {
            (
                r["status"].as_str().unwrap_or_default().to_string(),
                r["result"].as_str().unwrap_or_default().to_string(),
            )
        })
}

#[test]
fn issue_24_a_window_holds_jobs_with_the_reason_and_a_clock_moved_into_it_starts_them() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: night\n    match: \"**/*.dat\"\n    window: \"19:00-07:00\"\n    run: [\"true\"]\n  - name: any\n    match: \"**/*.any\"\n    run: [\"true\"]\n",
    );
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let clock = env.write("clock", "12:00\n");
    let clock = clock.to_str().expect("a UTF-8 temp path");
    let daemon = Daemon::start(&env, &[], &[("SHOTROUTER_FAKE_NOW", clock)]);
    env.write("shots/a.dat", "");
    env.write("shots/b.dat", "");
    env.write("shots/c.any", "");
    let held = (
        "queued".to_string(),
        "waiting for window 19:00–07:00".to_string(),
    );
    wait_until(
        "both night jobs held with the reason",
        Duration::from_secs(20),
        || {
            job_of(&env, "a.dat").as_ref() == Some(&held)
                && job_of(&env, "b.dat").as_ref() == Some(&held)
        },
    );
    wait_until(
        "the job without a window done",
        Duration::from_secs(20),
        || job_of(&env, "c.any").is_some_and(|(s, _)| s == "done"),
    );
    let text = env.run(&["jobs", "--status", "queued"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("waiting for window 19:00–07:00"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    let status = env.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .contains("2 queued jobs of rule night waiting for window 19:00–07:00"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    // run-now lets one start outside the window.
    let b = jobs(&env, &[])
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with("b.dat")))
        .and_then(|r| r["id"].as_i64())
        .expect("b's id");
    let out = env.run(&["run-now", &b.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait_until("the job run now done", Duration::from_secs(20), || {
        job_of(&env, "b.dat").is_some_and(|(s, _)| s == "done")
    });
    assert_eq!(
        job_of(&env, "a.dat").as_ref(),
        Some(&held),
        "the other still waits"
    );
    // The clock moves into the window: the held job starts.
    env.write("clock", "19:00\n");
    wait_until("the held job done", Duration::from_secs(20), || {
        job_of(&env, "a.dat").is_some_and(|(s, _)| s == "done")
    });
    assert_eq!(daemon.stop(), Some(0));
}
