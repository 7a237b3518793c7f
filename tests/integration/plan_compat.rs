//! A job queued by the previous release, its plan stored as that release wrote it (a format-3
//! "portable plan": no argv, paths as escaped text, a `copy:` beside the product), is run to the
//! end by a worker of this release after the upgrade.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use shotrouter::os::path_text::escape;
use shotrouter::os::version::FileVersion;
use shotrouter::store::queue::{JobQueue, NewJob, RootedPath, Write};
use shotrouter::store::sqlite::SqliteStore;

use crate::cluster::{Worker, jobs, sqlite_store};
use crate::env::{Env, wait_until};

#[test]
fn issue_20_a_job_queued_by_the_previous_release_runs_on_a_worker_of_this_one() {
    let env = Env::new();
    let shots = env.path("shots");
    let input = env.write("shots/sh010/a b.dat", "frame 1001");
    std::fs::create_dir_all(env.path("shots/san")).expect("san");
    let state = PathBuf::from(sqlite_store(&env));
    let mut store = SqliteStore::open(&state, "old-watcher").expect("the store");
    store
        .register_roots(&[("shots".into(), shots.clone())])
        .expect("roots");
    let product = shots.join("sh010/out/a b.out");
    std::fs::create_dir_all(product.parent().expect("folder")).expect("out");
    let temp = shots.join("sh010/out/.a b.sr1-1.out");
    let copy = shots.join("san/a b.out");
    let s = escape(&shots);
    // Verbatim as the previous release's watcher wrote it (PortablePlan::to_text, format 3).
    let plan = format!(
        r#"{{"format":3,"roots":[["shots","{s}"]],"outputs":[],"output":["{s}/sh010/out/a b.out","{s}/sh010/out/.a b.sr1-1.out"],"timeout_ms":60000,"retries":1,"backoff_ms":100,"verify":null,"view":null,"transfer":{{"kind":"copy","to":"{s}/san/a b.out","hashes":["xxh64"],"mhl_root":null}}}}"#
    );
    let steps: Vec<Vec<OsString>> = vec![vec![
        "cp".into(),
        input.clone().into_os_string(),
        temp.into_os_string(),
    ]];
    let job = NewJob {
        rule: "copy".into(),
        rule_hash: "h".into(),
        input: RootedPath {
            root: "shots".into(),
            rel: PathBuf::from("sh010/a b.dat"),
        },
        version: FileVersion::of(&input).expect("version"),
        steps,
        output: Some(product.clone()),
        unplannable: None,
        skipped: None,
        follow_moves: false,
        baseline_runs: true,
        tags: Vec::new(),
        concurrency: None,
        priority: 0,
        plan,
        waiting: None,
    };
    store
        .commit(&[Write::Enqueue {
            job: Box::new(job),
            claim: false,
        }])
        .expect("queued");
    drop(store);

    let worker = Worker::start(&env, &sqlite_store(&env), "w1", &["--jobs", "1"]);
    wait_until("the old job to be done", Duration::from_secs(30), || {
        jobs(&env, &[]).iter().any(|r| r["status"] == "done")
    });
    assert_eq!(std::fs::read(&product).expect("product"), b"frame 1001");
    assert_eq!(std::fs::read(&copy).expect("copy"), b"frame 1001");
    let log = worker.log_text();
    assert!(!log.contains("declined"), "{log}");
    assert_eq!(worker.stop(), Some(0));
}
