//! Tags with real processes: a queued job that no live node can take (none holds its rule's
//! `tags:`) is listed by `status` with its reason until a node with the tag starts.

use std::time::Duration;

use crate::cluster::{Worker, jobs, sqlite_store};
use crate::daemon::Daemon;
use crate::env::{Env, stderr, stdout, wait_until};

fn status(env: &Env) -> String {
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn issue_24_status_lists_jobs_waiting_for_a_node_with_their_tag() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: grade\n    match: \"**/*.exr\"\n    tags: [gpu]\n    run: [\"true\"]\n",
    );
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    let store = sqlite_store(&env);
    let plain = Worker::start(&env, &store, "plain", &[]);
    env.write("shots/a.exr", "");
    wait_until("the job queued", Duration::from_secs(20), || {
        jobs(&env, &[]).iter().any(|r| r["status"] == "queued")
    });
    let id = jobs(&env, &[])[0]["id"].as_i64().expect("id");
    let text = status(&env);
    assert!(
        text.contains(&format!(
            "1 queued job waiting for a node with tag gpu, which no live node holds (shotrouter worker --tags gpu): {id}\n"
        )),
        "{text}"
    );
    assert_eq!(
        jobs(&env, &[])[0]["result"],
        "waiting for a node with tag gpu",
        "`jobs` says why it waits"
    );
    let gpu = Worker::start(&env, &store, "gpu", &["--tags", "gpu"]);
    wait_until("the gpu node to run it", Duration::from_secs(20), || {
        jobs(&env, &[]).iter().all(|r| r["status"] == "done")
    });
    assert!(!status(&env).contains("waiting for a node"));
    assert_eq!(gpu.stop(), Some(0));
    assert_eq!(plain.stop(), Some(0));
}
