//! The PostgreSQL schema and its migrations, numbered in `shotrouter_schema` (one row) the way
//! the SQLite store numbers its own with `PRAGMA user_version`: a fresh database runs every
//! migration from 1, an older one the ones it lacks, in one transaction under an advisory lock
//! so that nodes starting together migrate once. A newer schema is refused (upgrade
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

use postgres::Client;
use std::path::PathBuf;

use super::super::StoreError;

/// The schema this build writes.
pub(super) const SCHEMA_VERSION: i32 = 2;

/// The advisory lock migrations take.
const MIGRATION_LOCK: i64 = 0x5352_4F55_0000;

/// The tables of every version: one of them without a version row is not ours.
const OUR_TABLES: &[&str] = &["roots", "nodes", "files", "jobs", "outputs", "notices"];

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
            CHECK (status IN ('queued', 'claimed', 'running', 'done', 'failed', 'cancelled')),
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

/// Version 2: how far a running job's ffmpeg step got (JSON), recorded by the node that runs
/// it, so a worker's progress reaches `shotrouter job`, the API and the dashboard.
const V2: &str = "ALTER TABLE jobs ADD COLUMN progress TEXT;";

const MIGRATIONS: &[&str] = &[V1, V2];

/// The version row, or `None` when the database holds no shotrouter schema; refuses a
/// database whose tables clash with ours.
fn found_version(
    client: &mut impl postgres::GenericClient,
    url: &str,
) -> Result<Option<i32>, StoreError> {
    let has_version: bool = client
        .query_one("SELECT to_regclass('shotrouter_schema') IS NOT NULL", &[])?
        .get(0);
    if has_version {
        let row = client.query_opt("SELECT version FROM shotrouter_schema", &[])?;
        return Ok(Some(row.map_or(0, |r| r.get(0))));
    }
    let mut clashing = Vec::new();
    for table in OUR_TABLES {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])?
            .get(0);
        if exists {
            clashing.push(format!("`{table}`"));
        }
    }
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

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction; answers whether it was created.
pub(super) fn migrate(client: &mut Client, url: &str) -> Result<bool, StoreError> {
    // Checked before any write, so an up-to-date store is opened without one.
    match found_version(client, url)? {
        Some(found) if found == SCHEMA_VERSION => return Ok(false),
        Some(found) if found > SCHEMA_VERSION => return Err(too_new(url, found)),
        _ => {}
    }
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    // Read again under the lock: another node may have migrated meanwhile.
    let found = found_version(&mut tx, url)?;
    let version = found.unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(too_new(url, version));
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
}

/// Refuses a database without our schema, or with an older or newer one.
pub(super) fn check_current(client: &mut Client, url: &str) -> Result<(), StoreError> {
    match found_version(client, url)? {
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
