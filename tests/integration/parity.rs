//! Issue 19: what a `shotrouter worker` does as a watcher does, and what a watcher that runs
//! jobs does as a worker does, with real processes on a shared store.

use std::time::Duration;

use shotrouter::store::queue::JobQueue;

use crate::cluster::{Worker, jobs};
use crate::daemon::Daemon;
use crate::env::{Env, wait_until};

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
        .claim_next(&["later".to_string()], &[], 1)
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
