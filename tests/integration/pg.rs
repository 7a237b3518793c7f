//! A real PostgreSQL server for the integration tests (the library's own test server, shared
//! through `#[path]`): one per test process, a fresh database per test, stopped when the
//! process exits. And what the store does when that server goes away and comes back.

use std::path::PathBuf;

use shotrouter::os::version::FileVersion;
use shotrouter::store::queue::{Answer, ClaimFilter, NewJob, RootedPath, Write};
use shotrouter::store::{Location, StoreError, open_history, open_queue};

#[path = "../../src/store/postgres/test_server.rs"]
pub mod test_server;

/// The URL of a fresh, empty database on this process's shared server (trusted login as
/// `postgres`, no password).
pub fn fresh_store_url() -> String {
    let server = test_server::shared();
    server.admin_url(&server.fresh_database())
}

fn portable(rel: &str, ino: u64) -> Write {
    Write::Enqueue {
        job: Box::new(NewJob {
            rule: "review".into(),
            rule_hash: "h".into(),
            input: RootedPath {
                root: "shots".into(),
                rel: PathBuf::from(rel),
            },
            version: FileVersion {
                dev: 1,
                ino,
                size: 10,
                mtime_ns: 1_000,
            },
            steps: vec![vec!["true".into()]],
            output: None,
            unplannable: None,
            skipped: None,
            follow_moves: false,
            baseline_runs: false,
            tags: Vec::new(),
            concurrency: None,
            priority: 0,
            plan: "{}".into(),
            waiting: None,
        }),
        claim: false,
    }
}

/// The server stops and starts again: calls in between fail with an error that names the
/// store (never a password) and tells what to check; the same handles work again afterwards,
/// and what was committed before is all there.
#[test]
fn the_store_reconnects_after_the_database_restarts() {
    let server = test_server::TestServer::start();
    let url = server.admin_url(&server.fresh_database());
    let loc = Location::parse(&url).expect("a URL");
    let mut watcher = open_queue(&loc, "watcher").expect("opens");
    let mut worker = open_queue(&loc, "worker").expect("opens");
    let answers = watcher
        .commit(&[portable("a.tif", 1), portable("b.tif", 2)])
        .expect("enqueue");
    assert!(answers.iter().all(|a| matches!(a, Answer::Enqueued { .. })));
    let first = worker
        .claim_next(&ClaimFilter::default(), 1)
        .expect("claim");
    assert_eq!(first.len(), 1);

    server.stop();
    // The first call finds the connection gone; the next ones cannot connect.
    assert!(worker.heartbeat(None).is_err());
    match worker.heartbeat(None) {
        Err(e @ StoreError::Connect { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&format!("`{url}`")), "{text}");
            assert!(text.contains("check that the server runs"), "{text}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(matches!(
        open_history(&loc).err(),
        Some(StoreError::Connect { .. })
    ));

    server.start_again();
    let _ = watcher.heartbeat(None);
    watcher.heartbeat(None).expect("the watcher is back");
    worker.heartbeat(None).expect("the worker is back");
    let second = worker
        .claim_next(&ClaimFilter::default(), 5)
        .expect("claim");
    assert_eq!(
        second.len(),
        1,
        "b.tif; a.tif is still claimed by the worker"
    );
    assert_ne!(second[0].claim.id, first[0].claim.id);
    assert!(
        worker
            .lost_claims(&[first[0].claim])
            .expect("lost")
            .is_empty()
    );
    let status = open_history(&loc).expect("opens").status().expect("status");
    assert_eq!((status.claimed, status.queued), (2, 0));
}
