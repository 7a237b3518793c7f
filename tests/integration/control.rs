//! Control of what runs first, with real processes: a rule's `priority:` and `shotrouter bump`
//! order the jobs waiting for the one job slot.

use std::time::Duration;

use crate::daemon::Daemon;
use crate::env::{Env, stderr, stdout, wait_until};
use crate::http_api::{port_in, request};

/// Every job of `shotrouter jobs --json`: (id, rule, status).
fn jobs(env: &Env) -> Vec<(i64, String, String)> {
    let out = env.run(&["jobs", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    rows.iter()
        .map(|r| {
            (
                r["id"].as_i64().expect("id"),
                r["rule"].as_str().expect("rule").to_string(),
                r["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

/// The files whose jobs started, in the order they started (each job appends its name first).
fn started(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.path("started"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A daemon with one job slot (`jobs: 1`) taken by a gate job that runs until the file `open`
/// exists, and a second gate job claimed ready beside it: what arrives next stays queued.
/// Rules `low` (-1), `plain` (0), `high` (5) and `late` (-5) match their own extension.
fn gated_daemon(env: &Env, extra: &[&str]) -> Daemon {
    let started_file = env.path("started");
    let open = env.path("open");
    let rule = |name: &str, priority: Option<i32>, gate: bool| {
        let wait = if gate {
            format!("; while [ ! -e '{}' ]; do sleep 0.05; done", open.display())
        } else {
            String::new()
        };
        format!(
            "  - name: {name}\n    match: \"**/*.{name}\"\n{}    run: [sh, -c, \"echo {{name}} >> '{}'{wait}\"]\n",
            priority
                .map(|p| format!("    priority: {p}\n"))
                .unwrap_or_default(),
            started_file.display(),
        )
    };
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\njobs: 1\nrules:\n{}{}{}{}{}",
            rule("gate", None, true),
            rule("low", Some(-1), false),
            rule("plain", None, false),
            rule("high", Some(5), false),
            rule("late", Some(-5), false),
        ),
    );
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(env, extra, &[]);
    env.write("shots/1.gate", "");
    wait_until("the first gate job to run", Duration::from_secs(20), || {
        started(env) == ["1.gate"]
    });
    env.write("shots/2.gate", "");
    wait_until(
        "the second gate job to be claimed",
        Duration::from_secs(20),
        || {
            let all = jobs(env);
            all.len() == 2 && all.iter().all(|(_, _, s)| s != "queued")
        },
    );
    daemon
}

#[test]
fn issue_24_one_job_slot_starts_queued_jobs_in_priority_order_and_a_bump_goes_first() {
    let env = Env::new();
    let daemon = gated_daemon(&env, &[]);
    // They arrive lowest priority first; the one at -5 is bumped to the top.
    for name in ["a.late", "a.low", "a.plain", "a.high"] {
        env.write(format!("shots/{name}"), "");
    }
    wait_until("four jobs queued", Duration::from_secs(20), || {
        jobs(&env).iter().filter(|(_, _, s)| s == "queued").count() == 4
    });
    let late = jobs(&env)
        .into_iter()
        .find(|(_, rule, _)| rule == "late")
        .expect("the late job")
        .0;
    let out = env.run(&["bump", &late.to_string(), "--top"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("bumped {late} to priority 6\n"));
    wait_until(
        "the daemon to see the bump",
        Duration::from_secs(10),
        || daemon.log_text().contains("queued job bumped"),
    );
    env.write("open", "");
    wait_until("every job to start", Duration::from_secs(30), || {
        started(&env).len() == 6
    });
    assert_eq!(
        started(&env),
        ["1.gate", "2.gate", "a.late", "a.high", "a.plain", "a.low"]
    );
    daemon.wait_idle_with(6, Duration::from_secs(20));
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn issue_24_bump_refuses_a_priority_out_of_range_and_needs_one() {
    let env = Env::new();
    env.write("rules.yaml", "version: 1\nwatch: [shots]\nrules: []\n");
    let out = env.run(&["bump", "1", "--priority", "9999999"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("out of range"), "{}", stderr(&out));
    let out = env.run(&["bump", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--priority"), "{}", stderr(&out));
}

#[test]
fn issue_24_bump_over_http_needs_the_token_and_the_servers_own_origin() {
    let env = Env::new();
    env.write("token", "s3cret-token\n");
    let daemon = gated_daemon(
        &env,
        &["--http", "127.0.0.1:0", "--http-token-file", "token"],
    );
    let port = port_in(&daemon.log_text());
    env.write("shots/a.low", "");
    wait_until("a job queued", Duration::from_secs(20), || {
        jobs(&env).iter().any(|(_, _, s)| s == "queued")
    });
    let all = jobs(&env);
    let queued = all
        .iter()
        .find(|(_, _, s)| s == "queued")
        .expect("queued")
        .0;
    let running = all
        .iter()
        .find(|(_, _, s)| s == "running")
        .expect("running")
        .0;
    let bump = |id: i64, query: &str| format!("/api/v1/jobs/{id}/bump{query}");
    let good = "Authorization: Bearer s3cret-token";
    for (path, headers, status) in [
        (bump(queued, "?top=true"), &[][..], 401),
        (
            bump(queued, "?top=true"),
            &[good, "Origin: http://evil.example"][..],
            403,
        ),
        (bump(queued, ""), &[good][..], 400),
        (bump(queued, "?top=true&priority=3"), &[good][..], 400),
        (bump(queued, "?priority=9999999"), &[good][..], 400),
        (bump(running, "?top=true"), &[good][..], 409),
        (bump(999_999, "?top=true"), &[good][..], 404),
    ] {
        let reply = request(port, "POST", &path, headers);
        assert_eq!(reply.status, status, "{path} {headers:?}: {}", reply.body);
    }
    let run_now = |id: i64| format!("/api/v1/jobs/{id}/run-now");
    assert_eq!(request(port, "POST", &run_now(queued), &[]).status, 401);
    assert_eq!(
        request(port, "POST", &run_now(running), &[good]).status,
        409
    );
    let reply = request(port, "POST", &run_now(queued), &[good]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), serde_json::json!({ "run_now": queued }));
    let own_origin = format!("Origin: http://127.0.0.1:{port}");
    let reply = request(
        port,
        "POST",
        &bump(queued, "?priority=7"),
        &[good, &own_origin],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        serde_json::json!({ "id": queued, "priority": 7 })
    );
    env.write("open", "");
    daemon.wait_idle_with(3, Duration::from_secs(20));
    assert_eq!(daemon.stop(), Some(0));
}
