//! Where a worker finds the watcher's folders (issue 19), with real processes: a worker on the
//! watcher's machine uses an empty output folder at the same path; one whose mount namespace
//! lacks the watcher's mount declines, even over a stale folder; and `shotrouter job` shows the
//! argv a worker ran with `--map` beside the planned one.

use std::path::Path;
use std::time::Duration;

use crate::cluster::{BindMount, Worker, jobs, sqlite_store, write_rules};
use crate::daemon::Daemon;
use crate::deliveries::Tmpfs;
use crate::env::{Env, stderr, wait_until};
use crate::http_api::{get, port_in};

/// A rules file whose one rule copies each `.dat` into `outputs:` folder `san`, outside the
/// watch root.
fn deliver_into(env: &Env, san: &Path) {
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\noutputs: [\"{0}\"]\nrules:\n  - name: deliver\n    match: \"**/*.dat\"\n    output: \"{0}/{{stem}}.out\"\n    steps: [[cp, \"{{path}}\", \"{{out}}\"]]\n",
            san.display()
        ),
    );
}

fn done(env: &Env) -> usize {
    jobs(env, &[])
        .iter()
        .filter(|r| r["status"] == "done")
        .count()
}

#[test]
fn issue_19_a_worker_on_the_watchers_machine_delivers_into_an_empty_output_folder() {
    let env = Env::new();
    // A new show's delivery folder: empty, outside the watch root, its name with a space.
    let san = env.path("san delivery");
    std::fs::create_dir_all(&san).expect("san");
    deliver_into(&env, &san);
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    let worker = Worker::start(&env, &sqlite_store(&env), "w1", &["--jobs", "2"]);
    for i in 0..4 {
        env.write(format!("shots/sh010/a{i}.dat"), format!("a{i}"));
    }
    wait_until("4 jobs done", Duration::from_secs(30), || done(&env) == 4);
    for i in 0..4 {
        assert_eq!(
            std::fs::read(san.join(format!("a{i}.out"))).expect("delivered"),
            format!("a{i}").as_bytes()
        );
    }
    let log = worker.log_text();
    assert!(!log.contains("declined"), "nothing declined: {log}");
    assert_eq!(worker.stop(), Some(0));
}

#[test]
fn issue_19_a_worker_without_the_watchers_mount_declines_even_over_a_stale_folder() {
    let env = Env::new();
    let san = env.path("san");
    // What the bare mount point holds on the local disk (a stale copy): not empty, so only
    // the mount facts tell it is not the watcher's file system.
    env.write("san/stale.txt", "left on the local disk");
    deliver_into(&env, &san);
    let tmpfs = Tmpfs::mount(&san, "4m");
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    // The worker in a mount namespace of its own, where the delivery volume is not mounted.
    if !crate::helpers::require::require_program("unshare", "util-linux") {
        return;
    }
    let san_text = san.display().to_string();
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "umount \"$0\" && exec \"$@\"",
        san_text.as_str(),
    ];
    let worker = Worker::start_under(&env, &wrapper, &sqlite_store(&env), "farm", &[]);
    env.write("shots/sh010/a.dat", "a");
    wait_until(
        "the worker to decline the job",
        Duration::from_secs(30),
        || worker.log_text().contains("declined"),
    );
    assert_eq!(worker.stop(), Some(0));
    let row = &jobs(&env, &[])[0];
    assert_eq!(
        (row["status"].as_str(), row["attempts"].as_u64()),
        (Some("queued"), Some(0)),
        "{row}"
    );
    let result = row["result"].as_str().unwrap_or_default();
    assert!(
        result.contains(&format!(
            "`{san_text}` is on tmpfs `tmpfs` mounted at `{san_text}` on the watcher"
        )) && result.contains("that file system is not mounted here"),
        "{result}"
    );
    drop(tmpfs);
    let bare: Vec<_> = std::fs::read_dir(&san)
        .expect("bare folder")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(bare, ["stale.txt"], "nothing was written to the local disk");
}

#[test]
fn issue_19_job_shows_the_argv_a_mapped_worker_ran_beside_the_planned_one() {
    let env = Env::new();
    write_rules(&env, 0);
    env.write("token", "s3cret-token\n");
    let watcher = Daemon::start(
        &env,
        &[
            "--no-run",
            "--http",
            "127.0.0.1:0",
            "--http-token-file",
            "token",
        ],
        &[],
    );
    let port = port_in(&watcher.log_text());
    let _farm = BindMount::new(&env.path("shots"), &env.path("farm/shots"));
    let map = format!("shots={}", env.path("farm/shots").display());
    let worker = Worker::start(&env, &sqlite_store(&env), "a", &["--map", &map]);
    env.write("shots/sh010/a b.dat", "x");
    wait_until("the job done", Duration::from_secs(30), || done(&env) == 1);
    assert_eq!(worker.stop(), Some(0));
    let id = jobs(&env, &[])[0]["id"].as_i64().expect("id").to_string();
    let planned = env.path("shots/sh010/a b.dat").display().to_string();
    let ran = env.path("farm/shots/sh010/a b.dat").display().to_string();

    let out = env.run(&["job", &id, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(job["steps"][1][1], planned.as_str(), "{job}");
    assert_eq!(job["ran"]["node"], "a", "{job}");
    assert_eq!(job["ran"]["steps"][1][1], ran.as_str(), "{job}");
    assert_eq!(job["ran"]["steps"][1][0], "cp", "{job}");

    let reply = get(port, &format!("/api/v1/jobs/{id}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["ran"], job["ran"]);

    let out = env.run(&["job", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ran on    node a, its paths mapped"),
        "{text}"
    );
    assert!(
        text.contains(&format!("step 2    planned cp '{planned}'")),
        "{text}"
    );
    assert!(
        text.contains(&format!("          ran     cp '{ran}'")),
        "{text}"
    );
}
