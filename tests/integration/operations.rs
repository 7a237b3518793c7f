//! The operations CLI against a running daemon, as a supervisor uses it: retries start at once,
//! a frame leads to its sequence's record, and typos are errors, never a silent "nothing to do".

use std::time::Duration;

use crate::daemon::Daemon;
use crate::env::{Env, stderr, stdout, wait_until};

/// Statuses of every job, through the real `shotrouter jobs --json`.
fn statuses(env: &Env) -> Vec<String> {
    let out = env.run(&["jobs", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    rows.iter()
        .map(|r| r["status"].as_str().expect("status").to_string())
        .collect()
}

/// A daemon whose one job has failed: its rule fails until the file `ok` exists.
fn daemon_with_a_failed_job(env: &Env) -> Daemon {
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nrules:\n  - name: convert\n    match: \"**/*.dat\"\n    run: [test, -e, \"{}\"]\n",
            env.path("ok").display()
        ),
    );
    std::fs::create_dir_all(env.path("shots/sh010")).expect("root");
    let daemon = Daemon::start(env, &[], &[]);
    env.write("shots/sh010/a.dat", "a");
    wait_until("the job to fail", Duration::from_secs(20), || {
        statuses(env) == ["failed"]
    });
    daemon
}

#[test]
fn issue_9_a_retry_on_an_idle_daemon_starts_within_a_second() {
    let env = Env::new();
    let daemon = daemon_with_a_failed_job(&env);
    wait_until("the daemon to be idle", Duration::from_secs(20), || {
        daemon
            .log_text()
            .lines()
            .any(|l| l.contains("idle:") && l.contains("failed=1"))
    });
    env.write("ok", "");
    let out = env.run(&["retry", "--failed"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("queued again: 1 job"),
        "{}",
        stdout(&out)
    );
    // The daemon looks for work queued by the CLI twice a second, whatever else it waits for.
    wait_until("the retried job to be done", Duration::from_secs(1), || {
        statuses(&env) == ["done"]
    });
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn issue_9_unknown_ids_and_rule_names_are_errors_with_a_suggestion() {
    let env = Env::new();
    let daemon = daemon_with_a_failed_job(&env);
    for (args, message) in [
        (&["retry", "999"][..], "no job 999 in the store"),
        (&["job", "999"][..], "no job 999 in the store"),
        (
            &["jobs", "--rule", "convret"][..],
            "no job of rule `convret` in the store; did you mean `convert`?",
        ),
        (
            &["cancel", "999", "998"][..],
            "no jobs 999, 998 in the store",
        ),
        (
            &["rerun", "--rule", "covnert"][..],
            "no job of rule `covnert` in the store; did you mean `convert`?",
        ),
        (
            &["retry", "--failed", "--rule", "nosuch-rule-at-all"][..],
            "no job of rule `nosuch-rule-at-all` in the store; rules with jobs: convert",
        ),
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).trim_end(), message, "{args:?}");
    }
    assert_eq!(statuses(&env), ["failed"], "nothing was changed");
    drop(daemon);
}

#[test]
fn issue_9_files_given_one_frame_shows_the_sequence_its_jobs_and_product() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: pack\n    match: \"*/comp/*.tif\"\n    sequence: {expect: \"1001-1003\"}\n    output: \"{dir}/{seq.name}.txt\"\n    run: [cp, \"{path}\", \"{out}\"]\n",
    );
    std::fs::create_dir_all(env.path("shots/sh010/comp")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    for frame in 1001..=1003 {
        env.write(format!("shots/sh010/comp/sh010_comp.{frame}.tif"), "frame");
    }
    wait_until("the sequence's job", Duration::from_secs(20), || {
        statuses(&env) == ["done"]
    });
    let out = env.run(&["files", "shots/sh010/comp/sh010_comp.1002.tif"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("a frame of the sequence ") && text.contains("sh010_comp.####.tif"),
        "{text}"
    );
    assert!(text.contains(" done ") && text.contains("pack"), "{text}");
    assert!(
        text.contains("sh010_comp.txt"),
        "the product is shown: {text}"
    );
    let json = env.run(&["files", "--json", "shots/sh010/comp/sh010_comp.1002.tif"]);
    let records: Vec<serde_json::Value> = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(records[0]["jobs"][0]["status"], "done");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn issue_23_lineage_walks_from_a_frame_to_the_product_and_back() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: pack\n    match: \"*/comp/*.tif\"\n    sequence: {expect: \"1001-1003\"}\n    output: \"{dir}/{seq.name}.txt\"\n    run: [cp, \"{path}\", \"{out}\"]\n",
    );
    std::fs::create_dir_all(env.path("shots/sh010/comp")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    for frame in 1001..=1003 {
        env.write(format!("shots/sh010/comp/sh010_comp.{frame}.tif"), "frame");
    }
    wait_until("the sequence's job", Duration::from_secs(20), || {
        statuses(&env) == ["done"]
    });
    // A relative frame path: its sequence, then the product made from it.
    let out = env.run(&["lineage", "--down", "shots/sh010/comp/sh010_comp.1002.tif"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with("sh010_comp.####.tif'"), "{text}");
    assert!(
        lines[1].contains("→ ") && lines[1].contains("sh010_comp.txt"),
        "{text}"
    );
    assert!(lines[1].contains("matched by `pack` job"), "{text}");
    let product = env.path("shots/sh010/comp/sh010_comp.txt");
    let json = env.run(&["lineage", "--json", product.to_str().expect("utf-8")]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(report["direction"], "up");
    assert_eq!(report["edges"][0]["role"], "matched");
    assert_eq!(report["edges"][0]["rule"], "pack");
    assert!(
        report["edges"][0]["input"]
            .as_str()
            .expect("input")
            .ends_with("sh010_comp.####.tif")
    );
    assert_eq!(report["edges"][0]["input_changed"], false);
    let stale = env.run(&["stale", "--json"]);
    assert_eq!(stale.status.code(), Some(0), "{}", stderr(&stale));
    assert_eq!(stdout(&stale).trim(), "[]");
    let rerun = env.run(&["rerun", "--stale", "--rule", "pack", "--json"]);
    assert_eq!(rerun.status.code(), Some(0), "{}", stderr(&rerun));
    let answer: serde_json::Value = serde_json::from_slice(&rerun.stdout).expect("JSON");
    assert_eq!(answer["queued"], 0);
    let both = env.run(&["rerun", "--stale", "--rule", "pack", "--since", "1h"]);
    assert_eq!(both.status.code(), Some(2), "--stale and --since conflict");
    assert_eq!(daemon.stop(), Some(0));
}
