use super::*;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fn version(size: u64) -> FileVersion {
    FileVersion {
        dev: 1,
        ino: 7,
        size,
        mtime_ns: 1_000,
    }
}

fn job<'a>(path: &'a Path, v: FileVersion, steps: &'a [Vec<OsString>]) -> NewJob<'a> {
    NewJob {
        rule: "review",
        rule_hash: "h1",
        path,
        version: v,
        steps,
        output: None,
    }
}

fn argv(items: &[&[u8]]) -> Vec<Vec<OsString>> {
    vec![
        items
            .iter()
            .map(|b| OsString::from_vec(b.to_vec()))
            .collect(),
    ]
}

#[test]
fn a_new_store_is_created_once() {
    let dir = tempfile::tempdir().expect("tmp");
    assert!(Store::open(dir.path()).expect("opens").is_new());
    assert!(!Store::open(dir.path()).expect("reopens").is_new());
}

#[test]
fn the_same_version_is_queued_once_and_a_new_version_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::open(dir.path()).expect("opens");
    let steps = argv(&[b"ffmpeg", b"-i", b"a b\xff.tif"]);
    let path = Path::new("/s/a b\u{e9}.tif");
    let first = store
        .enqueue(&job(path, version(10), &steps))
        .expect("enqueue");
    assert!(first.is_some());
    assert_eq!(
        store
            .enqueue(&job(path, version(10), &steps))
            .expect("enqueue"),
        None,
        "duplicate"
    );
    assert!(
        store
            .enqueue(&job(path, version(11), &steps))
            .expect("enqueue")
            .is_some(),
        "re-rendered"
    );
    let stored = store
        .plan_of(first.expect("id").id)
        .expect("read")
        .expect("exists");
    assert_eq!(
        stored.steps,
        vec![vec![
            b"ffmpeg".to_vec(),
            b"-i".to_vec(),
            b"a b\xff.tif".to_vec()
        ]],
        "argv bytes survive"
    );
}

#[test]
fn a_failed_version_may_be_queued_again_but_not_a_done_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::open(dir.path()).expect("opens");
    let steps = argv(&[b"x"]);
    let path = Path::new("/s/a.tif");
    let id = store
        .enqueue(&job(path, version(1), &steps))
        .expect("ok")
        .expect("new")
        .id;
    assert!(store.claim(id, None, None).expect("start"));
    assert!(
        store
            .finish(id, Status::Failed, Some("exited with status 1"), None)
            .expect("finish")
    );
    assert!(
        store
            .wants_catch_up("review", path, version(1))
            .expect("query"),
        "failed: retried at start-up"
    );
    let again = store
        .enqueue(&job(path, version(1), &steps))
        .expect("ok")
        .expect("failed does not block")
        .id;
    assert!(store.claim(again, None, None).expect("start"));
    assert!(
        store
            .finish(again, Status::Done, None, None)
            .expect("finish")
    );
    assert!(
        !store
            .wants_catch_up("review", path, version(1))
            .expect("query")
    );
    assert_eq!(
        store.enqueue(&job(path, version(1), &steps)).expect("ok"),
        None
    );
}

#[test]
fn catch_up_wants_new_and_changed_files_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::open(dir.path()).expect("opens");
    store
        .record_baseline(&[(PathBuf::from("/s/old.tif"), version(5))])
        .expect("baseline");
    assert!(
        !store
            .wants_catch_up("review", Path::new("/s/old.tif"), version(5))
            .expect("q"),
        "baseline, unchanged"
    );
    assert!(
        store
            .wants_catch_up("review", Path::new("/s/old.tif"), version(6))
            .expect("q"),
        "changed while down"
    );
    assert!(
        store
            .wants_catch_up("review", Path::new("/s/new.tif"), version(1))
            .expect("q"),
        "arrived while down"
    );
}

#[test]
fn a_cancelled_queued_job_is_not_started() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::open(dir.path()).expect("opens");
    let steps = argv(&[b"x"]);
    let id = store
        .enqueue(&job(Path::new("/s/a"), version(1), &steps))
        .expect("ok")
        .expect("new")
        .id;
    assert_eq!(store.cancel(&[id]).expect("cancel"), vec![(id, None)]);
    assert!(
        !store.claim(id, None, None).expect("start"),
        "a worker must not run it"
    );
    assert_eq!(store.retry(&[id], None).expect("retry"), vec![id]);
    assert!(store.claim(id, None, None).expect("start"), "retried");
}

#[test]
fn finishing_a_job_a_user_cancelled_keeps_it_cancelled() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::open(dir.path()).expect("opens");
    let steps = argv(&[b"x"]);
    let id = store
        .enqueue(&job(Path::new("/s/a"), version(1), &steps))
        .expect("ok")
        .expect("new")
        .id;
    assert!(store.claim(id, None, None).expect("start"));
    store.cancel(&[id]).expect("cancel");
    assert!(
        !store
            .finish(id, Status::Failed, Some("killed by signal 15"), Some(0))
            .expect("finish")
    );
    assert_eq!(
        store.job(id).expect("read").expect("exists").row.status,
        "cancelled"
    );
}

#[test]
fn recovery_requeues_interrupted_jobs_and_removes_their_temp_output() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::open(dir.path()).expect("opens");
    let steps = argv(&[b"x"]);
    let temp = dir.path().join(".a.sr-1.mov");
    std::fs::write(&temp, b"half a movie").expect("temp");
    let id = store
        .enqueue(&job(Path::new("/s/a"), version(1), &steps))
        .expect("ok")
        .expect("new")
        .id;
    assert!(store.claim(id, Some(&temp), None).expect("start"));
    let recovered = store.recover_interrupted().expect("recover");
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].resolution, Resolution::Requeued);
    assert!(!temp.exists(), "temp output removed");
    let queued = store.queued_since(0).expect("queued");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].1.attempts, 1, "the interrupted attempt counts");
}

#[test]
fn recovery_recognises_a_product_published_just_before_the_crash() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::open(dir.path()).expect("opens");
    let steps = argv(&[b"x"]);
    let output = dir.path().join("a.mov");
    let new = NewJob {
        output: Some(&output),
        ..job(Path::new("/s/a"), version(1), &steps)
    };
    let id = store.enqueue(&new).expect("ok").expect("new").id;
    assert!(store.claim(id, None, None).expect("start"));
    std::fs::write(&output, b"the movie").expect("product");
    let v = FileVersion::of(&output).expect("file");
    store
        .publishing(id, "review", &output, v)
        .expect("publishing");
    // ...the daemon dies here, after the rename, before recording `done`.
    let recovered = store.recover_interrupted().expect("recover");
    assert_eq!(recovered[0].resolution, Resolution::Published);
    assert_eq!(
        store.job(id).expect("read").expect("exists").row.status,
        "done"
    );
    assert_eq!(
        store.producer(&output, v).expect("q").as_deref(),
        Some("review")
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join(DB_FILE);
    std::fs::write(
        &db,
        b"these are someone's notes, not a database, and long enough to look like a header",
    )
    .expect("write");
    let before = std::fs::read(&db).expect("read");
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(
        err.to_string().contains("not a shotrouter state file"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).expect("read"), before);
}

#[test]
fn another_applications_database_is_refused_and_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join(DB_FILE);
    {
        let conn = Connection::open(&db).expect("sqlite");
        conn.execute_batch("CREATE TABLE invoices (id INTEGER); INSERT INTO invoices VALUES (1);")
            .expect("foreign");
    }
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("another application"), "{err}");
    let conn = Connection::open(&db).expect("sqlite");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM invoices", [], |r| r.get(0))
        .expect("intact");
    assert_eq!(n, 1);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    drop(Store::open(dir.path()).expect("create"));
    let conn = Connection::open(dir.path().join(DB_FILE)).expect("sqlite");
    conn.execute_batch("PRAGMA user_version = 99")
        .expect("bump");
    drop(conn);
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn rerun_queues_the_latest_version_of_each_file_of_the_rule() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::open(dir.path()).expect("opens");
    let steps = argv(&[b"x"]);
    for name in ["/s/a", "/s/b"] {
        let id = store
            .enqueue(&job(Path::new(name), version(1), &steps))
            .expect("ok")
            .expect("new")
            .id;
        store.claim(id, None, None).expect("start");
        store.finish(id, Status::Done, None, None).expect("finish");
    }
    let before = store.queue_seq().expect("seq");
    assert_eq!(store.rerun("review", "unknown", None).expect("rerun"), 2);
    assert_eq!(store.queued_since(before).expect("queued").len(), 2);
    assert_eq!(
        store.rerun("review", "unknown", None).expect("rerun"),
        0,
        "already queued"
    );
}

#[test]
fn status_counts_states() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::open(dir.path()).expect("opens");
    let steps = argv(&[b"x"]);
    let a = store
        .enqueue(&job(Path::new("/s/a"), version(1), &steps))
        .expect("ok")
        .expect("new")
        .id;
    store
        .enqueue(&job(Path::new("/s/b"), version(1), &steps))
        .expect("ok")
        .expect("new");
    store.claim(a, None, None).expect("start");
    store
        .finish(a, Status::Failed, Some("exited with status 2"), None)
        .expect("finish");
    let s = store.status().expect("status");
    assert_eq!((s.running, s.queued, s.failed_24h, s.files), (0, 1, 1, 2));
    assert!(s.oldest_queued_s.is_some());
}

#[test]
fn a_batch_commits_everything_written_in_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::open(dir.path()).expect("opens");
    let steps = argv(&[b"x"]);
    store.begin_batch().expect("begin");
    let a = store
        .enqueue(&job(Path::new("/s/a"), version(1), &steps))
        .expect("ok")
        .expect("new")
        .id;
    store.end_batch().expect("commit");
    store.begin_batch().expect("begin");
    assert!(
        store.finish(a, Status::Done, None, None).expect("finish"),
        "a queued job that never recorded its start"
    );
    store.end_batch().expect("commit");
    drop(store);
    let store = Store::open(dir.path()).expect("reopens");
    assert_eq!(
        store.job(a).expect("read").expect("exists").row.status,
        "done"
    );
}
