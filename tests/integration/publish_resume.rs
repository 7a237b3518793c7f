//! What the next attempt of a job takes from the product an earlier attempt published: a
//! `move:` already made is not made again; a retried job, a fixed rule or a lost ALE run
//! everything again.

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

/// Holds the MHL lock of `copies` so an attempt stops after its product is published and
/// before its copy is renamed into place.
fn stop_before_the_copy(copies: &Path) -> std::fs::File {
    let lock = std::fs::File::create(copies.join("ascmhl/shotrouter.lock")).expect("lock file");
    lock.lock().expect("hold the MHL lock");
    lock
}

/// Waits until the attempt got there: `product` in place, the copy's temp file `.{stem}.…`
/// written.
fn wait_for_the_copy(copies: &Path, product: &Path, stem: &str) {
    let prefix = format!(".{stem}.");
    wait_until(
        "the product published and its copy under way",
        Duration::from_secs(60),
        || {
            product.exists()
                && std::fs::read_dir(copies).is_ok_and(|entries| {
                    entries
                        .flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                })
        },
    );
}

/// A rule whose commands log `content` to `runs.log` and write it as the product, copied.
fn copy_rule(env: &Env, copies: &Path, content: &str) {
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\noutputs: [\"{copies}\"]\nrules:\n  - name: product\n    match: \"*.dat\"\n    output: \"{{dir}}/{{stem}}.out\"\n    steps: [[sh, -c, 'echo {content} >> \"$1\"; printf {content} > \"$0\"', \"{{out}}\", \"{runs}\"]]\n    copy: {{to: \"{copies}/{{stem}}.out\", hash: xxh64, mhl: true}}\n",
            copies = copies.display(),
            runs = env.path("runs.log").display(),
        ),
    );
}

/// A job killed between its product and its copy, whose rule is then fixed (`run:` changed):
/// the restarted daemon plans it with the fixed rule and runs its commands again, rather than
/// copy the product the old rule made.
#[test]
fn a_fixed_rule_runs_again_after_a_kill_between_product_and_copy() {
    let env = Env::new();
    let copies = env.path("copies");
    std::fs::create_dir_all(env.path("shots")).expect("root");
    std::fs::create_dir_all(copies.join("ascmhl")).expect("ascmhl");
    copy_rule(&env, &copies, "bad");
    let product = env.path("shots/a b.out");
    let lock = stop_before_the_copy(&copies);
    let daemon = Daemon::start(&env, &[], &[]);
    env.write("shots/a b.dat", "payload");
    wait_for_the_copy(&copies, &product, "a b");
    daemon.kill_hard();
    drop(lock);
    copy_rule(&env, &copies, "fixed");

    let daemon = Daemon::start(&env, &[], &[]);
    wait_until("the job done", Duration::from_secs(30), || {
        the_job(&env)["status"] == "done"
    });
    let runs = std::fs::read_to_string(env.path("runs.log")).expect("runs");
    assert_eq!(runs, "bad\nfixed\n", "the fixed commands ran");
    assert_eq!(std::fs::read(&product).expect("product"), b"fixed");
    assert_eq!(
        std::fs::read(copies.join("a b.out")).expect("copy"),
        b"fixed",
        "the fixed product is copied, not the old one"
    );
    drop(daemon);
}

/// A job with an ALE killed after its product's publish and before the ALE's rename (the
/// test removes the ALE the attempt had renamed, which is what such a kill leaves): the next
/// attempt does not deliver the product without its ALE; everything runs again.
#[test]
fn an_ale_lost_with_a_kill_after_the_publish_is_made_again() {
    let env = Env::new();
    let copies = env.path("copies");
    std::fs::create_dir_all(copies.join("ascmhl")).expect("ascmhl");
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\noutputs: [\"{copies}\"]\nrules:\n  - name: clip\n    match: \"r24/*.dpx\"\n    sequence: true\n    settle: 200ms\n    timecode: {{fps: 24, start: \"00:00:00:00\", at_frame: 1001}}\n    output: \"{{root}}/out/{{seq.name}}.mov\"\n    ale: \"{{root}}/out/{{seq.name}}.ale\"\n    run: [cp, \"{{path}}\", \"{{out}}\"]\n    copy: {{to: \"{copies}/{{seq.name}}.mov\", hash: xxh64, mhl: true}}\n",
            copies = copies.display(),
        ),
    );
    let product = env.path("shots/out/sh010.mov");
    let ale = env.path("shots/out/sh010.ale");
    let lock = stop_before_the_copy(&copies);
    let daemon = Daemon::start(&env, &[], &[]);
    // Made aside and renamed in together: two ffmpeg runs on a loaded machine may take longer
    // than the 200 ms settle, and the first frame alone would be a sequence of its own.
    let staged = crate::editorial::frames(&env.path("staging"), "sh010", "dpx", 1001, 2);
    std::fs::create_dir_all(env.path("shots/r24")).expect("mkdir");
    for frame in &staged {
        let name = frame.file_name().expect("name");
        std::fs::rename(frame, env.path("shots/r24").join(name)).expect("rename into the tree");
    }
    wait_for_the_copy(&copies, &product, "sh010");
    daemon.kill_hard();
    drop(lock);
    std::fs::remove_file(&ale).expect("the ALE the attempt renamed");

    let daemon = Daemon::start(&env, &[], &[]);
    wait_until("the job done", Duration::from_secs(30), || {
        the_job(&env)["status"] == "done"
    });
    assert!(ale.exists(), "the ALE is made again beside the product");
    assert!(copies.join("sh010.mov").exists(), "the copy is made");
    drop(daemon);
}

/// `shotrouter retry` of a job cancelled after its product was published (while its copy
/// waited for the MHL lock): the retried job runs its commands again, so what the user fixed
/// outside the rule (here the LUT its commands read) reaches the product and its copy.
#[test]
fn a_retried_job_runs_again_rather_than_copy_its_old_product() {
    let env = Env::new();
    let copies = env.path("copies");
    std::fs::create_dir_all(env.path("shots")).expect("root");
    std::fs::create_dir_all(copies.join("ascmhl")).expect("ascmhl");
    env.write("lut.txt", "bad");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\noutputs: [\"{copies}\"]\nrules:\n  - name: product\n    match: \"*.dat\"\n    output: \"{{dir}}/{{stem}}.out\"\n    steps: [[sh, -c, 'echo run >> \"$2\"; cat \"$0\" > \"$1\"', \"{lut}\", \"{{out}}\", \"{runs}\"]]\n    copy: {{to: \"{copies}/{{stem}}.out\", hash: xxh64, mhl: true}}\n",
            copies = copies.display(),
            lut = env.path("lut.txt").display(),
            runs = env.path("runs.log").display(),
        ),
    );
    let product = env.path("shots/a b.out");
    let lock = stop_before_the_copy(&copies);
    let daemon = Daemon::start(&env, &[], &[]);
    env.write("shots/a b.dat", "payload");
    wait_for_the_copy(&copies, &product, "a b");
    let id = the_job(&env)["id"].to_string();
    let out = env.run(&["cancel", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::env::stderr(&out));
    drop(lock);
    wait_until(
        "the cancelled attempt ended, its copy discarded",
        Duration::from_secs(30),
        || the_job(&env)["status"] == "cancelled" && names(&copies) == ["ascmhl"],
    );
    assert_eq!(std::fs::read(&product).expect("published"), b"bad");

    env.write("lut.txt", "good");
    let out = env.run(&["retry", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::env::stderr(&out));
    wait_until("the retried job done", Duration::from_secs(30), || {
        the_job(&env)["status"] == "done"
    });
    let runs = std::fs::read_to_string(env.path("runs.log")).expect("runs");
    assert_eq!(runs, "run\nrun\n", "the retried job ran its commands");
    assert_eq!(std::fs::read(&product).expect("product"), b"good");
    assert_eq!(
        std::fs::read(copies.join("a b.out")).expect("copy"),
        b"good",
        "the new product is copied, not the old one"
    );
    drop(daemon);
}
