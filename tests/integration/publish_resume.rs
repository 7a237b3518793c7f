//! An attempt killed after it published its product resumes from what the store recorded:
//! a `move:` already made is not made again, and nothing is run again.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::cluster::jobs;
use crate::daemon::Daemon;
use crate::env::{Env, wait_until};

/// The one job of the store.
fn the_job(env: &Env) -> serde_json::Value {
    let rows = jobs(env, &[]);
    assert_eq!(rows.len(), 1, "one job: {rows:?}");
    rows[0].clone()
}

/// The names in a folder, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// SIGKILL after a `move:` renamed the product's copy into place and removed the product,
/// before the job's end reached the store: the restarted daemon's attempt finds the product
/// gone and the destination the store recorded in place, and ends the job as done without
/// running its commands or moving anything again.
///
/// The kill lands while the move waits for the MHL lock the test holds (the product is
/// published, its copy written to a temp file); the test then does what the killed attempt
/// would have done next: the destination's version recorded as the job's delivery, the rename,
/// the MHL generation (left out: the test holds no MHL writer) and the product's removal.
#[test]
fn a_job_killed_after_its_move_is_done_without_running_again() {
    let env = Env::new();
    let moved = env.path("moved");
    std::fs::create_dir_all(env.path("shots")).expect("root");
    std::fs::create_dir_all(moved.join("ascmhl")).expect("ascmhl");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\noutputs: [\"{moved}\"]\nrules:\n  - name: product\n    match: \"*.dat\"\n    output: \"{{dir}}/{{stem}}.out\"\n    steps: [[sh, -c, 'echo run >> \"$2\"; cp \"$0\" \"$1\"', \"{{path}}\", \"{{out}}\", \"{runs}\"]]\n    move: {{to: \"{moved}/{{stem}}.out\", hash: xxh64, mhl: true}}\n",
            moved = moved.display(),
            runs = env.path("runs.log").display(),
        ),
    );
    let lock = std::fs::File::create(moved.join("ascmhl/shotrouter.lock")).expect("lock file");
    lock.lock().expect("hold the MHL lock");
    let daemon = Daemon::start(&env, &[], &[]);
    env.write("shots/a b.dat", "payload");
    let product = env.path("shots/a b.out");
    let temp = || {
        std::fs::read_dir(&moved).ok().and_then(|entries| {
            entries
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with(".a b."))
                .map(|e| e.path())
        })
    };
    wait_until(
        "the product published and its move under way",
        Duration::from_secs(30),
        || product.exists() && temp().is_some(),
    );
    daemon.kill_hard();
    drop(lock);

    // What the killed attempt would have done after the lock: record, rename, remove.
    let temp = temp().expect("the move's temp file");
    let destination = moved.join("a b.out");
    let meta = std::fs::metadata(&temp).expect("temp");
    let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    let conn = rusqlite::Connection::open(env.path(".shotrouter/shotrouter.db")).expect("store");
    let recorded = conn
        .execute(
            "UPDATE jobs SET delivered_ino = ?1, delivered_size = ?2, delivered_mtime_ns = ?3",
            rusqlite::params![meta.ino() as i64, meta.size() as i64, mtime_ns],
        )
        .expect("record the delivery");
    assert_eq!(recorded, 1, "one job");
    drop(conn);
    std::fs::rename(&temp, &destination).expect("rename into place");
    std::fs::remove_file(&product).expect("the move removes its source");

    let daemon = Daemon::start(&env, &[], &[]);
    wait_until("the job done", Duration::from_secs(30), || {
        the_job(&env)["status"] == "done"
    });
    let runs = std::fs::read_to_string(env.path("runs.log")).expect("runs");
    assert_eq!(runs, "run\n", "the commands ran once");
    assert_eq!(std::fs::read(&destination).expect("moved"), b"payload");
    assert_eq!(
        names(&env.path("shots")),
        ["a b.dat"],
        "no product made again"
    );
    assert_eq!(names(&moved), ["a b.out", "ascmhl"], "no temp left");
    assert_eq!(
        names(&moved.join("ascmhl")),
        ["shotrouter.lock"],
        "no MHL generation for a second move"
    );
    assert_eq!(the_job(&env)["attempts"], 2);
    drop(daemon);
}
