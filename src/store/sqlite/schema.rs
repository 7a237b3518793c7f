//! The SQLite schema and its migrations, numbered by `PRAGMA user_version`. A fresh store runs
//! every migration from 1, exactly as a store written by the previous release runs the ones it
//! lacks, so both end in the same schema. Each migration runs in the opener's `BEGIN IMMEDIATE`
//! transaction with foreign keys off (tables are rebuilt), and never deletes a job.
//!
//! # Version 2 and the rows it inherits
//!
//! - Paths are `(root, rel)`: a named watch root and the path under it, so nodes that mount the
//!   tree at different places agree. Rows from v1 keep their absolute path with `root = ''`
//!   until `register_roots` adopts the ones under a registered root.
//! - A version is `(ino, size, mtime_ns)`, without the device number, which differs between
//!   machines. v1 versions included the device, and a sequence's `ino` was a digest whose hash
//!   depended on the Rust release; so migrated file rows carry `legacy = 1`. A legacy row
//!   matches a presented version on `(size, mtime_ns)` alone; the first match upgrades the file
//!   row and the jobs of that version to the presented `ino` (and clears `legacy`), so a store
//!   written by the previous release re-runs nothing and the unique index of `jobs` then finds
//!   the upgraded jobs as duplicates.
//! - v1 could record the same (rule, file, version) several times (a failed version enqueued
//!   again, `rerun`); those rows become generations 0, 1, 2… of the key, in id order, so the
//!   unique index holds them all.
//! - Enqueue is idempotent by that unique index (`INSERT … ON CONFLICT DO NOTHING`). v1 let a
//!   fresh event queue a failed version again; now the failed or cancelled job stays as it is
//!   and the event is a duplicate: failed versions run again through catch-up at start-up
//!   (`wants_catch_up`) or the CLI's `retry`.
//! - v1's `counters` row is gone: `queue_seq` is per row, 0 for the engine's own jobs and
//!   `max + 1` for jobs queued by someone else. Migrated jobs keep theirs only while queued.
//! - v1 jobs left `running` keep `node = NULL`: the first node to `recover` takes them over
//!   (v1 was single-node).
//!
//! # Version 3
//!
//! An index of files by version, `(ino, size, mtime_ns)`: a file renamed within the tree is
//! found under its old path and the store follows it (see `enqueue`'s `follow_moves`). A
//! `notices` table: files a producer declared complete, for the daemon to route at once. A
//! node's `health`: what part of the tree it cannot cover, as its heartbeat last said.
//!
//! # Version 4
//!
//! What workers on other machines need (`shotrouter worker`): a job's `tags` (a worker takes
//! it only when it holds them all), its rule's cluster-wide `concurrency`, and its `plan` (how
//! to run it without the rules file); a node's `role` and its `lease_ms` (how long its claims
//! outlive its last heartbeat: each node heartbeats at a third of its own lease).
//!
//! # Version 5
//!
//! The argv a claim ran where it differs from the planned one (a worker's `--map`), the node
//! that ran it and the claim's token: `shotrouter job` shows it while that claim is the last.
//!
//! # Version 6
//!
//! The same tables and indexes, with the status tests of the `jobs` CHECK and of the
//! `jobs_active` partial index spelled as `=` ... `OR` instead of `IN (...)`. SQLite evaluates
//! an `IN` list of three or more constants by building a temporary b-tree, and every write of a
//! job's status evaluated three of them (the CHECK, and the index's test on the old and the new
//! row): about half of what a claim or an end cost. Queries that test for an active job use
//! `active!`, the index's own words, which is how SQLite recognises a partial index it may use.
//!
//! Editorial's cuts (issue 22): `cuts`, one row per imported revision of a cut with its shots
//! and unmatched items as JSON, and `cut_shots`, one row per shot a revision shows with its
//! `head_in`, `cut_in`, `cut_out` and `tail_out`, keyed `(shot, cut, revision)`.
//!
//! Lineage and declared inputs (issue 23): the status `waiting` (a job whose declared inputs
//! are not there yet; it counts as unfinished, in `active!` and `jobs_active`), and the
//! tables and columns described in `store::lineage`.

use rusqlite::{Connection, TransactionBehavior};

/// The schema this build writes.
pub(super) const SCHEMA_VERSION: i32 = 6;

/// Version 1, verbatim from the previous release.
const V1: &str = "CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        path BLOB NOT NULL UNIQUE,
        dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        baseline INTEGER NOT NULL DEFAULT 0,
        seen_at INTEGER NOT NULL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        rule TEXT NOT NULL,
        rule_hash TEXT NOT NULL,
        file_id INTEGER NOT NULL REFERENCES files(id),
        dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        steps BLOB,
        output BLOB,
        temp_output BLOB,
        publish_dev INTEGER, publish_ino INTEGER, publish_size INTEGER, publish_mtime_ns INTEGER,
        exit_status TEXT,
        error TEXT,
        pgid INTEGER, leader_start INTEGER, boot_id TEXT,
        created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
        not_before INTEGER NOT NULL DEFAULT 0,
        queue_seq INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_by_input ON jobs(file_id, rule);
    CREATE INDEX jobs_by_status ON jobs(status, finished_at);
    CREATE INDEX jobs_by_queue ON jobs(queue_seq) WHERE status = 'queued';
    CREATE TABLE outputs (
        path BLOB PRIMARY KEY,
        job_id INTEGER NOT NULL,
        rule TEXT NOT NULL,
        dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL
    );
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO counters VALUES ('queue_seq', 0);";

/// Version 2: rooted paths, versions without the device, claims with fencing tokens, nodes.
/// `jobs` has few and small indexes, since each costs on every write: the unique version index
/// (file first, so `file` and catch-up use its prefix), the active jobs (a partial index that
/// a job leaves when it ends, so it stays small and its pages stay in cache), finish times for
/// the counts of the last hours, and the partial `queue_seq` index that only jobs queued by
/// someone else enter.
const V2: &str = "CREATE TABLE roots (
        name TEXT PRIMARY KEY,
        path BLOB NOT NULL,
        node TEXT NOT NULL,
        seen_at INTEGER
    );
    CREATE TABLE nodes (name TEXT PRIMARY KEY, heartbeat_at INTEGER NOT NULL);
    CREATE TABLE files_v2 (
        id INTEGER PRIMARY KEY,
        root TEXT NOT NULL,
        rel BLOB NOT NULL,
        ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        legacy INTEGER NOT NULL DEFAULT 0,
        baseline INTEGER NOT NULL DEFAULT 0,
        seen_at INTEGER NOT NULL,
        UNIQUE (root, rel)
    );
    INSERT INTO files_v2 (id, root, rel, ino, size, mtime_ns, legacy, baseline, seen_at)
        SELECT id, '', path, ino, size, mtime_ns, 1, baseline, seen_at FROM files;
    CREATE TABLE jobs_v2 (
        id INTEGER PRIMARY KEY,
        rule TEXT NOT NULL,
        rule_hash TEXT NOT NULL,
        file_id INTEGER NOT NULL REFERENCES files(id),
        ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'claimed', 'running', 'done', 'failed', 'cancelled')),
        token INTEGER NOT NULL DEFAULT 0,
        node TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        steps BLOB,
        output BLOB,
        temp_output BLOB,
        publish_ino INTEGER, publish_size INTEGER, publish_mtime_ns INTEGER,
        exit_status TEXT,
        error TEXT,
        pgid INTEGER, leader_start INTEGER, boot_id TEXT,
        created_at INTEGER NOT NULL, claimed_at INTEGER, started_at INTEGER, finished_at INTEGER,
        not_before INTEGER NOT NULL DEFAULT 0,
        queue_seq INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO jobs_v2 (id, rule, rule_hash, file_id, ino, size, mtime_ns, generation, status,
            attempts, steps, output, temp_output, publish_ino, publish_size, publish_mtime_ns,
            exit_status, error, pgid, leader_start, boot_id, created_at, started_at, finished_at,
            not_before, queue_seq)
        SELECT id, rule, rule_hash, file_id, coalesce(ino, 0), coalesce(size, 0),
            coalesce(mtime_ns, 0),
            row_number() OVER (PARTITION BY file_id, rule, coalesce(ino, 0), coalesce(size, 0),
                coalesce(mtime_ns, 0) ORDER BY id) - 1,
            status, attempts, steps, output, temp_output, publish_ino, publish_size,
            publish_mtime_ns, exit_status, error, pgid, leader_start, boot_id, created_at,
            started_at, finished_at, not_before,
            CASE WHEN status = 'queued' THEN queue_seq ELSE 0 END
        FROM jobs;
    CREATE TABLE outputs_v2 (
        root TEXT NOT NULL,
        rel BLOB NOT NULL,
        job_id INTEGER NOT NULL,
        rule TEXT NOT NULL,
        ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        PRIMARY KEY (root, rel)
    );
    INSERT INTO outputs_v2 (root, rel, job_id, rule, ino, size, mtime_ns)
        SELECT '', path, job_id, rule, ino, size, mtime_ns FROM outputs;
    DROP TABLE outputs;
    DROP TABLE jobs;
    DROP TABLE files;
    DROP TABLE counters;
    ALTER TABLE files_v2 RENAME TO files;
    ALTER TABLE jobs_v2 RENAME TO jobs;
    ALTER TABLE outputs_v2 RENAME TO outputs;
    CREATE UNIQUE INDEX jobs_by_version ON jobs(file_id, rule, ino, size, mtime_ns, generation);
    CREATE INDEX jobs_active ON jobs(status) WHERE status IN ('queued', 'claimed', 'running');
    CREATE INDEX jobs_by_finish ON jobs(finished_at) WHERE finished_at IS NOT NULL;
    CREATE INDEX jobs_by_queue ON jobs(queue_seq) WHERE queue_seq > 0;";

/// Version 3: files found by content, so a renamed file is followed rather than run again;
/// notices from producers (`shotrouter notify`), taken by the daemon.
const V3: &str = "CREATE INDEX files_by_content ON files(ino, size, mtime_ns);
    CREATE TABLE notices (
        id INTEGER PRIMARY KEY,
        root TEXT NOT NULL,
        rel BLOB NOT NULL,
        at INTEGER NOT NULL
    );
    ALTER TABLE nodes ADD COLUMN health TEXT;";

/// Version 4: tags, cluster-wide concurrency and a plan per job, for workers; node roles.
/// Tags are stored sorted, each between commas (`,gpu,linux,`), empty for none.
const V4: &str = "ALTER TABLE jobs ADD COLUMN tags TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN concurrency INTEGER;
    ALTER TABLE jobs ADD COLUMN plan TEXT;
    ALTER TABLE nodes ADD COLUMN role TEXT;
    ALTER TABLE nodes ADD COLUMN lease_ms INTEGER;";

/// Version 5: the argv a claim ran (a worker's paths), beside the planned one; and how far a
/// running job's ffmpeg step got (JSON), recorded by the node that runs it, so a worker's
/// progress reaches `shotrouter job`, the API and the dashboard. The version of a product's
/// `copy:`/`move:` destination (`delivered_*`), so a job killed after its move resumes as
/// done. A run's handle where it is not a local process group (`run_remote`, `executor:id`,
/// e.g. a farm scheduler's job). Version 5 is in no release yet, so its columns may still grow here.
const V5: &str = "ALTER TABLE jobs ADD COLUMN ran_steps BLOB;
    ALTER TABLE jobs ADD COLUMN ran_node TEXT;
    ALTER TABLE jobs ADD COLUMN ran_token INTEGER;
    ALTER TABLE jobs ADD COLUMN progress TEXT;
    ALTER TABLE jobs ADD COLUMN delivered_ino INTEGER;
    ALTER TABLE jobs ADD COLUMN delivered_size INTEGER;
    ALTER TABLE jobs ADD COLUMN delivered_mtime_ns INTEGER;
    ALTER TABLE jobs ADD COLUMN run_remote TEXT;";

/// Version 6: `jobs` rebuilt with its status CHECK as `OR`s, `jobs_active` recreated likewise;
/// the columns, their order, the rows and their ids stay as they are. And editorial's cuts:
/// `cuts` (one row per revision, its shots as JSON) and `cut_shots` (one row per shot present,
/// keyed by shot first, for routing's lookup of a shot's latest frames). Control of the
/// night: a job's `priority` and `jobs_claimable`, the claim's order (higher priority first);
/// `run_now` (it may start outside its rule's window); `rule_defs.windows` (each rule's windows,
/// for workers); `paused`, the nodes and rules
/// `shotrouter pause` holds; a node's `tags` (which tagged jobs it can take). Version 6 is in
/// no release yet, so it may still grow here.
///
/// The plan (about 430 bytes of a 700-byte row in a burst) stays in `jobs`. In a side table
/// keyed by job, each enqueue writes one more row, and a status write saves only the copy of
/// those bytes: replaying a burst's statements (enqueue, claim, what the run used, end, in
/// group commits) counted 0.6% fewer instructions in SQLite per job, against 6% fewer with no
/// plan at all and 13% fewer with the use folded into the end (which `write.rs` now does).
const V6: &str = "CREATE TABLE jobs_v6 (
        id INTEGER PRIMARY KEY,
        rule TEXT NOT NULL,
        rule_hash TEXT NOT NULL,
        file_id INTEGER NOT NULL REFERENCES files(id),
        ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL
            CHECK (status = 'waiting' OR status = 'queued' OR status = 'claimed'
                OR status = 'running' OR status = 'done' OR status = 'failed'
                OR status = 'cancelled' OR status = 'skipped'),
        token INTEGER NOT NULL DEFAULT 0,
        node TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        steps BLOB,
        output BLOB,
        temp_output BLOB,
        publish_ino INTEGER, publish_size INTEGER, publish_mtime_ns INTEGER,
        exit_status TEXT,
        error TEXT,
        pgid INTEGER, leader_start INTEGER, boot_id TEXT,
        created_at INTEGER NOT NULL, claimed_at INTEGER, started_at INTEGER, finished_at INTEGER,
        not_before INTEGER NOT NULL DEFAULT 0,
        queue_seq INTEGER NOT NULL DEFAULT 0,
        tags TEXT NOT NULL DEFAULT '', concurrency INTEGER, plan TEXT,
        ran_steps BLOB, ran_node TEXT, ran_token INTEGER, progress TEXT,
        delivered_ino INTEGER, delivered_size INTEGER, delivered_mtime_ns INTEGER,
        run_remote TEXT,
        waits_for TEXT, wait_until INTEGER, work_hash TEXT, programs TEXT,
        priority INTEGER NOT NULL DEFAULT 0,
        run_now INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO jobs_v6 (id, rule, rule_hash, file_id, ino, size, mtime_ns, generation, status,
            token, node, attempts, steps, output, temp_output, publish_ino, publish_size,
            publish_mtime_ns, exit_status, error, pgid, leader_start, boot_id, created_at,
            claimed_at, started_at, finished_at, not_before, queue_seq, tags, concurrency, plan,
            ran_steps, ran_node, ran_token, progress, delivered_ino, delivered_size,
            delivered_mtime_ns, run_remote)
        SELECT id, rule, rule_hash, file_id, ino, size, mtime_ns, generation, status,
            token, node, attempts, steps, output, temp_output, publish_ino, publish_size,
            publish_mtime_ns, exit_status, error, pgid, leader_start, boot_id, created_at,
            claimed_at, started_at, finished_at, not_before, queue_seq, tags, concurrency, plan,
            ran_steps, ran_node, ran_token, progress, delivered_ino, delivered_size,
            delivered_mtime_ns, run_remote
        FROM jobs;
    DROP TABLE jobs;
    ALTER TABLE jobs_v6 RENAME TO jobs;
    CREATE UNIQUE INDEX jobs_by_version ON jobs(file_id, rule, ino, size, mtime_ns, generation);
    CREATE INDEX jobs_active ON jobs(status)
        WHERE status = 'waiting' OR status = 'queued' OR status = 'claimed'
            OR status = 'running';
    CREATE INDEX jobs_by_finish ON jobs(finished_at) WHERE finished_at IS NOT NULL;
    CREATE INDEX jobs_by_queue ON jobs(queue_seq) WHERE queue_seq > 0;
    CREATE INDEX jobs_claimable ON jobs(priority DESC, id) WHERE status = 'queued';
    CREATE TABLE cuts (
        name TEXT NOT NULL,
        revision INTEGER NOT NULL,
        imported_at INTEGER NOT NULL,
        source TEXT NOT NULL,
        hash TEXT NOT NULL,
        fps TEXT NOT NULL,
        shots TEXT NOT NULL,
        unmatched TEXT NOT NULL,
        PRIMARY KEY (name, revision)
    );
    CREATE TABLE cut_shots (
        cut TEXT NOT NULL,
        revision INTEGER NOT NULL,
        shot TEXT NOT NULL,
        head_in INTEGER NOT NULL, cut_in INTEGER NOT NULL,
        cut_out INTEGER NOT NULL, tail_out INTEGER NOT NULL,
        PRIMARY KEY (shot, cut, revision),
        FOREIGN KEY (cut, revision) REFERENCES cuts(name, revision)
    );
    CREATE TABLE job_inputs (
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        file_id INTEGER NOT NULL REFERENCES files(id),
        ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        hash TEXT,
        PRIMARY KEY (job_id, file_id)
    ) WITHOUT ROWID;
    CREATE INDEX job_inputs_by_file ON job_inputs(file_id, ino, size, mtime_ns);
    CREATE INDEX outputs_by_job ON outputs(job_id, root, rel);
    CREATE TABLE rule_defs (
        name TEXT PRIMARY KEY,
        work_hash TEXT NOT NULL,
        seen_at INTEGER NOT NULL,
        windows TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE paused (
        kind TEXT NOT NULL CHECK (kind = 'node' OR kind = 'rule'),
        name TEXT NOT NULL,
        since INTEGER NOT NULL,
        PRIMARY KEY (kind, name)
    ) WITHOUT ROWID;
    ALTER TABLE nodes ADD COLUMN tags TEXT NOT NULL DEFAULT '';";

const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

/// Brings the schema to [`SCHEMA_VERSION`] and stamps `application_id`, in one transaction.
/// The caller has checked the file is ours and not newer; the version is read again inside the
/// transaction, so two processes opening an old store at once migrate it once.
pub(super) fn migrate(conn: &mut Connection, application_id: i32) -> rusqlite::Result<()> {
    // Rebuilding a table that others reference is only possible with the checks off; the
    // pragma is a no-op inside a transaction, so it brackets it.
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let result = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            tx.execute_batch(sql)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
        }
        tx.execute_batch(&format!("PRAGMA application_id = {application_id}"))?;
        tx.commit()
    })();
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_database_reaches_the_current_version_with_the_five_job_indexes() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        migrate(&mut conn, 7).expect("migrates");
        let version: i32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL ORDER BY name")
            .expect("query");
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("names");
        assert_eq!(
            names,
            [
                "jobs_active",
                "jobs_by_finish",
                "jobs_by_queue",
                "jobs_by_version",
                "jobs_claimable"
            ]
        );
    }

    #[test]
    fn v6_keeps_every_job_and_writes_of_a_status_build_no_temporary_btree() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).expect("v5");
        }
        conn.execute_batch(
            "PRAGMA user_version = 5;
             INSERT INTO files (id, root, rel, ino, size, mtime_ns, seen_at)
                 VALUES (1, 'r', X'61', 7, 10, 1000, 1);
             INSERT INTO jobs (id, rule, rule_hash, file_id, ino, size, mtime_ns, generation,
                     status, token, created_at, plan, run_remote)
                 VALUES (5, 'r', 'h', 1, 7, 10, 1000, 0, 'running', 3, 2, '{}', 'farm:9'),
                        (9, 'r', 'h', 1, 7, 10, 1000, 1, 'done', 1, 3, NULL, NULL);",
        )
        .expect("rows");
        migrate(&mut conn, 7).expect("migrates");
        type Row = (i64, String, i64, Option<String>, Option<String>);
        let rows: Vec<Row> = conn
            .prepare("SELECT id, status, token, plan, run_remote FROM jobs ORDER BY id")
            .expect("query")
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(
            rows,
            [
                (
                    5,
                    "running".into(),
                    3,
                    Some("{}".into()),
                    Some("farm:9".into())
                ),
                (9, "done".into(), 1, None, None)
            ]
        );
        let refused = conn.execute("UPDATE jobs SET status = 'lost' WHERE id = 5", []);
        assert!(refused.is_err(), "the CHECK still holds");
        // The bytecode of a status write: an `IN` list of three or more would open a
        // temporary b-tree (OpenEphemeral) each time it runs.
        for sql in [
            "UPDATE jobs SET status = 'claimed', token = token + 1 WHERE id = 9 AND status = 'queued'",
            "UPDATE jobs SET status = 'done' WHERE id = 5 AND token = 3 AND status IN ('claimed', 'running')",
            "INSERT INTO jobs (rule, rule_hash, file_id, ino, size, mtime_ns, status, created_at)
                 VALUES ('s', 'h', 1, 7, 10, 1000, 'queued', 4)",
        ] {
            let ops: Vec<String> = conn
                .prepare(&format!("EXPLAIN {sql}"))
                .expect("explain")
                .query_map([], |r| r.get::<_, String>(1))
                .expect("ops")
                .collect::<Result<_, _>>()
                .expect("read");
            assert!(!ops.iter().any(|op| op == "OpenEphemeral"), "{sql}");
        }
    }

    /// Routing will ask for a shot's frames in the latest revision of each cut: one search of
    /// `cut_shots` by its key (shot first) and one of `cuts` by its own, no scan.
    #[test]
    fn a_shots_latest_frames_are_found_by_index() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        migrate(&mut conn, 7).expect("migrates");
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT s.head_in, s.tail_out FROM cut_shots s
                 WHERE s.shot = 'sh010'
                    AND s.revision = (SELECT max(revision) FROM cuts c WHERE c.name = s.cut)",
            )
            .expect("explain")
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("read");
        assert!(
            plan.iter().any(|p| p.starts_with("SEARCH s USING INDEX")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.starts_with("SCAN")), "{plan:?}");
    }

    #[test]
    fn v1_duplicates_of_one_version_become_generations() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(V1).expect("v1");
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO files VALUES (1, X'2F732F61', 9, 7, 10, 1000, 0, 1);
             INSERT INTO jobs (id, rule, rule_hash, file_id, dev, ino, size, mtime_ns, status, created_at, queue_seq)
                 VALUES (1, 'r', 'h', 1, 9, 7, 10, 1000, 'failed', 1, 1),
                        (2, 'r', 'h', 1, 9, 7, 10, 1000, 'queued', 2, 2);",
        )
        .expect("rows");
        migrate(&mut conn, 7).expect("migrates");
        let rows: Vec<(i64, i64, i64)> = conn
            .prepare("SELECT id, generation, queue_seq FROM jobs ORDER BY id")
            .expect("query")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(rows, [(1, 0, 0), (2, 1, 2)]);
        let (root, legacy): (String, bool) = conn
            .query_row("SELECT root, legacy FROM files", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("file");
        assert_eq!((root.as_str(), legacy), ("", true));
    }
}
