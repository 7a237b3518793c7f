//! The PostgreSQL schema and its migrations, numbered in `shotrouter_schema` (one row) the way
//! the SQLite store numbers its own with `PRAGMA user_version`: a fresh database runs every
//! migration from 1, an older one the ones it lacks, in one transaction under an advisory lock
//! taken before the schema is first looked at, so that nodes starting together migrate once
//! and the others wait for that migration. A newer schema is refused (upgrade
//! shotrouter); the operations CLI refuses an older one rather than upgrading it under the
//! previous release's daemons. A database whose tables clash with ours but carry no version is
//! refused and left untouched.
//!
//! # Version 1
//!
//! The SQLite v3 schema with PostgreSQL types, and what scale-out needs:
//! - `roots` is keyed by (node, name): each machine mounts a root where it likes.
//! - `nodes` has a `role` (`watcher`, `worker`, `watcher+worker`) and a `lease_ms` (how long
//!   its claims outlive its last heartbeat), and the heartbeat is a `timestamptz` of the
//!   database's clock.
//! - `jobs` has `due_at`, the database time before which a queued job is not claimed (the
//!   engine's `not_before` is kept beside it as reported, in its own clock), and what a worker
//!   needs without the rules: `tags` (sorted; only workers holding all of them take it),
//!   `concurrency` (the rule's cluster-wide limit) and `plan` (opaque JSON; `NULL` when no
//!   worker can run the job).
//! - `queue_seq` is given under an advisory lock (see `NEXT_QUEUE_SEQ`), so in commit order.
//!
//! # Version 2
//!
//! The argv a claim ran where it differs from the planned one (a worker's `--map`), the node
//! that ran it and the claim's token: `shotrouter job` shows it while that claim is the last.
//! Editorial's cuts (issue 22): `cuts`, one row per imported revision with its shots as JSON,
//! and `cut_shots`, one row per shot a revision shows, keyed `(shot, cut, revision)`.

use postgres::Client;
use std::path::PathBuf;

use super::super::StoreError;

/// The schema this build writes.
pub(super) const SCHEMA_VERSION: i32 = 2;

/// The advisory lock migrations take.
pub(super) const MIGRATION_LOCK: i64 = 0x5352_4F55_0000;

/// The table holding the version row.
const VERSION_TABLE: &str = "shotrouter_schema";

/// The tables of every version: one of them without a version row is not ours.
const OUR_TABLES: &[&str] = &[
    "roots",
    "nodes",
    "files",
    "jobs",
    "outputs",
    "notices",
    "cuts",
    "cut_shots",
    "job_inputs",
    "rule_defs",
];

const V1: &str = "CREATE TABLE roots (
        node TEXT NOT NULL,
        name TEXT NOT NULL,
        path BYTEA NOT NULL,
        seen_at BIGINT,
        PRIMARY KEY (node, name)
    );
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        health TEXT,
        role TEXT,
        lease_ms BIGINT
    );
    CREATE TABLE files (
        id BIGSERIAL PRIMARY KEY,
        root TEXT NOT NULL,
        rel BYTEA NOT NULL,
        ino BIGINT NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,
        baseline BOOLEAN NOT NULL DEFAULT false,
        seen_at BIGINT NOT NULL,
        UNIQUE (root, rel)
    );
    CREATE INDEX files_by_content ON files(ino, size, mtime_ns);
    CREATE TABLE jobs (
        id BIGSERIAL PRIMARY KEY,
        rule TEXT NOT NULL,
        rule_hash TEXT NOT NULL,
        file_id BIGINT NOT NULL REFERENCES files(id),
        ino BIGINT NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'claimed', 'running', 'done', 'failed', 'cancelled',
                'skipped')),
        token BIGINT NOT NULL DEFAULT 0,
        node TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        steps BYTEA,
        output BYTEA,
        temp_output BYTEA,
        publish_ino BIGINT, publish_size BIGINT, publish_mtime_ns BIGINT,
        exit_status TEXT,
        pgid INTEGER, leader_start BIGINT, boot_id TEXT,
        created_at BIGINT NOT NULL, claimed_at BIGINT, started_at BIGINT, finished_at BIGINT,
        not_before BIGINT NOT NULL DEFAULT 0,
        due_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
        queue_seq BIGINT NOT NULL DEFAULT 0,
        tags TEXT[] NOT NULL DEFAULT '{}',
        concurrency INTEGER,
        plan TEXT
    );
    CREATE UNIQUE INDEX jobs_by_version ON jobs(file_id, rule, ino, size, mtime_ns, generation);
    CREATE INDEX jobs_active ON jobs(status, node) WHERE status IN ('queued', 'claimed', 'running');
    CREATE INDEX jobs_claimable ON jobs(id) WHERE status = 'queued';
    CREATE INDEX jobs_by_finish ON jobs(finished_at) WHERE finished_at IS NOT NULL;
    CREATE INDEX jobs_by_queue ON jobs(queue_seq) WHERE queue_seq > 0;
    CREATE TABLE outputs (
        root TEXT NOT NULL,
        rel BYTEA NOT NULL,
        job_id BIGINT NOT NULL,
        rule TEXT NOT NULL,
        ino BIGINT NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,
        PRIMARY KEY (root, rel)
    );
    CREATE TABLE notices (
        id BIGSERIAL PRIMARY KEY,
        root TEXT NOT NULL,
        rel BYTEA NOT NULL,
        at BIGINT NOT NULL
    );";

/// Version 2: the argv a claim ran (a worker's paths), beside the planned one; and how far a
/// running job's ffmpeg step got (JSON), recorded by the node that runs it, so a worker's
/// progress reaches `shotrouter job`, the API and the dashboard. The version of a product's
/// `copy:`/`move:` destination (`delivered_*`), so a job killed after its move resumes as
/// done. A run's handle where it is not a local process group (`run_remote`, `executor:id`,
/// e.g. a farm scheduler's job). Lineage and declared inputs: the status `waiting`, with
/// `waits_for`/`wait_until`; `work_hash` and `programs` of a job's last done run;
/// `job_inputs` and `rule_defs` (see `store::lineage`). Control of the night: a job's
/// `priority` and `jobs_claimable` in the claim's order (higher priority first); `run_now` (it
/// may start outside its rule's window); `paused`, the nodes and rules `shotrouter pause`
/// holds; a node's `tags` (which tagged jobs it can take). Version 2 is in no release yet, so
/// its columns may still grow here.
const V2: &str = "ALTER TABLE jobs ADD COLUMN ran_steps BYTEA;
    ALTER TABLE jobs ADD COLUMN ran_node TEXT;
    ALTER TABLE jobs ADD COLUMN ran_token BIGINT;
    ALTER TABLE jobs ADD COLUMN progress TEXT;
    ALTER TABLE jobs ADD COLUMN delivered_ino BIGINT;
    ALTER TABLE jobs ADD COLUMN delivered_size BIGINT;
    ALTER TABLE jobs ADD COLUMN delivered_mtime_ns BIGINT;
    ALTER TABLE jobs ADD COLUMN run_remote TEXT;
    CREATE TABLE cuts (
        name TEXT NOT NULL,
        revision BIGINT NOT NULL,
        imported_at BIGINT NOT NULL,
        source TEXT NOT NULL,
        hash TEXT NOT NULL,
        fps TEXT NOT NULL,
        shots TEXT NOT NULL,
        unmatched TEXT NOT NULL,
        PRIMARY KEY (name, revision)
    );
    CREATE TABLE cut_shots (
        cut TEXT NOT NULL,
        revision BIGINT NOT NULL,
        shot TEXT NOT NULL,
        head_in BIGINT NOT NULL, cut_in BIGINT NOT NULL,
        cut_out BIGINT NOT NULL, tail_out BIGINT NOT NULL,
        PRIMARY KEY (shot, cut, revision),
        FOREIGN KEY (cut, revision) REFERENCES cuts(name, revision)
    );
    ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
    ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
        CHECK (status IN ('waiting', 'queued', 'claimed', 'running', 'done', 'failed',
            'cancelled', 'skipped'));
    ALTER TABLE jobs ADD COLUMN waits_for TEXT;
    ALTER TABLE jobs ADD COLUMN wait_until BIGINT;
    ALTER TABLE jobs ADD COLUMN work_hash TEXT;
    ALTER TABLE jobs ADD COLUMN programs TEXT;
    ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN run_now BOOLEAN NOT NULL DEFAULT false;
    DROP INDEX jobs_claimable;
    CREATE INDEX jobs_claimable ON jobs(priority DESC, id) WHERE status = 'queued';
    DROP INDEX jobs_active;
    CREATE INDEX jobs_active ON jobs(status, node)
        WHERE status IN ('waiting', 'queued', 'claimed', 'running');
    CREATE TABLE job_inputs (
        job_id BIGINT NOT NULL REFERENCES jobs(id),
        file_id BIGINT NOT NULL REFERENCES files(id),
        ino BIGINT NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,
        hash TEXT,
        PRIMARY KEY (job_id, file_id)
    );
    CREATE INDEX job_inputs_by_file ON job_inputs(file_id, ino, size, mtime_ns);
    CREATE INDEX outputs_by_job ON outputs(job_id, root, rel);
    CREATE TABLE rule_defs (
        name TEXT PRIMARY KEY,
        work_hash TEXT NOT NULL,
        seen_at BIGINT NOT NULL,
        windows TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE paused (
        kind TEXT NOT NULL CHECK (kind IN ('node', 'rule')),
        name TEXT NOT NULL,
        since BIGINT NOT NULL,
        PRIMARY KEY (kind, name)
    );
    ALTER TABLE nodes ADD COLUMN tags TEXT[] NOT NULL DEFAULT '{}';";

const MIGRATIONS: &[&str] = &[V1, V2];

/// The version row, or `None` when the database holds no shotrouter schema; refuses a
/// database whose tables clash with ours. Which tables exist is read in one statement from
/// `pg_class` (the statement's snapshot, not the session's catalog cache), so a migration that
/// commits meanwhile is seen whole or not at all; callers hold [`MIGRATION_LOCK`], so the
/// version row read next belongs to what that statement saw.
fn found_version(
    client: &mut impl postgres::GenericClient,
    url: &str,
) -> Result<Option<i32>, StoreError> {
    let mut names = vec![VERSION_TABLE];
    names.extend_from_slice(OUR_TABLES);
    let found: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_catalog.pg_class c
             WHERE c.relname::text = ANY($1::text[]) AND pg_catalog.pg_table_is_visible(c.oid)",
            &[&names],
        )?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    if found.iter().any(|name| name == VERSION_TABLE) {
        let row = client.query_opt("SELECT version FROM shotrouter_schema", &[])?;
        return Ok(Some(row.map_or(0, |r| r.get(0))));
    }
    let clashing: Vec<String> = OUR_TABLES
        .iter()
        .filter(|table| found.iter().any(|name| name == *table))
        .map(|table| format!("`{table}`"))
        .collect();
    if clashing.is_empty() {
        Ok(None)
    } else {
        Err(StoreError::Foreign {
            path: PathBuf::from(url),
            reason: format!(
                "tables {} of another application, and no `shotrouter_schema`; give shotrouter a database of its own",
                clashing.join(", ")
            ),
        })
    }
}

fn too_new(url: &str, found: i32) -> StoreError {
    StoreError::TooNew {
        path: PathBuf::from(url),
        found,
        supported: SCHEMA_VERSION,
    }
}

/// How a node holds [`MIGRATION_LOCK`]: alone to migrate, shared to read the version.
#[derive(Clone, Copy)]
enum Hold {
    Exclusive,
    Shared,
}

/// Runs `f` holding [`MIGRATION_LOCK`] on this session, and releases it however `f` ends (a
/// broken connection released it with the session).
///
/// A session lock rather than a transaction's: `f` begins its transaction once the lock is
/// held, so that transaction sees every migration committed before (its catalog cache is
/// refreshed at its start). A transaction begun before the wait may keep a table committed
/// meanwhile out of `to_regclass` until it ends, and then create it again (`relation
/// "shotrouter_schema" already exists`).
fn holding<T>(
    client: &mut Client,
    hold: Hold,
    f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let (lock, unlock) = match hold {
        Hold::Exclusive => ("pg_advisory_lock", "pg_advisory_unlock"),
        Hold::Shared => ("pg_advisory_lock_shared", "pg_advisory_unlock_shared"),
    };
    client.execute(&format!("SELECT {lock}($1)"), &[&MIGRATION_LOCK])?;
    let result = f(client);
    let unlocked = client.execute(&format!("SELECT {unlock}($1)"), &[&MIGRATION_LOCK]);
    let value = result?;
    unlocked?;
    Ok(value)
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction; answers whether it was created.
///
/// The lock is taken before the first look: a node that starts while another migrates waits
/// for it, then finds the schema current. No `CREATE TABLE IF NOT EXISTS`: under the lock the
/// answer is known, and two such statements racing still fail on the catalog's unique index.
pub(super) fn migrate(client: &mut Client, url: &str) -> Result<bool, StoreError> {
    holding(client, Hold::Exclusive, |client| {
        let mut tx = client.transaction()?;
        let found = found_version(&mut tx, url)?;
        let version = found.unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(too_new(url, version));
        }
        if version == SCHEMA_VERSION {
            // Nothing written: an up-to-date store is opened without a write.
            tx.commit()?;
            return Ok(false);
        }
        if found.is_none() {
            tx.batch_execute("CREATE TABLE shotrouter_schema (version INTEGER NOT NULL)")?;
        }
        for sql in MIGRATIONS.iter().skip(version.max(0) as usize) {
            tx.batch_execute(sql)?;
        }
        tx.execute("DELETE FROM shotrouter_schema", &[])?;
        tx.execute(
            "INSERT INTO shotrouter_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )?;
        tx.commit()?;
        Ok(version == 0)
    })
}

/// Refuses a database without our schema, or with an older or newer one. Waits for a
/// migration in progress (the lock, shared), so it judges the schema that migration leaves.
pub(super) fn check_current(client: &mut Client, url: &str) -> Result<(), StoreError> {
    let found = holding(client, Hold::Shared, |client| {
        let mut tx = client.build_transaction().read_only(true).start()?;
        let found = found_version(&mut tx, url)?;
        tx.commit()?;
        Ok(found)
    })?;
    match found {
        None => Err(StoreError::NoSchema { url: url.into() }),
        Some(found) if found > SCHEMA_VERSION => Err(too_new(url, found)),
        Some(found) if found < SCHEMA_VERSION => Err(StoreError::Outdated {
            path: PathBuf::from(url),
            found,
            current: SCHEMA_VERSION,
        }),
        Some(_) => Ok(()),
    }
}
