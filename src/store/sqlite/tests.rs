//! The SQLite backend under the store contract, plus what only it has: refusing files that
//! are not ours, and migrating a real store written by the previous release in place.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::super::StoreError;
use super::super::contract::{Backend, contract_tests};
use super::super::history::{JobFilter, JobHistory};
use super::super::queue::{Answer, JobQueue, NewJob, RootedPath, Write};
use super::SqliteStore;
use super::encoding::DB_FILE;
use super::schema::SCHEMA_VERSION;
use crate::os::version::FileVersion;

/// One store in a temp dir; every handle is a connection of its own.
struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    fn new() -> Sqlite {
        Sqlite {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

impl Backend for Sqlite {
    fn queue(&self, node: &str) -> Box<dyn JobQueue> {
        Box::new(SqliteStore::open(&self.state(), node).expect("opens"))
    }

    fn history(&self) -> Box<dyn JobHistory> {
        Box::new(SqliteStore::open_existing(&self.state()).expect("opens"))
    }

    fn cuts(&self) -> Box<dyn crate::store::cuts::CutStore> {
        Box::new(SqliteStore::open_existing(&self.state()).expect("opens"))
    }

    fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

contract_tests!(Sqlite::new());

#[test]
fn a_new_store_is_created_once_and_the_cli_never_creates_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state");
    assert!(matches!(
        SqliteStore::open_existing(&state),
        Err(StoreError::Missing(_))
    ));
    assert!(!state.exists());
    assert!(SqliteStore::open(&state, "a").expect("opens").is_new());
    assert!(!SqliteStore::open(&state, "a").expect("reopens").is_new());
}

#[test]
fn foreign_and_newer_files_are_refused_and_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join(DB_FILE);
    std::fs::write(
        &db,
        b"these are someone's notes, long enough to look like a header",
    )
    .expect("write");
    let err = SqliteStore::open(dir.path(), "a").err().expect("refused");
    assert!(
        err.to_string().contains("not a shotrouter state file"),
        "{err}"
    );
    std::fs::remove_file(&db).expect("rm");
    Connection::open(&db)
        .expect("sqlite")
        .execute_batch("CREATE TABLE invoices (id INTEGER)")
        .expect("foreign");
    let err = SqliteStore::open(dir.path(), "a").err().expect("refused");
    assert!(err.to_string().contains("another application"), "{err}");
    std::fs::remove_file(&db).expect("rm");
    drop(SqliteStore::open(dir.path(), "a").expect("create"));
    Connection::open(&db)
        .expect("sqlite")
        .execute_batch("PRAGMA user_version = 99")
        .expect("bump");
    let err = SqliteStore::open(dir.path(), "a").err().expect("refused");
    assert!(
        matches!(
            err,
            StoreError::TooNew {
                found: 99,
                supported: SCHEMA_VERSION,
                ..
            }
        ),
        "{err}"
    );
}

/// Where `tests/data/store-v1` was made (see its README): its paths are absolute.
const V1_SHOTS: &str = "/tmp/shotrouter-v1-fixture/shots";
const PLATE_B_MTIME: i128 = 1_767_323_045_123_456_789;
const FRAMES_MTIME: i128 = 1_767_323_047_500_000_000;

/// A copy of the v1 fixture, opened (so migrated) by this release, its root not registered.
fn v1_store_unregistered() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-v1");
    std::fs::copy(fixture.join(DB_FILE), dir.path().join(DB_FILE)).expect("copy");
    let store = SqliteStore::open(dir.path(), "node-2").expect("migrates");
    (dir, store)
}

fn v1_store() -> (tempfile::TempDir, SqliteStore) {
    let (dir, mut store) = v1_store_unregistered();
    store
        .register_roots(&[("shots".into(), PathBuf::from(V1_SHOTS))])
        .expect("roots");
    (dir, store)
}

fn shots(rel: &str) -> RootedPath {
    RootedPath {
        root: "shots".into(),
        rel: PathBuf::from(rel),
    }
}

/// Another machine: another device, another inode.
fn seen_elsewhere(size: u64, mtime_ns: i128) -> FileVersion {
    FileVersion {
        dev: 4242,
        ino: 77,
        size,
        mtime_ns,
    }
}

#[test]
fn a_v1_store_is_migrated_in_place_and_keyed_under_its_root() {
    let (dir, store) = v1_store();
    let version: i32 = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    assert!(!store.is_new());
    let all = JobFilter {
        limit: 10,
        ..JobFilter::default()
    };
    let rows = store.jobs(&all).expect("jobs");
    let seen: Vec<(i64, &str, &str, &str)> = rows
        .iter()
        .map(|r| (r.id, r.rule.as_str(), r.status.as_str(), r.path.as_str()))
        .collect();
    let frames = format!("{V1_SHOTS}/sh010/comp/sh010_comp.####.tif");
    assert_eq!(
        seen,
        [
            (3, "comp-frames", "done", frames.as_str()),
            (
                2,
                "copy-plates",
                "done",
                &format!("{V1_SHOTS}/plates/a.txt")
            ),
            (
                1,
                "copy-plates",
                "done",
                &format!("{V1_SHOTS}/plates/b.txt")
            ),
        ]
    );
    let roots: Vec<(String, Vec<u8>)> = store
        .conn
        .prepare("SELECT root, rel FROM files ORDER BY id")
        .expect("q")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("read");
    assert_eq!(
        roots,
        [
            ("shots".to_string(), b"plates/b.txt".to_vec()),
            ("shots".to_string(), b"plates/a.txt".to_vec()),
            (
                "shots".to_string(),
                b"sh010/comp/sh010_comp.####.tif".to_vec()
            ),
        ]
    );
    let record = store
        .file(Path::new(&format!("{V1_SHOTS}/copies/a.txt")))
        .expect("q")
        .expect("a v1 product");
    assert_eq!(record.produced_by, Some(("copy-plates".into(), 2)));
    let mut names = store.rule_names().expect("rules");
    names.sort();
    assert_eq!(names, ["comp-frames", "copy-plates"]);
    drop(dir);
}

#[test]
fn the_cli_leaves_a_v1_store_to_the_daemon() {
    let dir = tempfile::tempdir().expect("tmp");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-v1");
    std::fs::copy(fixture.join(DB_FILE), dir.path().join(DB_FILE)).expect("copy");
    let err = SqliteStore::open_existing(dir.path())
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            StoreError::Outdated {
                found: 1,
                current: SCHEMA_VERSION,
                ..
            }
        ),
        "{err}"
    );
    let version: i32 = Connection::open(dir.path().join(DB_FILE))
        .expect("sqlite")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 1, "untouched");
    drop(SqliteStore::open(dir.path(), "node-2").expect("the daemon migrates"));
    SqliteStore::open_existing(dir.path()).expect("then the cli opens it");
}

#[test]
fn a_v1_store_catches_up_nothing_it_already_ran() {
    let (_dir, mut store) = v1_store();
    let plate = shots("plates/b.txt");
    assert!(
        store
            .wants_catch_up("copy-plates", &plate, seen_elsewhere(26, PLATE_B_MTIME))
            .expect("q"),
        "changed size"
    );
    assert!(
        !store
            .wants_catch_up("copy-plates", &plate, seen_elsewhere(25, PLATE_B_MTIME))
            .expect("q"),
        "same size and mtime, another inode and device"
    );
    assert!(
        store
            .wants_catch_up("copy-plates", &plate, seen_elsewhere(25, PLATE_B_MTIME + 1))
            .expect("q"),
        "the upgraded row now compares the inode too: a changed mtime is new"
    );
    let frames = shots("sh010/comp/sh010_comp.####.tif");
    let digest = FileVersion {
        ino: 123_456_789,
        ..seen_elsewhere(44, FRAMES_MTIME)
    };
    assert!(
        store
            .wants_catch_up("comp-frames", &frames, FileVersion { size: 45, ..digest })
            .expect("q"),
        "a frame grew"
    );
    assert!(
        !store
            .wants_catch_up("comp-frames", &frames, digest)
            .expect("q"),
        "the sequence's digest differs between releases, its total size and newest mtime not"
    );
    let again = NewJob {
        rule: "comp-frames".into(),
        rule_hash: "h".into(),
        input: frames,
        version: digest,
        steps: vec![vec!["true".into()]],
        output: None,
        unplannable: None,
        skipped: None,
        follow_moves: true,
        baseline_runs: false,
        tags: Vec::new(),
        concurrency: None,
        priority: 0,
        plan: String::new(),
        waiting: None,
    };
    let answers = store
        .commit(&[Write::Enqueue {
            job: Box::new(again),
            claim: true,
        }])
        .expect("commit");
    assert_eq!(
        answers,
        [Answer::Duplicate],
        "the v1 job is that version's job"
    );
}

#[test]
fn a_legacy_file_met_first_by_an_event_is_a_duplicate_too() {
    let (_dir, mut store) = v1_store();
    let again = NewJob {
        rule: "copy-plates".into(),
        rule_hash: "h".into(),
        input: shots("plates/a.txt"),
        version: seen_elsewhere(8, PLATE_B_MTIME),
        steps: vec![],
        output: None,
        unplannable: None,
        skipped: None,
        follow_moves: true,
        baseline_runs: false,
        tags: Vec::new(),
        concurrency: None,
        priority: 0,
        plan: String::new(),
        waiting: None,
    };
    let enqueue = Write::Enqueue {
        job: Box::new(again),
        claim: false,
    };
    assert_eq!(
        store.commit(&[enqueue.clone(), enqueue]).expect("commit"),
        [Answer::Duplicate, Answer::Duplicate]
    );
    assert_eq!(store.status().expect("status").queued, 0);
}

#[test]
fn a_legacy_row_joins_the_row_this_release_recorded_first() {
    let (_dir, mut store) = v1_store_unregistered();
    let abs = format!("{V1_SHOTS}/plates/a.txt");
    let old_ino: i64 = store
        .conn
        .query_row("SELECT ino FROM jobs WHERE id = 2", [], |r| r.get(0))
        .expect("job 2");
    // Seen by this release before its root was registered, on the machine that ran job 2.
    let job = NewJob {
        rule: "copy-plates".into(),
        rule_hash: "h".into(),
        input: shots("plates/a.txt"),
        version: FileVersion {
            ino: old_ino as u64,
            ..seen_elsewhere(8, PLATE_B_MTIME)
        },
        steps: vec![],
        output: None,
        unplannable: None,
        skipped: None,
        follow_moves: true,
        baseline_runs: false,
        tags: Vec::new(),
        concurrency: None,
        priority: 0,
        plan: String::new(),
        waiting: None,
    };
    let answers = store
        .commit(&[Write::Enqueue {
            job: Box::new(job),
            claim: false,
        }])
        .expect("commit");
    let [Answer::Enqueued { id, .. }] = answers[..] else {
        panic!("a new key before the adoption: {answers:?}");
    };
    store
        .register_roots(&[("shots".into(), PathBuf::from(V1_SHOTS))])
        .expect("roots");
    let files: i64 = store
        .conn
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .expect("count");
    assert_eq!(files, 3, "merged, not duplicated");
    let record = store.file(Path::new(&abs)).expect("q").expect("known");
    let ids: Vec<i64> = record.jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, [id, 2]);
    let generations: Vec<i64> = store
        .conn
        .prepare("SELECT generation FROM jobs WHERE id IN (2, ?1) ORDER BY id")
        .expect("q")
        .query_map([id], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("read");
    assert_eq!(
        generations,
        [1, 0],
        "the legacy job follows the one already there"
    );
}

#[test]
fn the_hot_path_uses_indexes() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path(), "a").expect("opens");
    let plan = |sql: &str| -> String {
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).expect("rows");
        rows.collect::<Result<Vec<_>, _>>()
            .expect("read")
            .join("; ")
    };
    let legacy = plan(
        "UPDATE OR IGNORE jobs SET ino = 1 WHERE file_id = (SELECT id FROM files
             WHERE root = 'r' AND rel = x'61' AND legacy = 1 AND size = 1 AND mtime_ns = 1)
         AND ino = (SELECT ino FROM files WHERE root = 'r' AND rel = x'61')
         AND size = 1 AND mtime_ns = 1",
    );
    assert!(legacy.contains("jobs_by_version"), "{legacy}");
    // The poll's cursor: `queue::tests::the_poll_searches_the_queue_from_its_cursor`.
    let next = plan(&format!("SELECT {}", super::NEXT_QUEUE_SEQ));
    assert!(next.contains("jobs_by_queue"), "{next}");
    let moved = plan(
        "SELECT f.id FROM files f WHERE f.ino = 1 AND f.size = 1 AND f.mtime_ns = 1
             AND f.legacy = 0 AND NOT (f.root = 'r' AND f.rel = x'61')
             AND EXISTS (SELECT 1 FROM jobs j WHERE j.file_id = f.id AND j.rule = 'x'
                 AND j.ino = 1 AND j.size = 1 AND j.mtime_ns = 1 AND j.status = 'done')",
    );
    assert!(
        moved.contains("files_by_content") && moved.contains("jobs_by_version"),
        "{moved}"
    );
    // `active!` is the partial index's own predicate, and a test for one status implies it.
    let active = plan(concat!("SELECT count(*) FROM jobs WHERE ", active!()));
    assert!(active.contains("jobs_active"), "{active}");
    let queued = plan("SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 5");
    assert!(queued.contains("jobs_active"), "{queued}");
}
