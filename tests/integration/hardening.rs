//! The hardening guarantees: nothing fired on a partial file, nothing published stale, a moved
//! file followed rather than re-run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, argvdump, records, slowwriter};
use crate::env::{Env, wait_until};

const MB: usize = 1 << 20;

/// Each `.dat` is recorded (argvdump) and copied beside itself as `.copy`.
fn copy_rules(env: &Env) -> String {
    format!(
        "version: 1\nwatch: [shots]\njobs: 4\nrules:\n  - name: copy\n    match: \"**/*.dat\"\n    output: \"{{dir}}/{{stem}}.copy\"\n    steps: [[{}, {}, \"{{rel}}\"], [cp, \"{{path}}\", \"{{out}}\"]]\n",
        argvdump().display(),
        env.path("dump.log").display()
    )
}

/// A `slowwriter` child: writes 3 MB of `a`, stalls until `go` exists, then ends with 5 MB of `b`.
struct StalledWriter {
    child: Child,
    ready: PathBuf,
}

impl StalledWriter {
    fn start(mode: &str, path: &Path, go: &Path) -> StalledWriter {
        let ready = path.with_extension("ready");
        let child = Command::new(slowwriter())
            .arg(mode)
            .arg(path)
            .arg((3 * MB).to_string())
            .arg((8 * MB).to_string())
            .arg(&ready)
            .arg(go)
            .spawn()
            .expect("writer starts");
        wait_until("the writer's first half", Duration::from_secs(20), || {
            ready.exists()
        });
        StalledWriter { child, ready }
    }

    fn finish(mut self) {
        let status = self.child.wait().expect("writer ends");
        assert!(status.success(), "writer failed: {status}");
        let _ = std::fs::remove_file(self.ready);
    }
}

fn full_content() -> Vec<u8> {
    let mut expected = vec![b'a'; 3 * MB];
    expected.resize(8 * MB, b'b');
    expected
}

#[test]
fn files_found_by_a_scan_fire_once_on_their_final_content_after_a_12s_writer_stall() {
    let env = Env::new();
    env.write("rules.yaml", copy_rules(&env));
    std::fs::create_dir_all(env.path("shots/c")).expect("root");
    // A first start records the (empty) baseline, so the next start catches up.
    assert_eq!(Daemon::start(&env, &[], &[]).stop(), Some(0));

    let go = env.path("go");
    // A render still writing when the daemon starts (found by the start-up catch-up).
    let at_start = StalledWriter::start("write", &env.path("shots/c/late.dat"), &go);
    let daemon = Daemon::start(&env, &[], &[]);
    // Folders moved into the tree while a copy (and an mmap writer) still fill them.
    let mut writers = vec![at_start];
    for (mode, folder) in [("write", "a"), ("mmap", "b")] {
        let stage = env.path(format!("stage/{folder}"));
        std::fs::create_dir_all(&stage).expect("stage");
        writers.push(StalledWriter::start(mode, &stage.join("plate.dat"), &go));
        std::fs::rename(&stage, env.path(format!("shots/{folder}"))).expect("move in");
    }
    // The stall: 12 s in which no job may start, checked all along.
    let stall = Instant::now() + Duration::from_secs(12);
    while Instant::now() < stall {
        assert!(
            records(&env.path("dump.log")).is_empty(),
            "a job fired on a file still being written:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&go, b"").expect("go");
    for writer in writers {
        writer.finish();
    }
    daemon.wait_idle_with(3, Duration::from_secs(60));
    assert_eq!(records(&env.path("dump.log")).len(), 3, "one job per file");
    for copy in ["c/late.copy", "a/plate.copy", "b/plate.copy"] {
        let published = std::fs::read(env.path("shots").join(copy)).expect("published");
        assert!(published == full_content(), "{copy} is the final content");
    }
    assert_eq!(daemon.stop(), Some(0));
}

fn jobs_json(env: &Env) -> Vec<serde_json::Value> {
    let out = env.run(&["jobs", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::env::stderr(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn a_new_version_stops_the_job_on_the_old_one_and_only_the_new_product_is_published() {
    let env = Env::new();
    env.write("rules.yaml", copy_rules(&env));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    // Each job's first step takes 3 s, long enough to write a new version meanwhile.
    let daemon = Daemon::start(&env, &[], &[("ARGVDUMP_SLEEP_MS", "3000")]);
    env.write("shots/plate.dat", "version one");
    wait_until("the first job to start", Duration::from_secs(20), || {
        jobs_json(&env).iter().any(|j| j["status"] == "running")
    });
    env.write("shots/plate.dat", "version two, re-exported");
    daemon.wait_idle_with(1, Duration::from_secs(30));
    assert_eq!(
        std::fs::read_to_string(env.path("shots/plate.copy")).expect("published"),
        "version two, re-exported"
    );
    let jobs = jobs_json(&env);
    let statuses: Vec<_> = jobs
        .iter()
        .map(|j| j["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses.len(), 2, "{jobs:?}");
    assert!(
        statuses.contains(&"done") && statuses.contains(&"cancelled"),
        "{jobs:?}"
    );
    // The old attempt was stopped in its first step: only the new job ever got past it.
    assert_eq!(records(&env.path("dump.log")).len(), 1);
    assert!(
        daemon
            .log_text()
            .contains("superseded: a newer version of its input arrived")
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn renamed_files_and_folders_are_followed_not_run_again_unless_the_rule_asks() {
    let env = Env::new();
    let rules = copy_rules(&env)
        + &format!(
            "  - name: rerun-on-rename\n    match: \"**/*.rr\"\n    on: [close_write, moved_to]\n    run: [{}, {}, \"{{rel}}\"]\n",
            argvdump().display(),
            env.path("dump.log").display()
        );
    env.write("rules.yaml", rules);
    std::fs::create_dir_all(env.path("shots/sh010")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    env.write("shots/sh010/plate.dat", "plate");
    env.write("shots/sh010/matte.dat", "matte");
    env.write("shots/sh010/notes.rr", "notes");
    daemon.wait_idle_with(3, Duration::from_secs(30));
    let moved = || daemon.log_text().matches("moved: this content").count();
    // A renamed file, then its renamed folder: the store follows, nothing runs.
    std::fs::rename(
        env.path("shots/sh010/plate.dat"),
        env.path("shots/sh010/plate_final.dat"),
    )
    .expect("rename");
    wait_until("the rename to be followed", Duration::from_secs(20), || {
        moved() == 1
    });
    std::fs::rename(env.path("shots/sh010"), env.path("shots/sh020")).expect("rename folder");
    wait_until(
        "the folder's files to be followed",
        Duration::from_secs(20),
        || moved() == 3,
    );
    // A temp name renamed into place still fires, as does the rule that asks for renames.
    env.write("shots/sh020/.incoming.tmp", "new plate");
    std::fs::rename(
        env.path("shots/sh020/.incoming.tmp"),
        env.path("shots/sh020/new.dat"),
    )
    .expect("rename into place");
    daemon.wait_idle_with(5, Duration::from_secs(30));
    let rels: Vec<String> = records(&env.path("dump.log"))
        .iter()
        .map(|r| String::from_utf8_lossy(&r[0]).into_owned())
        .collect();
    let mut sorted = rels.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "sh010/matte.dat",
            "sh010/notes.rr",
            "sh010/plate.dat",
            "sh020/new.dat",
            "sh020/notes.rr"
        ],
        "{rels:?}"
    );
    // The history followed the file to its new name.
    let out = env.run(&["files", "shots/sh020/plate_final.dat"]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::env::stderr(&out));
    let shown = crate::env::stdout(&out);
    assert!(shown.contains("copy") && shown.contains("done"), "{shown}");
    assert_eq!(daemon.stop(), Some(0));
}
