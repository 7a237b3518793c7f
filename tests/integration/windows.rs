//! Rules' `window:` with real processes and a fake clock (`SHOTROUTER_FAKE_NOW` names a file
//! holding the local time of day, which the test rewrites): outside the window a job stays
//! queued with the reason, moving the clock into the window starts it, `run-now` starts a
//! chosen one at once. A `shotrouter worker` (no rules file) claims no job of a rule outside
//! its window by its own clock, on SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use crate::cluster::{Worker, jobs, sqlite_store};
use crate::daemon::Daemon;
use crate::env::{Env, stderr, stdout, wait_until};

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

/// (status, node) of the job on `rel`, in `store`.
fn claim_of(env: &Env, store: &str, rel: &str) -> Option<(String, String)> {
    jobs(env, &["--store", store])
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with(rel)))
        .map(|r| {
            (
                r["status"].as_str().unwrap_or_default().to_string(),
                r["node"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// A watcher that runs nothing (`--no-run`) queues a windowed rule's job at 12:00; a worker on
/// `store` whose clock says 12:00 too runs another rule's job but leaves that one queued for
/// 5 s (two looks and more), then runs it once its clock says 19:00.
fn a_worker_claims_no_job_outside_its_window(env: &Env, store: &str) {
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: night\n    match: \"**/*.dat\"\n    window: \"19:00-07:00\"\n    run: [\"true\"]\n  - name: any\n    match: \"**/*.any\"\n    run: [\"true\"]\n",
    );
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let clock = env.write("clock", "12:00\n");
    let clock = clock.to_str().expect("a UTF-8 temp path");
    let fake = [("SHOTROUTER_FAKE_NOW", clock)];
    let watcher = Daemon::start(env, &["--no-run", "--store", store], &fake);
    env.write("shots/a.dat", "");
    wait_until("the night job queued", Duration::from_secs(20), || {
        claim_of(env, store, "a.dat").is_some_and(|(s, _)| s == "queued")
    });
    let worker = Worker::start_with(env, "nightly", &["--store", store], &fake);
    env.write("shots/c.any", "");
    let done_here = (String::from("done"), String::from("nightly"));
    wait_until(
        "the worker to run the job without a window",
        Duration::from_secs(20),
        || claim_of(env, store, "c.any").as_ref() == Some(&done_here),
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let (status, _) = claim_of(env, store, "a.dat").expect("the night job");
        assert_eq!(
            status,
            "queued",
            "claimed outside its window; the worker's log:\n{}",
            worker.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        worker.log_text().contains("outside=night"),
        "the worker says which rules are closed: {}",
        worker.log_text()
    );
    // No watcher holds it, yet `jobs` and `status` (by their own clock) say why it waits.
    let read = |args: &[&str]| {
        let mut full = args.to_vec();
        full.extend_from_slice(&["--store", store]);
        let out = env
            .command(&full)
            .env("SHOTROUTER_FAKE_NOW", clock)
            .output()
            .expect("shotrouter runs");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    let listed = read(&["jobs", "--status", "queued"]);
    assert!(
        listed.contains("waiting for window 19:00–07:00"),
        "{listed}"
    );
    let status = read(&["status"]);
    assert!(
        status.contains("1 queued job of rule night waiting for window 19:00–07:00"),
        "{status}"
    );
    env.write("clock", "19:00\n");
    wait_until(
        "the worker to run the night job in its window",
        Duration::from_secs(20),
        || claim_of(env, store, "a.dat").as_ref() == Some(&done_here),
    );
    assert_eq!(worker.stop(), Some(0));
    assert_eq!(watcher.stop(), Some(0));
}

#[test]
fn issue_24_a_worker_claims_no_job_outside_its_rules_window() {
    let env = Env::new();
    let store = sqlite_store(&env);
    a_worker_claims_no_job_outside_its_window(&env, &store);
}

#[test]
fn issue_24_pg_a_worker_claims_no_job_outside_its_rules_window() {
    let env = Env::new();
    let url = crate::pg::fresh_store_url();
    a_worker_claims_no_job_outside_its_window(&env, &url);
}

/// Runs `watch --once` with the clock `clock` to its end (it must end within 30 s); its exit
/// code and its log.
fn watch_once(env: &Env, clock: &str) -> (Option<i32>, String) {
    let log = env.path("once.log");
    let mut child = env
        .command(&["watch", "--once", "rules.yaml"])
        .env("SHOTROUTER_FAKE_NOW", clock)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("starts");
    let mut status = None;
    wait_until("watch --once to exit", Duration::from_secs(30), || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (status.and_then(|s| s.code()), text)
}

#[test]
fn issue_24_watch_once_ends_when_only_held_jobs_are_left_and_leaves_them_queued() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: night\n    match: \"**/*.dat\"\n    window: \"19:00-07:00\"\n    run: [\"true\"]\n  - name: any\n    match: \"**/*.any\"\n    run: [\"true\"]\n",
    );
    let clock = env.write("clock", "12:00\n");
    let clock = clock.to_str().expect("a UTF-8 temp path");
    env.write("shots/a.dat", "");
    env.write("shots/c.any", "");
    let (code, log) = watch_once(&env, clock);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("jobs held, left queued in the store")
            && log.contains("night: 1 waiting for window 19:00–07:00"),
        "{log}"
    );
    assert_eq!(
        job_of(&env, "a.dat"),
        Some((
            "queued".to_string(),
            "waiting for window 19:00–07:00".to_string()
        ))
    );
    assert_eq!(
        job_of(&env, "c.any").map(|(s, _)| s).as_deref(),
        Some("done")
    );

    // In the window the held job runs; a paused rule's new job is held in turn.
    let out = env.run(&["pause", "--rule", "any"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    env.write("shots/d.any", "");
    env.write("clock", "19:00\n");
    let (code, log) = watch_once(&env, clock);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("any: 1 paused"), "{log}");
    assert_eq!(
        job_of(&env, "a.dat").map(|(s, _)| s).as_deref(),
        Some("done")
    );
    assert_eq!(
        job_of(&env, "d.any").map(|(s, _)| s).as_deref(),
        Some("queued")
    );

    // Resumed, nothing is held: no word of held jobs.
    let out = env.run(&["resume", "--rule", "any"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (code, log) = watch_once(&env, clock);
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("jobs held"), "{log}");
    assert_eq!(
        job_of(&env, "d.any").map(|(s, _)| s).as_deref(),
        Some("done")
    );
}
