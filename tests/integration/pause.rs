//! Pause, resume and drain with real processes: a paused worker (SQLite and PostgreSQL) or
//! watcher claims nothing while another runs the queue; a paused rule's jobs stay queued and
//! start on resume, across a restart; the API's pause; a worker drained by SIGUSR1.

use std::time::{Duration, Instant};

use crate::cluster::{Worker, arrive, jobs, sqlite_store, write_rules};
use crate::daemon::Daemon;
use crate::env::{Env, stderr, stdout, wait_until};
use crate::http_api::{get, port_in, request};

fn run_ok(env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// A paused node claims nothing for 10 s while another runs jobs, on `store` (a state folder
/// or a `postgres://` URL); once resumed it takes its share.
fn a_paused_node_claims_nothing_while_another_runs(env: &Env, store: &str) {
    write_rules(env, 200);
    let store_args = ["--store", store];
    let _watcher = Daemon::start(env, &["--no-run", "--store", store], &[]);
    let pause = run_ok(env, &["pause", "--node", "paused", "--store", store]);
    assert!(
        pause.starts_with("paused node paused:"),
        "the pause is kept in the store before the node even starts: {pause}"
    );
    let paused = Worker::start(env, store, "paused", &["--jobs", "2"]);
    let runner = Worker::start(env, store, "runner", &["--jobs", "1"]);
    let names = arrive(env, 80);
    let status = run_ok(env, &["status", "--store", store]);
    assert!(status.contains("paused: node paused since"), "{status}");
    assert!(status.contains("worker paused: heartbeat"), "{status}");
    let report: serde_json::Value =
        serde_json::from_str(&run_ok(env, &["status", "--json", "--store", store])).expect("json");
    let flags: Vec<(&str, bool)> = report["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| Some((n["name"].as_str()?, n["paused"].as_bool()?)))
        .collect();
    assert!(
        flags.contains(&("paused", true)) && flags.contains(&("runner", false)),
        "each node says whether it is paused: {flags:?}"
    );
    let taken_by = |node: &str| {
        let rows = jobs(env, &store_args);
        let by = rows.iter().filter(|r| r["node"] == node).count();
        let done = rows.iter().filter(|r| r["status"] == "done").count();
        (by, done)
    };
    let start = Instant::now();
    let mut done_while_paused = 0;
    while start.elapsed() < Duration::from_secs(10) {
        let (by_paused, done) = taken_by("paused");
        assert_eq!(by_paused, 0, "the paused node claimed a job");
        done_while_paused = done;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        done_while_paused >= 10,
        "the other node ran jobs meanwhile: {done_while_paused}"
    );
    assert_eq!(
        run_ok(env, &["resume", "--node", "paused", "--store", store]),
        "resumed node paused\n"
    );
    wait_until("the resumed node to claim", Duration::from_secs(20), || {
        taken_by("paused").0 > 0
    });
    wait_until("every job done", Duration::from_secs(60), || {
        taken_by("paused").1 == names.len()
    });
    assert_eq!(paused.stop(), Some(0));
    assert_eq!(runner.stop(), Some(0));
}

#[test]
fn issue_24_a_paused_node_claims_nothing_for_10_s_while_another_runs_jobs() {
    let env = Env::new();
    let store = sqlite_store(&env);
    a_paused_node_claims_nothing_while_another_runs(&env, &store);
}

#[test]
fn issue_24_pg_a_paused_node_claims_nothing_for_10_s_while_another_runs_jobs() {
    let env = Env::new();
    let url = crate::pg::fresh_store_url();
    a_paused_node_claims_nothing_while_another_runs(&env, &url);
}

#[test]
fn issue_24_a_paused_rules_jobs_stay_queued_and_start_on_resume() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\njobs: 1\nrules:\n  - name: archive\n    match: \"**/*.arc\"\n    run: [\"true\"]\n  - name: review\n    match: \"**/*.rev\"\n    run: [\"true\"]\n",
    );
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    run_ok(&env, &["pause", "--rule", "archive"]);
    wait_until(
        "the watcher to see the pause",
        Duration::from_secs(10),
        || daemon.log_text().contains("pauses changed"),
    );
    // The archive file arrives first: with the rule paused, the review after it runs.
    env.write("shots/a.arc", "");
    env.write("shots/a.rev", "");
    let status_of = |rule: &str| {
        jobs(&env, &[])
            .iter()
            .find(|r| r["rule"] == rule)
            .map(|r| r["status"].as_str().unwrap_or_default().to_string())
    };
    wait_until("the review job done", Duration::from_secs(20), || {
        status_of("review").as_deref() == Some("done")
    });
    assert_eq!(status_of("archive").as_deref(), Some("queued"));
    // A restart keeps the pause: it is in the store.
    assert_eq!(daemon.stop(), Some(0));
    let daemon = Daemon::start(&env, &[], &[]);
    env.write("shots/b.rev", "");
    wait_until(
        "the second review job done",
        Duration::from_secs(20),
        || {
            jobs(&env, &[])
                .iter()
                .filter(|r| r["status"] == "done")
                .count()
                == 2
        },
    );
    assert_eq!(status_of("archive").as_deref(), Some("queued"));
    assert_eq!(
        run_ok(&env, &["resume", "--rule", "archive"]),
        "resumed rule archive\n"
    );
    wait_until("the archive job done", Duration::from_secs(20), || {
        status_of("archive").as_deref() == Some("done")
    });
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn issue_24_pause_and_resume_over_http_need_the_token_and_show_in_the_status() {
    let env = Env::new();
    env.write("rules.yaml", "version: 1\nwatch: [shots]\nrules: []\n");
    env.write("token", "s3cret-token\n");
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(
        &env,
        &["--http", "127.0.0.1:0", "--http-token-file", "token"],
        &[],
    );
    let port = port_in(&daemon.log_text());
    let good = "Authorization: Bearer s3cret-token";
    let pause = "/api/v1/rules/archive/pause";
    for (headers, status) in [
        (&[][..], 401),
        (&[good, "Origin: http://evil.example"][..], 403),
    ] {
        let reply = request(port, "POST", pause, headers);
        assert_eq!(reply.status, status, "{headers:?}: {}", reply.body);
    }
    assert!(
        get(port, "/api/v1/status").json()["store"]["paused"]
            .as_array()
            .expect("paused")
            .is_empty()
    );
    for (path, changed) in [
        (pause, true),
        (pause, false),
        ("/api/v1/nodes/render07/pause", true),
    ] {
        let reply = request(port, "POST", path, &[good]);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["changed"], changed, "{path}");
    }
    // The status view is refreshed in the background: the pauses show within its period.
    let listed = || -> Vec<(String, String)> {
        get(port, "/api/v1/status").json()["store"]["paused"]
            .as_array()
            .expect("paused")
            .iter()
            .map(|p| {
                (
                    p["kind"].as_str().expect("kind").to_string(),
                    p["name"].as_str().expect("name").to_string(),
                )
            })
            .collect()
    };
    let want = [
        ("node".to_string(), "render07".to_string()),
        ("rule".to_string(), "archive".to_string()),
    ];
    wait_until(
        "the status to list both pauses",
        Duration::from_secs(10),
        || {
            let mut listed = listed();
            listed.sort();
            listed == want
        },
    );
    let reply = request(port, "POST", "/api/v1/rules/archive/resume", &[good]);
    assert_eq!(reply.json()["changed"], true, "{}", reply.body);
    let status = run_ok(&env, &["status"]);
    assert!(
        status.contains("paused: node render07 since") && !status.contains("rule archive"),
        "{status}"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn issue_24_a_worker_drains_on_sigusr1_and_exits_when_its_jobs_have_ended() {
    let env = Env::new();
    let open = env.path("open");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nrules:\n  - name: gate\n    match: \"**/*.dat\"\n    run: [sh, -c, \"while [ ! -e '{}' ]; do sleep 0.05; done\"]\n",
            open.display()
        ),
    );
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    let store = sqlite_store(&env);
    let worker = Worker::start(&env, &store, "w", &["--jobs", "2"]);
    env.write("shots/a.dat", "");
    let status_of = |rel: &str| {
        jobs(&env, &[])
            .iter()
            .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with(rel)))
            .map(|r| r["status"].as_str().unwrap_or_default().to_string())
    };
    wait_until("the first job to run", Duration::from_secs(20), || {
        status_of("a.dat").as_deref() == Some("running")
    });
    worker.signal(nix::sys::signal::Signal::SIGUSR1);
    wait_until("the worker to drain", Duration::from_secs(10), || {
        worker.log_text().contains("draining: no new jobs")
    });
    // A free slot, and a job for it: the draining worker leaves it queued.
    env.write("shots/b.dat", "");
    wait_until("the second job queued", Duration::from_secs(20), || {
        status_of("b.dat").as_deref() == Some("queued")
    });
    env.write("open", "");
    assert_eq!(worker.wait(), Some(0), "drained, it exits by itself");
    assert_eq!(status_of("a.dat").as_deref(), Some("done"));
    assert_eq!(status_of("b.dat").as_deref(), Some("queued"));
}

#[test]
fn issue_24_a_paused_watcher_records_new_jobs_queued_and_runs_them_on_resume() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: copy\n    match: \"**/*.dat\"\n    run: [\"true\"]\n",
    );
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    let status: serde_json::Value =
        serde_json::from_str(&run_ok(&env, &["status", "--json"])).expect("JSON");
    let name = status["nodes"][0]["name"]
        .as_str()
        .expect("the watcher's node name")
        .to_string();
    run_ok(&env, &["pause", "--node", &name]);
    wait_until(
        "the watcher to see the pause",
        Duration::from_secs(10),
        || daemon.log_text().contains("pauses changed"),
    );
    // With a free slot and no pause, a new job is claimed in the very write that records it:
    // recorded queued, it was held.
    env.write("shots/a.dat", "");
    wait_until("the job recorded", Duration::from_secs(20), || {
        !jobs(&env, &[]).is_empty()
    });
    assert_eq!(jobs(&env, &[])[0]["status"], "queued");
    let text = run_ok(&env, &["status"]);
    assert!(
        text.lines()
            .any(|l| l.contains(&format!(" {name}: ")) && l.ends_with(", paused"))
            && text.contains(&format!("paused: node {name} since")),
        "{text}"
    );
    run_ok(&env, &["resume", "--node", &name]);
    wait_until(
        "the job done after the resume",
        Duration::from_secs(20),
        || jobs(&env, &[])[0]["status"] == "done",
    );
    assert_eq!(daemon.stop(), Some(0));
}

/// A drain holds the jobs claimed ahead too: with one slot, the job running goes on while the
/// next, already claimed and waiting for the slot, is given back when the node is paused; it
/// does not start when the slot frees, and runs on resume.
#[test]
fn issue_24_a_paused_watcher_gives_back_the_job_it_claimed_ahead() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\njobs: 1\nrules:\n  - name: slow\n    match: \"**/*.dat\"\n    run: [sleep, \"3\"]\n",
    );
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    env.write("shots/a.dat", "");
    env.write("shots/b.dat", "");
    let status_of = |name: &str| {
        jobs(&env, &[])
            .iter()
            .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with(name)))
            .and_then(|r| r["status"].as_str().map(str::to_string))
    };
    wait_until(
        "one running, one claimed ahead",
        Duration::from_secs(20),
        || {
            let (a, b) = (status_of("a.dat"), status_of("b.dat"));
            let running = [&a, &b]
                .iter()
                .filter(|s| s.as_deref() == Some("running"))
                .count();
            let claimed = [&a, &b]
                .iter()
                .filter(|s| s.as_deref() == Some("claimed"))
                .count();
            running == 1 && claimed == 1
        },
    );
    let first = if status_of("a.dat").as_deref() == Some("running") {
        ("a.dat", "b.dat")
    } else {
        ("b.dat", "a.dat")
    };
    let status: serde_json::Value =
        serde_json::from_str(&run_ok(&env, &["status", "--json"])).expect("JSON");
    let name = status["nodes"][0]["name"]
        .as_str()
        .expect("node")
        .to_string();
    run_ok(&env, &["pause", "--node", &name]);
    wait_until("the claim given back", Duration::from_secs(10), || {
        daemon
            .log_text()
            .contains("claimed jobs not started given back")
    });
    wait_until("the running job done", Duration::from_secs(20), || {
        status_of(first.0).as_deref() == Some("done")
    });
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            status_of(first.1).as_deref(),
            Some("queued"),
            "the job claimed ahead started on a paused node"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    run_ok(&env, &["resume", "--node", &name]);
    wait_until(
        "the held job done after the resume",
        Duration::from_secs(30),
        || status_of(first.1).as_deref() == Some("done"),
    );
    let rows = jobs(&env, &[]);
    assert!(
        rows.iter().all(|r| r["attempts"] == 1),
        "a given-back claim is not an attempt: {rows:#?}"
    );
    assert_eq!(daemon.stop(), Some(0));
}
