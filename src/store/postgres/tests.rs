//! The PostgreSQL backend under the store contract, on a real server the tests start, plus
//! what only it has: its schema's version checks, logins with a password file that never
//! shows, notifications of queued work, due times in the database's clock, and a connection
//! opened again after the server dropped it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use postgres::fallible_iterator::FallibleIterator;

use super::super::contract::{Backend, contract_tests};
use super::super::history::JobHistory;
use super::super::location::{Location, PgLocation};
use super::super::queue::{Answer, ClaimFilter, Ending, JobQueue, NewJob, RootedPath, Write};
use super::super::{StoreError, now_ms};
use super::schema::{MIGRATION_LOCK, SCHEMA_VERSION, migrate};
use super::test_server::{PASSWORD, PASSWORD_USER, shared};
use super::{CHANNEL, PgStore};
use crate::os::version::FileVersion;

/// One fresh database on the shared server; every handle is a connection of its own.
struct Pg {
    loc: PgLocation,
    scratch: tempfile::TempDir,
}

fn location(url: &str) -> PgLocation {
    match Location::parse_with(url, &|_| None).expect("parses") {
        Location::Postgres(pg) => pg,
        Location::Folder(dir) => panic!("not a URL: {}", dir.display()),
    }
}

impl Pg {
    fn new() -> Pg {
        let server = shared();
        Pg {
            loc: location(&server.admin_url(&server.fresh_database())),
            scratch: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn sql(&self) -> postgres::Client {
        super::connect(&self.loc).expect("connects")
    }
}

impl Backend for Pg {
    fn queue(&self, node: &str) -> Box<dyn JobQueue> {
        Box::new(PgStore::open(&self.loc, node).expect("opens"))
    }

    fn history(&self) -> Box<dyn JobHistory> {
        Box::new(PgStore::open_existing(&self.loc).expect("opens"))
    }

    fn cuts(&self) -> Box<dyn crate::store::cuts::CutStore> {
        Box::new(PgStore::open_existing(&self.loc).expect("opens"))
    }

    fn scratch(&self) -> &Path {
        self.scratch.path()
    }
}

contract_tests!(Pg::new());

fn job(rel: &str, ino: u64) -> Write {
    Write::Enqueue {
        job: Box::new(NewJob {
            rule: "review".into(),
            rule_hash: "h".into(),
            input: RootedPath {
                root: "shots".into(),
                rel: rel.into(),
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
            plan: String::new(),
            waiting: None,
        }),
        claim: false,
    }
}

#[test]
fn the_schema_is_created_once_versioned_and_refused_when_foreign_or_newer() {
    let pg = Pg::new();
    assert!(
        matches!(
            PgStore::open_existing(&pg.loc).err(),
            Some(StoreError::NoSchema { .. })
        ),
        "the CLI never creates one"
    );
    assert!(PgStore::open(&pg.loc, "a").expect("creates").is_new());
    assert!(!PgStore::open(&pg.loc, "a").expect("reopens").is_new());
    let mut sql = pg.sql();
    sql.batch_execute("UPDATE shotrouter_schema SET version = 99")
        .expect("bump");
    let err = PgStore::open(&pg.loc, "a").err().expect("refused");
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
    assert!(err.to_string().contains("upgrade shotrouter"), "{err}");
    sql.batch_execute("UPDATE shotrouter_schema SET version = 0")
        .expect("older");
    let err = PgStore::open_existing(&pg.loc).err().expect("refused");
    assert!(
        matches!(err, StoreError::Outdated { found: 0, .. }),
        "{err}"
    );

    let other = Pg::new();
    other
        .sql()
        .batch_execute("CREATE TABLE jobs (invoice INTEGER); INSERT INTO jobs VALUES (7)")
        .expect("foreign");
    let err = PgStore::open(&other.loc, "a").err().expect("refused");
    assert!(
        err.to_string().contains("`jobs` of another application"),
        "{err}"
    );
    let kept: i64 = other
        .sql()
        .query_one("SELECT count(*) FROM jobs", &[])
        .expect("read")
        .get(0);
    assert_eq!(kept, 1, "left untouched");
}

/// Runs `open` on another thread while this test holds the migration lock; once `open` waits
/// for the lock, migrates the empty database and releases the lock. Whether `open` was still
/// waiting then, and its answer.
fn opened_during_a_migration<T: Send>(pg: &Pg, open: impl FnOnce() -> T + Send) -> (bool, T) {
    let mut migrator = pg.sql();
    migrator
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .expect("lock");
    std::thread::scope(|s| {
        let opening = s.spawn(open);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let waiting: i64 = migrator
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                    &[],
                )
                .expect("pg_locks")
                .get(0);
            if waiting > 0 || opening.is_finished() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for the opening to wait for the lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // This session holds the lock, so migrating here takes it once more.
        assert!(
            migrate(&mut migrator, &pg.loc.to_string()).expect("migrates"),
            "created here"
        );
        let waited = !opening.is_finished();
        migrator
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .expect("unlock");
        (waited, opening.join().expect("the opening thread"))
    })
}

/// Issue 19: a node that looked at the database before another node's migration committed
/// waits for it and then finds the schema made, rather than creating it again (`relation
/// "shotrouter_schema" already exists`: a look begun before the lock was granted missed it).
#[test]
fn issue_19_a_node_opening_during_a_migration_waits_and_finds_it_made() {
    let pg = Pg::new();
    let (waited, opened) =
        opened_during_a_migration(&pg, || PgStore::open(&pg.loc, "late").map(|s| s.is_new()));
    assert!(
        !opened.expect("opens the schema made meanwhile"),
        "not created again"
    );
    assert!(waited, "it waited for the migration");
}

/// Issue 19: the operations CLI started during a migration waits for it and finds the schema
/// current, rather than none or another application's half-seen tables.
#[test]
fn issue_19_the_cli_opening_during_a_migration_waits_and_finds_it_current() {
    let pg = Pg::new();
    let (waited, opened) =
        opened_during_a_migration(&pg, || PgStore::open_existing(&pg.loc).map(drop));
    assert!(waited, "it waited for the migration");
    opened.expect("finds the schema current");
}

#[test]
fn a_password_file_logs_in_and_the_password_never_shows() {
    let server = shared();
    let db = server.fresh_database();
    let dir = tempfile::tempdir().expect("tmp");
    let passfile = dir.path().join("pgpass");
    let escaped = PASSWORD.replace('\\', "\\\\").replace(':', "\\:");
    std::fs::write(
        &passfile,
        format!("127.0.0.1:{}:*:{PASSWORD_USER}:{escaped}\n", server.port),
    )
    .expect("passfile");
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let url = format!(
        "postgres://{PASSWORD_USER}@127.0.0.1:{}/{db}?passfile={}",
        server.port,
        passfile.display()
    );
    let loc = Location::parse_with(&url, &|_| None).expect("parses");
    let mut q = super::super::open_queue(&loc, "a").expect("logs in with the password file");
    q.heartbeat(None).expect("works");
    let h = super::super::open_history(&loc).expect("opens for the CLI");
    assert_eq!(h.status().expect("status").nodes.len(), 1);

    let encoded: String = PASSWORD
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let with_password = format!(
        "postgres://{PASSWORD_USER}:{encoded}@127.0.0.1:{}/{db}",
        server.port
    );
    let loc = Location::parse_with(&with_password, &|_| None).expect("parses");
    assert_eq!(
        loc.to_string(),
        format!(
            "postgres://{PASSWORD_USER}:***@127.0.0.1:{}/{db}",
            server.port
        )
    );
    assert!(!format!("{loc:?}").contains("R0uter"));
    drop(super::super::open_queue(&loc, "b").expect("logs in with the URL's password"));

    let wrong = with_password.replace(&encoded, "Sh0t-R0uter-wrong");
    let loc = Location::parse_with(&wrong, &|_| None).expect("parses");
    let err = super::super::open_queue(&loc, "c")
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        err.contains(":***@127.0.0.1"),
        "names the redacted URL: {err}"
    );
    assert!(!err.contains("R0uter"), "{err}");
    let by_env = Location::parse_with(
        &format!("postgres://127.0.0.1:{}/{db}", server.port),
        &|name| match name {
            "PGUSER" => Some(PASSWORD_USER.into()),
            "PGPASSWORD" => Some("Sh0t-R0uter-wrong".into()),
            _ => None,
        },
    )
    .expect("parses");
    let err = super::super::open_queue(&by_env, "d")
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("password authentication failed") && !err.contains("R0uter"),
        "{err}"
    );

    let closed = format!("postgres://{PASSWORD_USER}:{encoded}@127.0.0.1:1/{db}");
    let loc = Location::parse_with(&closed, &|_| None).expect("parses");
    let err = super::super::open_queue(&loc, "e")
        .err()
        .expect("unreachable")
        .to_string();
    assert!(
        err.contains("cannot connect to the PostgreSQL store"),
        "{err}"
    );
    assert!(!err.contains("R0uter"), "{err}");
}

#[test]
fn commits_that_queue_work_notify_and_others_do_not() {
    let pg = Pg::new();
    let mut q = PgStore::open(&pg.loc, "a").expect("opens");
    let mut listener = pg.sql();
    listener
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .expect("listen");
    let heard = |listener: &mut postgres::Client| {
        let mut notes = listener.notifications();
        let mut it = notes.timeout_iter(std::time::Duration::from_millis(300));
        let mut n = 0;
        while let Ok(Some(_)) = it.next() {
            n += 1;
        }
        n
    };
    let answers = q
        .commit(&[job("a.tif", 1), job("b.tif", 2)])
        .expect("enqueue");
    let Answer::Enqueued { id, .. } = answers[0] else {
        panic!("{answers:?}");
    };
    assert_eq!(heard(&mut listener), 1, "one commit, one notification");
    let Answer::Claimed(claim) = q.commit(&[Write::Claim { id }]).expect("claim")[0] else {
        panic!("claimable");
    };
    assert_eq!(heard(&mut listener), 0, "a claim queues nothing");
    let retry = Ending::Retry {
        reason: "exited with status 1".into(),
        not_before: now_ms() + 3_600_000,
    };
    q.commit(&[Write::Finish {
        claim,
        ending: retry,
    }])
    .expect("retry");
    assert_eq!(heard(&mut listener), 1, "a retry queues");
    // The due time is in the database's clock: an hour from its now, whatever ours says.
    let due_in_s: f64 = pg
        .sql()
        .query_one(
            "SELECT extract(epoch from due_at - now())::float8 FROM jobs WHERE id = $1",
            &[&id],
        )
        .expect("due")
        .get(0);
    assert!((3500.0..=3600.0).contains(&due_in_s), "{due_in_s}");
    let mut h = PgStore::open_existing(&pg.loc).expect("opens");
    assert_eq!(h.cancel(&[id]).expect("cancel").len(), 1);
    assert_eq!(heard(&mut listener), 0, "a cancel queues nothing");
    assert_eq!(h.retry(&[id], None).expect("retry"), [id]);
    assert_eq!(heard(&mut listener), 1, "the CLI's retry queues");
}

#[test]
fn a_dropped_connection_is_opened_again() {
    let pg = Pg::new();
    let mut q = PgStore::open(&pg.loc, "a").expect("opens");
    q.heartbeat(None).expect("heartbeat");
    let killed: i64 = pg
        .sql()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .expect("terminate")
        .get(0);
    assert_eq!(killed, 1);
    // The first call finds the connection gone (and may fail); the next opens a new one.
    let _ = q.heartbeat(None);
    q.heartbeat(Some("back")).expect("reconnected");
    let nodes = PgStore::open_existing(&pg.loc)
        .expect("opens")
        .status()
        .expect("status")
        .nodes;
    assert_eq!(nodes[0].health.as_deref(), Some("back"));
}

fn portable(rel: &str, ino: u64, concurrency: Option<u32>) -> Write {
    let Write::Enqueue { mut job, claim } = job(rel, ino) else {
        unreachable!("job() enqueues")
    };
    job.plan = "{}".into();
    job.concurrency = concurrency;
    if concurrency.is_some() {
        job.rule = "dnx".into();
    }
    Write::Enqueue { job, claim }
}

#[test]
fn an_idle_worker_is_woken_by_an_enqueue_on_another_connection() {
    let pg = Pg::new();
    let mut watcher = PgStore::open(&pg.loc, "watcher").expect("opens");
    let mut worker = PgStore::open(&pg.loc, "worker").expect("opens");
    assert!(
        worker
            .claim_next(&ClaimFilter::default(), 1)
            .expect("claim")
            .is_empty()
    );
    assert!(
        !worker
            .wait_for_work(std::time::Duration::from_millis(100))
            .expect("wait"),
        "nothing queued"
    );
    let woken = std::thread::scope(|s| {
        let waiter = s.spawn(move || {
            let woke = worker
                .wait_for_work(std::time::Duration::from_secs(60))
                .expect("wait");
            (
                woke,
                worker
                    .claim_next(&ClaimFilter::default(), 1)
                    .expect("claim"),
            )
        });
        watcher
            .commit(&[portable("a.tif", 1, None)])
            .expect("enqueue");
        waiter.join().expect("waiter")
    });
    assert!(
        woken.0,
        "woken by the notification, not the minute's timeout"
    );
    assert_eq!(woken.1.len(), 1, "and the job is there to claim");
}

#[test]
fn racing_workers_keep_the_cluster_wide_limit_and_take_each_job_once() {
    let pg = Pg::new();
    let mut watcher = PgStore::open(&pg.loc, "watcher").expect("opens");
    let writes: Vec<Write> = (0..60)
        .map(|i| portable(&format!("f{i}.tif"), i, (i % 2 == 0).then_some(3)))
        .collect();
    watcher.commit(&writes).expect("enqueue");
    let loc = &pg.loc;
    let taken: Vec<Vec<i64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..6)
            .map(|n| {
                s.spawn(move || {
                    let mut q = PgStore::open(loc, &format!("w{n}")).expect("opens");
                    let mut sql = super::connect(loc).expect("connects");
                    let mut mine = Vec::new();
                    let mut idle = 0;
                    while idle < 3 {
                        let got = q.claim_next(&ClaimFilter::default(), 2).expect("claim");
                        let held: i64 = sql
                            .query_one(
                                "SELECT count(*) FROM jobs
                                 WHERE rule = 'dnx' AND status IN ('claimed', 'running')",
                                &[],
                            )
                            .expect("count")
                            .get(0);
                        assert!(held <= 3, "{held} dnx jobs held at once");
                        idle = if got.is_empty() { idle + 1 } else { 0 };
                        for job in got {
                            mine.push(job.claim.id);
                            let done = Write::Finish {
                                claim: job.claim,
                                ending: Ending::Done,
                            };
                            assert_eq!(q.commit(&[done]).expect("finish"), [Answer::Ok]);
                        }
                        if idle > 0 {
                            let _ = q.wait_for_work(std::time::Duration::from_millis(50));
                        }
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let mut all: Vec<i64> = taken.concat();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (60, 60), "every job once, none twice");
    let done: i64 = pg
        .sql()
        .query_one("SELECT count(*) FROM jobs WHERE status = 'done'", &[])
        .expect("count")
        .get(0);
    assert_eq!(done, 60);
}

#[test]
fn retried_and_declined_jobs_are_due_by_the_database_clock() {
    let pg = Pg::new();
    let mut q = PgStore::open(&pg.loc, "w").expect("opens");
    q.commit(&[portable("a.tif", 1, None), portable("b.tif", 2, None)])
        .expect("enqueue");
    let got = q.claim_next(&ClaimFilter::default(), 2).expect("claim");
    assert_eq!(got.len(), 2);
    let soon = Ending::Retry {
        reason: "exited with status 1".into(),
        not_before: now_ms() - 1_000,
    };
    let declined = Ending::Declined {
        reason: "root `shots` is not mounted here".into(),
    };
    let answers = q
        .commit(&[
            Write::Finish {
                claim: got[0].claim,
                ending: soon,
            },
            Write::Finish {
                claim: got[1].claim,
                ending: declined,
            },
        ])
        .expect("finish");
    assert_eq!(answers, [Answer::Ok, Answer::Ok]);
    let again = q.claim_next(&ClaimFilter::default(), 2).expect("claim");
    assert_eq!(
        again.iter().map(|j| j.claim.id).collect::<Vec<_>>(),
        [got[0].claim.id],
        "the retry is due, the declined job waits"
    );
    // Ten seconds pass, by the database's clock.
    pg.sql()
        .execute(
            "UPDATE jobs SET due_at = due_at - interval '10 seconds' WHERE id = $1",
            &[&got[1].claim.id],
        )
        .expect("time passes");
    let later = q.claim_next(&ClaimFilter::default(), 2).expect("claim");
    assert_eq!(later.len(), 1);
    assert_eq!(
        (later[0].claim.id, later[0].claim.attempt),
        (got[1].claim.id, 1)
    );
}

/// A node frozen inside a transaction cannot hold the cluster's locks for longer than the
/// server's idle-in-transaction timeout: every session shotrouter opens sets it.
#[test]
fn a_session_frozen_in_a_transaction_is_ended_by_the_server() {
    let pg = Pg::new();
    let mut client = super::connect(&pg.loc).expect("connects");
    let timeout: String = client
        .query_one("SHOW idle_in_transaction_session_timeout", &[])
        .expect("show")
        .get(0);
    assert_eq!(timeout, "10s");
    // The server ends a session that sits in its transaction past the timeout.
    client
        .batch_execute("SET idle_in_transaction_session_timeout = '200ms'; BEGIN; SELECT pg_advisory_xact_lock(4242)")
        .expect("a transaction holding a lock");
    let mut other = pg.sql();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let taken: bool = other
            .query_one("SELECT pg_try_advisory_lock(4242)", &[])
            .expect("try")
            .get(0);
        if taken {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the frozen session still holds its lock after 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        client.is_closed() || client.simple_query("SELECT 1").is_err(),
        "the server ended the frozen session"
    );
}
