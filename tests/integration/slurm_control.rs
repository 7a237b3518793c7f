//! Issue 24's controls on farm rules, with a real one-node Slurm cluster (`helpers::slurm`)
//! and `slurm.max_jobs: 1` (one task in flight): a later, higher-priority rule's job is
//! submitted before the rest of an earlier backlog; a paused rule's job reaches Slurm only on
//! resume; a rule outside its `window:` (the fake clock) submits nothing until `run-now` or the
//! window opens; a task left running on the farm by a watcher restarted while its rule is
//! paused is followed to its end.

use std::time::{Duration, Instant};

use crate::cluster::jobs;
use crate::daemon::Daemon;
use crate::env::{Env, stderr, wait_until};
use crate::helpers::slurm::Cluster;

const LIMIT: Duration = Duration::from_secs(60);

/// Three farm rules, one task in flight at once: `backlog` (priority 0), `urgent` (priority 10)
/// and `night` (window 19:00–07:00). Each task appends its file's name to `order`, waits for
/// `gate`, then copies its input to its product.
fn rules(env: &Env) {
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let task = |name: &str, ext: &str, extra: &str| {
        format!(
            "  - name: {name}\n    match: \"*.{ext}\"\n    executor: slurm\n{extra}    output: \"{{dir}}/out/{{name}}\"\n    run: [sh, -c, 'echo \"$3\" >> \"$4\"; while [ ! -e \"$0\" ]; do sleep 0.1; done; cp \"$1\" \"$2\"', {gate}, \"{{path}}\", \"{{out}}\", \"{{name}}\", {order}]\n",
            gate = env.path("gate").display(),
            order = env.path("order").display(),
        )
    };
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nslurm: {{spool: {spool}, poll: 300ms, max_jobs: 1}}\nrules:\n{}{}{}",
            task("backlog", "bg", ""),
            task("urgent", "ur", "    priority: 10\n"),
            task("night", "nt", "    window: \"19:00-07:00\"\n"),
            spool = env.path("spool").display(),
        ),
    );
}

/// The farm tasks of shotrouter's rule `rule` Slurm knows, in any state (ended ones stay
/// listed for `MinJobAge`, 300 s).
fn tasks_of(cluster: &Cluster, rule: &str) -> usize {
    let out = cluster
        .command("squeue")
        .args(["-r", "--noheader", "--states=all", "--format=%j"])
        .output()
        .expect("squeue");
    let name = format!("shotrouter-{rule}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim() == name)
        .count()
}

/// Tasks of shotrouter's rules pending or running on the farm now.
fn in_flight(cluster: &Cluster) -> usize {
    let out = cluster
        .command("squeue")
        .args([
            "-r",
            "--noheader",
            "--states=PENDING,CONFIGURING,RUNNING,COMPLETING",
            "--format=%j",
        ])
        .output()
        .expect("squeue");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim().starts_with("shotrouter-"))
        .count()
}

/// (id, status, result) of the job on the file `name`.
fn job_of(env: &Env, state: &str, name: &str) -> Option<(i64, String, String)> {
    jobs(env, &["--state", state])
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("/{name}")))
        })
        .map(|r| {
            (
                r["id"].as_i64().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default().to_string(),
                r["result"].as_str().unwrap_or_default().to_string(),
            )
        })
}

fn status_of(env: &Env, state: &str, name: &str) -> Option<String> {
    job_of(env, state, name).map(|(_, status, _)| status)
}

fn run_ok(env: &Env, args: &[&str]) {
    let out = env.run(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
}

#[test]
fn issue_24_farm_priority_orders_submission_pause_and_window_hold_it() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = Env::new();
    rules(&env);
    let clock = env.write("clock", "12:00\n");
    let conf = cluster.conf().to_str().expect("utf-8").to_string();
    let daemon = Daemon::start(
        &env,
        &[],
        &[
            ("SLURM_CONF", &conf),
            ("SHOTROUTER_FAKE_NOW", clock.to_str().expect("utf-8")),
        ],
    );
    let state = env.path(".shotrouter");
    let state = state.to_str().expect("utf-8");

    // Priority: a backlog of three, one in flight; a higher-priority job arrives after them.
    for name in ["b1.bg", "b2.bg", "b3.bg"] {
        env.write(format!("shots/{name}"), name);
    }
    wait_until("one backlog task on the farm, two queued", LIMIT, || {
        let rows = jobs(&env, &["--state", state]);
        let queued = rows.iter().filter(|r| r["status"] == "queued").count();
        tasks_of(&cluster, "backlog") == 1 && queued == 2
    });
    // Two of them: rules of one priority would take turns (backlog, urgent, backlog, …).
    env.write("shots/u1.ur", "u1.ur");
    env.write("shots/u2.ur", "u2.ur");
    wait_until("the urgent jobs queued", LIMIT, || {
        status_of(&env, state, "u1.ur").as_deref() == Some("queued")
            && status_of(&env, state, "u2.ur").as_deref() == Some("queued")
    });
    assert_eq!(in_flight(&cluster), 1, "max_jobs: 1 holds the farm to one");
    std::fs::write(env.path("gate"), "go").expect("gate");
    wait_until("the five jobs done", LIMIT, || {
        jobs(&env, &["--state", state])
            .iter()
            .filter(|r| r["status"] == "done")
            .count()
            == 5
    });
    let order = std::fs::read_to_string(env.path("order")).expect("order");
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(order.len(), 5, "each task ran once: {order:?}");
    assert!(order[0].ends_with(".bg"), "{order:?}");
    assert_eq!(
        order[1..3],
        ["u1.ur", "u2.ur"],
        "the urgent jobs went to the farm before the rest of the backlog: {order:?}"
    );

    // Pause: the urgent rule's new job stays off the farm while later work runs past it; the
    // night rule's jobs are held by their window meanwhile.
    run_ok(&env, &["pause", "--rule", "urgent", "--state", state]);
    wait_until("the watcher to see the pause", LIMIT, || {
        daemon.log_text().contains("pauses changed")
    });
    env.write("shots/u3.ur", "u3.ur");
    env.write("shots/n1.nt", "n1.nt");
    env.write("shots/n2.nt", "n2.nt");
    env.write("shots/b4.bg", "b4.bg");
    wait_until("the backlog job after the paused one done", LIMIT, || {
        status_of(&env, state, "b4.bg").as_deref() == Some("done")
    });
    let held_reason = "waiting for window 19:00–07:00";
    let held = |name: &str| {
        job_of(&env, state, name).is_some_and(|(_, s, r)| s == "queued" && r == held_reason)
    };
    wait_until("the night jobs held with the reason", LIMIT, || {
        held("n1.nt") && held("n2.nt")
    });
    // A few seconds with nothing else to run: still nothing of the paused or closed rules.
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            status_of(&env, state, "u3.ur").as_deref(),
            Some("queued"),
            "the paused rule's job stays queued"
        );
        assert_eq!(tasks_of(&cluster, "urgent"), 2, "nothing new submitted");
        assert_eq!(tasks_of(&cluster, "night"), 0, "nothing submitted");
        std::thread::sleep(Duration::from_millis(200));
    }

    // run-now: one night job goes to the farm outside its window; the other still waits.
    let (n1, _, _) = job_of(&env, state, "n1.nt").expect("n1");
    run_ok(&env, &["run-now", &n1.to_string(), "--state", state]);
    wait_until("the job run now done", LIMIT, || {
        status_of(&env, state, "n1.nt").as_deref() == Some("done")
    });
    assert!(held("n2.nt"), "{:?}", job_of(&env, state, "n2.nt"));
    assert_eq!(tasks_of(&cluster, "night"), 1);
    assert_eq!(status_of(&env, state, "u3.ur").as_deref(), Some("queued"));

    // Resume: the paused rule's job goes to the farm.
    run_ok(&env, &["resume", "--rule", "urgent", "--state", state]);
    wait_until("the resumed rule's job done", LIMIT, || {
        status_of(&env, state, "u3.ur").as_deref() == Some("done")
    });
    assert_eq!(tasks_of(&cluster, "urgent"), 3);
    assert!(held("n2.nt"), "{:?}", job_of(&env, state, "n2.nt"));

    // The window opens: the held night job goes to the farm.
    env.write("clock", "19:00\n");
    wait_until("the held night job done", LIMIT, || {
        status_of(&env, state, "n2.nt").as_deref() == Some("done")
    });
    assert_eq!(tasks_of(&cluster, "night"), 2);
    for name in [
        "b1.bg", "b2.bg", "b3.bg", "b4.bg", "u1.ur", "u2.ur", "u3.ur", "n1.nt", "n2.nt",
    ] {
        assert_eq!(
            std::fs::read(env.path(format!("shots/out/{name}"))).expect("product"),
            name.as_bytes()
        );
    }
    assert_eq!(daemon.stop(), Some(0));
}

/// A watcher restarted while its rule is paused: the task it left on the farm is followed and
/// its product published (not left waiting for the resume, then cancelled as nobody's); the
/// rule's new job still waits for the resume.
#[test]
fn issue_24_a_farm_task_left_running_is_followed_after_a_restart_while_its_rule_is_paused() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = Env::new();
    rules(&env);
    let conf = cluster.conf().to_str().expect("utf-8").to_string();
    let vars = [("SLURM_CONF", conf.as_str())];
    let daemon = Daemon::start(&env, &[], &vars);
    let state = env.path(".shotrouter");
    let state = state.to_str().expect("utf-8");
    env.write("shots/b1.bg", "b1.bg");
    wait_until("the task on the farm", LIMIT, || {
        tasks_of(&cluster, "backlog") == 1
            && status_of(&env, state, "b1.bg").as_deref() == Some("running")
    });
    run_ok(&env, &["pause", "--rule", "backlog", "--state", state]);
    assert_eq!(daemon.stop(), Some(0), "a clean stop");
    let daemon = Daemon::start(&env, &[], &vars);
    env.write("shots/b2.bg", "b2.bg");
    std::fs::write(env.path("gate"), "go").expect("gate");
    wait_until(
        "the task left running to be followed and done",
        LIMIT,
        || status_of(&env, state, "b1.bg").as_deref() == Some("done"),
    );
    let (b1, _, _) = job_of(&env, state, "b1.bg").expect("b1");
    let log = env.run(&["job", &b1.to_string(), "--state", state]);
    let text = String::from_utf8_lossy(&log.stdout);
    assert!(text.contains("following Slurm task"), "{text}");
    assert_eq!(
        std::fs::read(env.path("shots/out/b1.bg")).expect("product"),
        b"b1.bg"
    );
    assert_eq!(
        status_of(&env, state, "b2.bg").as_deref(),
        Some("queued"),
        "the paused rule's new job waits"
    );
    assert_eq!(tasks_of(&cluster, "backlog"), 1, "nothing new submitted");
    run_ok(&env, &["resume", "--rule", "backlog", "--state", state]);
    wait_until("the new job done on resume", LIMIT, || {
        status_of(&env, state, "b2.bg").as_deref() == Some("done")
    });
    assert_eq!(tasks_of(&cluster, "backlog"), 2);
    assert_eq!(daemon.stop(), Some(0));
}
