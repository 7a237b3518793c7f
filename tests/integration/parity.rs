//! Issue 19: what a `shotrouter worker` does as a watcher does, and what a watcher that runs
//! jobs does as a worker does, with real processes on a shared store.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::cluster::{BindMount, Worker, jobs};
use crate::daemon::Daemon;
use crate::env::{Env, wait_until};
use crate::notify::Hook;

/// The one job of the store.
fn the_job(env: &Env) -> serde_json::Value {
    let rows = jobs(env, &[]);
    assert_eq!(rows.len(), 1, "one job: {rows:?}");
    rows[0].clone()
}

/// A claim that reached the store but whose answer the watcher never read (its connection
/// broke at the commit) is simulated at the store: the test claims a queued job under the
/// watcher's own node name while the watcher runs. The watcher gives it back at a heartbeat,
/// and a worker then runs it; without that it stays claimed for as long as the watcher lives.
#[test]
fn issue_19_a_watcher_gives_back_a_claim_whose_answer_it_lost() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("shots")).expect("root");
    // Tagged: the watcher queues it for workers and never claims it itself.
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: copy\n    match: \"*.dat\"\n    tags: [later]\n    output: \"{dir}/{stem}.out\"\n    steps: [[cp, \"{path}\", \"{out}\"]]\n",
    );
    let watcher = Daemon::start(&env, &[], &[]);
    env.write("shots/a b.dat", "a");
    wait_until("the job queued", Duration::from_secs(20), || {
        jobs(&env, &[])
            .first()
            .is_some_and(|r| r["status"] == "queued")
    });
    let node = shotrouter::store::sqlite::node_name();
    let location = shotrouter::store::Location::Folder(env.path(".shotrouter"));
    let mut store = shotrouter::store::open_worker_queue(&location, &node).expect("open the store");
    let claimed = store
        .claim_next(
            &shotrouter::store::queue::ClaimFilter {
                tags: vec!["later".to_string()],
                ..Default::default()
            },
            1,
        )
        .expect("claim");
    assert_eq!(claimed.len(), 1, "claimed under the watcher's name");
    let job = the_job(&env);
    assert_eq!(
        (job["status"].as_str(), job["node"].as_str()),
        (Some("claimed"), Some(node.as_str()))
    );
    // The watcher heartbeats every 10 s.
    wait_until(
        "the watcher to give the claim back",
        Duration::from_secs(25),
        || the_job(&env)["status"] == "queued",
    );
    assert!(
        watcher.log_text().contains("its answer was lost"),
        "{}",
        watcher.log_text()
    );
    let job = the_job(&env);
    assert_eq!(job["attempts"], 0, "the attempt was given back: {job}");
    let store_arg = env.path(".shotrouter").display().to_string();
    let worker = Worker::start(&env, &store_arg, "w1", &["--tags", "later"]);
    wait_until("the job done", Duration::from_secs(20), || {
        the_job(&env)["status"] == "done"
    });
    assert_eq!(
        std::fs::read(env.path("shots/a b.out")).expect("product"),
        b"a"
    );
    assert_eq!(worker.stop(), Some(0));
}

/// The rule's `notify:` travels with the job: the worker that runs it tells the webhook of a
/// job done and a command (argv, JSON on stdin) of one failed, as the watcher would have.
#[test]
fn issue_19_a_worker_tells_the_rules_notify_targets_of_its_jobs_ends() {
    let env = Env::new();
    let hook = Hook::start(0);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let received = env.path("received.jsonl");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nnotify:\n  - on: [done, failed]\n    webhook: \"{url}\"\nrules:\n  - name: ok\n    match: \"*.ok\"\n    run: [\"true\"]\n  - name: bad\n    match: \"*.bad\"\n    run: [\"false\"]\n    notify:\n      - on: [failed]\n        command: [sh, -c, 'cat >> \"$1\"; echo >> \"$1\"', sh, \"{received}\"]\n",
            url = hook.url,
            received = received.display()
        ),
    );
    let watcher = Daemon::start(&env, &["--no-run"], &[]);
    let store = env.path(".shotrouter").display().to_string();
    let worker = Worker::start(&env, &store, "w1", &[]);
    env.write("shots/a b.ok", "x");
    env.write("shots/c $(d).bad", "x");
    wait_until("the done webhook", Duration::from_secs(30), || {
        !hook.bodies().is_empty()
    });
    wait_until("the failed command", Duration::from_secs(30), || {
        std::fs::read_to_string(&received).is_ok_and(|t| t.ends_with('\n'))
    });
    let bodies = hook.bodies();
    assert_eq!(
        bodies.len(),
        1,
        "only `done` goes to the webhook: {bodies:?}"
    );
    assert_eq!(bodies[0]["event"], "done");
    assert_eq!(bodies[0]["rule"], "ok");
    assert_eq!(bodies[0]["node"], "w1", "told by the worker that ran it");
    assert!(bodies[0]["started_at_ms"].is_i64() && bodies[0]["duration_ms"].is_u64());
    let text = std::fs::read_to_string(&received).expect("the command ran");
    let told: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON on stdin"))
        .collect();
    assert_eq!(told.len(), 1, "{text}");
    assert_eq!(told[0]["event"], "failed");
    assert_eq!(told[0]["rule"], "bad");
    assert_eq!(told[0]["node"], "w1");
    assert_eq!(told[0]["reason"], "step 1 exited with status 1");
    assert!(
        told[0]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("shots/c $(d).bad")),
        "{text}"
    );
    assert_eq!(worker.stop(), Some(0));
    drop(watcher);
}

/// A worker stopped (SIGSTOP) past its lease loses its claim to another; resumed, its attempt
/// ends, but its end is refused and it tells nothing: the webhook hears the job's `done` once,
/// from the worker that holds the claim, and no `failed: cancelled` for the job it lost.
#[test]
fn a_worker_that_lost_its_claim_tells_nothing_and_done_is_told_once() {
    let env = Env::new();
    let hook = Hook::start(0);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nnotify:\n  - on: [done, failed]\n    webhook: \"{url}\"\nrules:\n  - name: slow\n    match: \"*.dat\"\n    run: [sh, -c, 'sleep 1.5']\n",
            url = hook.url,
        ),
    );
    let watcher = Daemon::start(&env, &["--no-run"], &[]);
    let store = env.path(".shotrouter").display().to_string();
    let lease = ["--jobs", "1", "--lease", "1s"];
    let frozen = Worker::start(&env, &store, "frozen", &lease);
    env.write("shots/a.dat", "x");
    wait_until(
        "the job to be claimed by `frozen`",
        Duration::from_secs(20),
        || frozen.log_text().contains("claimed"),
    );
    frozen.signal(Signal::SIGSTOP);
    let rescuer = Worker::start(&env, &store, "rescuer", &lease);
    wait_until("the rescuer's `done`", Duration::from_secs(30), || {
        !hook.bodies().is_empty()
    });
    // Resumed, its step has ended meanwhile (or is stopped now): its attempt ends too.
    frozen.signal(Signal::SIGCONT);
    wait_until(
        "the frozen worker's attempt to end",
        Duration::from_secs(20),
        || frozen.log_text().contains(" end"),
    );
    // Its stop gives notifications still waiting their time to be delivered.
    assert_eq!(frozen.stop(), Some(0));
    assert_eq!(rescuer.stop(), Some(0));
    let bodies = hook.bodies();
    let told: Vec<(&str, &str)> = bodies
        .iter()
        .map(|b| {
            (
                b["event"].as_str().unwrap_or_default(),
                b["node"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(told, [("done", "rescuer")], "{bodies:?}");
    let job = the_job(&env);
    assert_eq!(
        (&job["status"], &job["node"]),
        (&"done".into(), &"rescuer".into())
    );
    drop(watcher);
}

/// `progress: ffmpeg` on a job a worker runs: a real ffmpeg read at its native rate, whose
/// frames are seen advancing in `shotrouter job ID --json` (the store) while it runs.
#[test]
fn issue_19_a_workers_ffmpeg_progress_shows_in_shotrouter_job() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("shots")).expect("root");
    // 264 frames at 24 fps: 11 s under `-re`, time for two progress writes (one per 5 s) on
    // the way.
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=24",
        ])
        .args(["-frames:v", "264", "-c:v", "mpeg4", "-y"])
        .arg(env.path("in.mov"))
        .status()
        .expect("ffmpeg runs");
    assert!(made.success());
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: review\n    match: \"*.mov\"\n    progress: ffmpeg\n    steps:\n      - [ffmpeg, -v, error, -re, -i, \"{path}\", -f, null, \"-\"]\n",
    );
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    let store = env.path(".shotrouter").display().to_string();
    let worker = Worker::start(&env, &store, "w1", &[]);
    std::fs::rename(env.path("in.mov"), env.path("shots/a b.mov")).expect("move");
    wait_until("the job running", Duration::from_secs(30), || {
        jobs(&env, &[])
            .first()
            .is_some_and(|r| r["status"] == "running")
    });
    let id = the_job(&env)["id"].as_i64().expect("id").to_string();
    let mut frames: Vec<u64> = Vec::new();
    let mut total = None;
    wait_until("the job done", Duration::from_secs(60), || {
        let out = env.run(&["job", &id, "--json"]);
        let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        if let Some(frame) = job["progress"]["frame"].as_u64() {
            assert_eq!(
                job["status"], "running",
                "progress only while running: {job}"
            );
            if frames.last() != Some(&frame) {
                frames.push(frame);
            }
            total = job["progress"]["total_frames"].as_u64();
        }
        job["status"] == "done"
    });
    assert!(
        frames.windows(2).all(|w| w[0] <= w[1]),
        "frames only advance: {frames:?}"
    );
    assert!(
        frames.iter().filter(|&&f| f > 0 && f < 264).count() >= 2,
        "seen advancing on the way: {frames:?}"
    );
    assert_eq!(total, Some(264), "the total is the probed count");
    let done = env.run(&["job", &id, "--json"]);
    let done: serde_json::Value = serde_json::from_slice(&done.stdout).expect("JSON");
    assert!(
        done.get("progress").is_none(),
        "no progress once done: {done}"
    );
    assert_eq!(worker.stop(), Some(0));
}

/// A rule whose product is copied (`copy:` with an ASC MHL history) and whose commands log
/// each run to `runs.log`; the copy folder's MHL lock is taken by the test, so an attempt stops
/// after its product is published and before its copy is renamed into place.
fn crash_rules(env: &Env, copies: &std::path::Path) -> std::fs::File {
    std::fs::create_dir_all(env.path("shots")).expect("root");
    std::fs::create_dir_all(copies.join("ascmhl")).expect("ascmhl");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\noutputs: [\"{copies}\"]\nrules:\n  - name: product\n    match: \"*.dat\"\n    output: \"{{dir}}/{{stem}}.out\"\n    steps: [[sh, -c, 'echo run >> \"$2\"; cp \"$0\" \"$1\"', \"{{path}}\", \"{{out}}\", \"{runs}\"]]\n    copy: {{to: \"{copies}/{{stem}}.out\", hash: xxh64, mhl: true}}\n",
            copies = copies.display(),
            runs = env.path("runs.log").display(),
        ),
    );
    let lock = std::fs::File::create(copies.join("ascmhl/shotrouter.lock")).expect("lock file");
    lock.lock().expect("hold the MHL lock");
    lock
}

/// Waits until the attempt has published its product and is copying it (its copy's temp file
/// is there; the rename waits for the MHL lock the test holds).
fn wait_between_product_and_copy(env: &Env, copies: &std::path::Path) {
    wait_until(
        "the product published and its copy under way",
        Duration::from_secs(30),
        || {
            let copying = std::fs::read_dir(copies).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(".a b."))
            });
            env.path("shots/a b.out").exists() && copying
        },
    );
    assert!(
        !copies.join("a b.out").exists(),
        "the copy is not in place yet"
    );
}

/// After the restart: the job is done, its commands ran once, the product and its copy are in
/// place once each, and no temp file is left.
fn assert_delivered_once(env: &Env, copies: &std::path::Path) {
    wait_until("the job done", Duration::from_secs(30), || {
        the_job(env)["status"] == "done"
    });
    let runs = std::fs::read_to_string(env.path("runs.log")).expect("runs");
    assert_eq!(runs, "run\n", "the commands ran once");
    assert_eq!(
        std::fs::read(env.path("shots/a b.out")).expect("product"),
        b"payload"
    );
    assert_eq!(
        std::fs::read(copies.join("a b.out")).expect("copy"),
        b"payload"
    );
    for dir in [env.path("shots"), copies.to_path_buf()] {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("folder")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let want: &[&str] = if dir == copies {
            &["a b.out", "ascmhl"]
        } else {
            &["a b.dat", "a b.out"]
        };
        assert_eq!(
            names,
            want,
            "each file once, no temp left in {}",
            dir.display()
        );
    }
    let job = the_job(env);
    assert_eq!(job["attempts"], 2, "{job}");
}

/// SIGKILL between the publish of the product and its copy: after the restart the job is not
/// run again; its next attempt finds its product in place and makes the copy.
#[test]
fn issue_19_a_watcher_killed_between_product_and_copy_delivers_the_copy_without_running_again() {
    let env = Env::new();
    let copies = env.path("copies");
    let lock = crash_rules(&env, &copies);
    let daemon = Daemon::start(&env, &[], &[]);
    env.write("shots/a b.dat", "payload");
    wait_between_product_and_copy(&env, &copies);
    daemon.kill_hard();
    drop(lock);
    let daemon = Daemon::start(&env, &[], &[]);
    assert_delivered_once(&env, &copies);
    drop(daemon);
}

/// The same on a worker that sees the tree and the copy folder under its own mounts: the next
/// attempt checks the product where the worker mounts it.
#[test]
fn issue_19_a_worker_killed_between_product_and_copy_delivers_the_copy_without_running_again() {
    let env = Env::new();
    let copies = env.path("copies");
    let lock = crash_rules(&env, &copies);
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    let _shots = BindMount::new(&env.path("shots"), &env.path("farm/shots"));
    let _copies = BindMount::new(&copies, &env.path("farm/copies"));
    let store = env.path(".shotrouter").display().to_string();
    let map = [
        "--map".to_string(),
        format!("shots={}", env.path("farm/shots").display()),
        "--map".to_string(),
        format!("{}={}", copies.display(), env.path("farm/copies").display()),
    ];
    let map: Vec<&str> = map.iter().map(String::as_str).collect();
    let worker = Worker::start(&env, &store, "w1", &map);
    env.write("shots/a b.dat", "payload");
    wait_between_product_and_copy(&env, &copies);
    worker.kill_hard();
    drop(lock);
    let worker = Worker::start(&env, &store, "w1", &map);
    assert_delivered_once(&env, &copies);
    let log = worker.log_text();
    assert!(
        log.contains(&env.path("farm/shots").display().to_string()),
        "ran on the worker's own mount: {log}"
    );
    assert_eq!(worker.stop(), Some(0));
}

/// `stuck` covers jobs a `--no-run` watcher queued for workers: with no worker up, the job
/// waits in the store past `stuck_after` and the watcher says so, once; a worker then runs it.
#[test]
fn issue_19_a_job_waiting_for_a_worker_past_stuck_after_is_reported_once() {
    let env = Env::new();
    let hook = Hook::start(0);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nnotify: {{on: [stuck], webhook: \"{}\", stuck_after: 1s}}\nrules:\n  - name: copy\n    match: \"*.dat\"\n    run: [\"true\"]\n",
            hook.url
        ),
    );
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    env.write("shots/a b.dat", "x");
    wait_until("the stuck webhook", Duration::from_secs(20), || {
        !hook.bodies().is_empty()
    });
    let body = &hook.bodies()[0];
    assert_eq!(body["event"], "stuck");
    assert_eq!(body["rule"], "copy");
    assert!(
        body["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("shots/a b.dat")),
        "{body}"
    );
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("queued for ")),
        "{body}"
    );
    assert_eq!(body["job"], the_job(&env)["id"].to_string());
    let store = env.path(".shotrouter").display().to_string();
    let worker = Worker::start(&env, &store, "w1", &[]);
    wait_until("the job done", Duration::from_secs(20), || {
        the_job(&env)["status"] == "done"
    });
    assert_eq!(hook.bodies().len(), 1, "told once: {:?}", hook.bodies());
    assert_eq!(worker.stop(), Some(0));
}

/// A job queued again after a failed attempt, waiting out its rule's backoff, waits for no
/// worker: the watcher does not report it `stuck`, while a job that does wait for one is.
#[test]
fn a_job_waiting_out_its_retry_backoff_is_not_reported_stuck() {
    let env = Env::new();
    let hook = Hook::start(0);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nnotify: {{on: [stuck], webhook: \"{}\", stuck_after: 3s}}\nrules:\n  - name: flaky\n    match: \"*.bad\"\n    retries: 1\n    backoff: 1h\n    run: [\"false\"]\n  - name: copy\n    match: \"*.dat\"\n    run: [\"true\"]\n",
            hook.url
        ),
    );
    let watcher = Daemon::start(&env, &["--no-run"], &[]);
    let store = env.path(".shotrouter").display().to_string();
    let worker = Worker::start(&env, &store, "w1", &[]);
    env.write("shots/a.bad", "x");
    wait_until(
        "the failed attempt queued again",
        Duration::from_secs(20),
        || {
            jobs(&env, &[])
                .first()
                .is_some_and(|job| job["status"] == "queued" && job["attempts"] == 1)
        },
    );
    assert_eq!(worker.stop(), Some(0));
    // With no worker up, this one waits for a worker past `stuck_after`: once it is told,
    // the older job backing off had been looked at for longer.
    env.write("shots/b.dat", "x");
    wait_until("the stuck webhook", Duration::from_secs(20), || {
        !hook.bodies().is_empty()
    });
    assert_eq!(watcher.stop(), Some(0));
    let paths: Vec<String> = hook
        .bodies()
        .iter()
        .map(|b| format!("{} {}", b["event"], b["path"]))
        .collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert!(paths[0].contains("b.dat"), "{paths:?}");
}
