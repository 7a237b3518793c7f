//! The job store: every file seen, every job and every published output, in SQLite.
//! [`Store`] is the schema-v1 store the daemon and the ops CLI still use; [`sqlite::SqliteStore`]
//! implements the two traits ([`queue::JobQueue`], [`history::JobHistory`]) on schema v2 and
//! takes its place when they switch; a PostgreSQL backend will implement the same traits.
//!
//! WAL mode with a busy handler, every write in a `BEGIN IMMEDIATE` transaction, so the daemon,
//! its workers and any number of `shotrouter status`/`jobs`/`retry` processes share the file
//! without lock errors. The schema is versioned with `PRAGMA user_version` and migrated on open;
//! `application_id` marks the file as ours, so a foreign file is refused, never overwritten.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

#[cfg(test)]
mod contract;
pub mod history;
pub mod queue;
pub mod sqlite;

use crate::os::process::GroupId;
use crate::os::version::FileVersion;

/// `application_id` of a shotrouter state file ("SROU").
const APPLICATION_ID: i32 = 0x5352_4F55;
/// The schema this build writes.
const SCHEMA_VERSION: i32 = 1;
/// The database file inside the state folder.
pub const DB_FILE: &str = "shotrouter.db";

const MIGRATIONS: &[&str] = &[
    // 1: files, jobs, outputs.
    "CREATE TABLE files (
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
    INSERT INTO counters VALUES ('queue_seq', 0);",
];

/// A job's id in the store.
pub type JobId = i64;

/// One step's argv as raw bytes.
pub type RawArgv = Vec<Vec<u8>>;

/// A job's commands and product as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    /// Each step's argv.
    pub steps: Vec<RawArgv>,
    /// The product.
    pub output: Option<PathBuf>,
}

/// A stored file version: (device, inode, size, mtime in ns); the v2 store, which leaves the
/// device out of a version's identity, shows it as 0.
pub type StoredVersion = (u64, u64, u64, i64);

/// Job states, stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a node that is about to run it (the v2 store only).
    Claimed,
    /// A worker runs it.
    Running,
    /// Succeeded.
    Done,
    /// Failed after its last attempt.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl Status {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Claimed => "claimed",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parses the stored text (and the CLI's `--status`).
    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::Queued,
            Status::Claimed,
            Status::Running,
            Status::Done,
            Status::Failed,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state folder is on a file system where SQLite's WAL is unsafe.
    #[error(
        "state folder `{}` is on a network or FUSE file system ({kind}), where SQLite's write-ahead log is unsafe; put it on a local disk with --state",
        path.display()
    )]
    NetworkFileSystem {
        /// The folder.
        path: PathBuf,
        /// nfs, cifs, fuse...
        kind: &'static str,
    },
    /// The folder cannot be created or written.
    #[error("state folder `{}` is not usable: {reason}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file exists but is not a shotrouter store.
    #[error("`{}` is not a shotrouter state file ({reason}); it was left untouched: move it away or choose another --state", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The file was written by a newer shotrouter.
    #[error("`{}` has schema version {found}, newer than this shotrouter's {supported}; upgrade shotrouter", path.display())]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i32,
        /// The newest version the backend that refused it knows.
        supported: i32,
    },
    /// The file was written by an older shotrouter, and only the daemon upgrades a store: the
    /// daemon of the older release may still be using it.
    #[error("`{}` has schema version {found}, older than this shotrouter's {current}; stop the daemon of the previous release and start `shotrouter watch` of this one, which upgrades it in place", path.display())]
    Outdated {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i32,
        /// The version this backend writes.
        current: i32,
    },
    /// There is no store where one was expected (the CLI never creates one).
    #[error("no shotrouter state at `{}`; give --state (the folder `watch` uses, by default `.shotrouter` beside the rules file)", .0.display())]
    Missing(PathBuf),
    /// A write for a job presented a fencing token that another claim has superseded (or the
    /// job was cancelled); it was refused and the attempt that made it must stop.
    #[error(
        "job {id}: claim token {token} is stale (the job was claimed again or cancelled); write refused"
    )]
    Stale {
        /// The job.
        id: JobId,
        /// The token presented.
        token: i64,
    },
    /// SQLite failed.
    #[error("state database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// A connection to the store. One per thread.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    created: bool,
    in_batch: bool,
}

/// A job to record.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// The rule's name.
    pub rule: &'a str,
    /// A hash of the rule's definition.
    pub rule_hash: &'a str,
    /// The input file.
    pub path: &'a Path,
    /// Its version.
    pub version: FileVersion,
    /// Each step's argv.
    pub steps: &'a [Vec<std::ffi::OsString>],
    /// The product, if any.
    pub output: Option<&'a Path>,
}

/// A job just queued: its id and its place in the queue sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// The job's id.
    pub id: JobId,
    /// Its queue sequence number.
    pub seq: i64,
}

/// A job waiting to run, as read back from the store.
#[derive(Debug, Clone)]
pub struct QueuedJob {
    /// Its id.
    pub id: JobId,
    /// The rule's name.
    pub rule: String,
    /// The input file.
    pub path: PathBuf,
    /// Attempts made so far.
    pub attempts: u32,
    /// Earliest start, unix ms.
    pub not_before: i64,
}

/// One row of `shotrouter jobs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRow {
    /// Id.
    pub id: JobId,
    /// Rule name.
    pub rule: String,
    /// Input path (lossy UTF-8).
    pub path: String,
    /// Status.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// Exit status or failure reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// The published product.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The node that claims it, or last ran it (the v2 store only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Everything about one job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobDetail {
    /// The row.
    #[serde(flatten)]
    pub row: JobRow,
    /// Rule definition hash.
    pub rule_hash: String,
    /// Input version.
    pub input: Option<StoredVersion>,
    /// Each step's argv (lossy UTF-8 for display).
    pub steps: Vec<Vec<String>>,
    /// Each step's argv as raw bytes.
    #[serde(skip)]
    pub raw_steps: Vec<RawArgv>,
}

/// What `shotrouter status` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReport {
    /// Jobs running.
    pub running: u64,
    /// Jobs claimed by a node, not yet started (always 0 in the v1 store).
    pub claimed: u64,
    /// Jobs queued.
    pub queued: u64,
    /// Jobs failed in the last 24 h.
    pub failed_24h: u64,
    /// Jobs done in the last hour.
    pub done_1h: u64,
    /// Jobs done in the last 24 h.
    pub done_24h: u64,
    /// Age of the oldest queued job, seconds.
    pub oldest_queued_s: Option<i64>,
    /// Files known.
    pub files: u64,
}

/// What the store knows of one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileRecord {
    /// The path.
    pub path: String,
    /// Last version seen: (dev, ino, size, mtime ns).
    pub version: Option<StoredVersion>,
    /// Whether it was present at the first start and never run.
    pub baseline: bool,
    /// Its jobs, newest first.
    pub jobs: Vec<JobRow>,
    /// Rule and job that published this file, if shotrouter made it.
    pub produced_by: Option<(String, JobId)>,
}

/// A job that was running when the previous daemon stopped.
#[derive(Debug, Clone)]
pub struct Interrupted {
    /// Its id.
    pub id: JobId,
    /// The rule.
    pub rule: String,
    /// What became of it.
    pub resolution: Resolution,
    /// Processes of its group that were still alive and were killed.
    pub killed: usize,
}

/// What recovery did with an interrupted job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Its product had been published: recorded as done, not run again.
    Published,
    /// Queued again; the interrupted attempt counts.
    Requeued,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn blob(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

fn path_of(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// argv lists as bytes: each argument as `<len>:<bytes>`, steps separated by `\n`.
fn encode_steps(steps: &[Vec<std::ffi::OsString>]) -> Vec<u8> {
    let mut out = Vec::new();
    for step in steps {
        for arg in step {
            out.extend_from_slice(arg.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(arg.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

fn decode_steps(bytes: &[u8]) -> Vec<RawArgv> {
    let mut steps = Vec::new();
    let mut step = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'\n' {
            steps.push(std::mem::take(&mut step));
            at += 1;
            continue;
        }
        let Some(colon) = bytes[at..].iter().position(|&b| b == b':').map(|p| at + p) else {
            break;
        };
        let Some(len) = std::str::from_utf8(&bytes[at..colon])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        let end = (colon + 1 + len).min(bytes.len());
        step.push(bytes[colon + 1..end].to_vec());
        at = end;
    }
    steps
}

/// Waits for a lock held by another connection: 50 µs at a time, for up to 30 s. Our writes hold
/// the lock for tens of microseconds; SQLite's default handler sleeps 1 to 100 ms per retry,
/// which under the daemon's steady trickle of writes costs far more than the writes themselves.
fn retry_soon(attempts: i32) -> bool {
    const PAUSE: Duration = Duration::from_micros(50);
    if attempts >= 600_000 {
        return false;
    }
    std::thread::sleep(PAUSE);
    true
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, for the daemon.
    ///
    /// # Errors
    /// A network file system, an unusable folder, a foreign or newer file.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Folder {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        if let Some(kind) = crate::os::fs_kind::network_kind(dir) {
            return Err(StoreError::NetworkFileSystem {
                path: dir.to_path_buf(),
                kind,
            });
        }
        let path = dir.join(DB_FILE);
        let existed = path.exists();
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(|e| StoreError::Folder {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut store = Store {
            conn,
            path,
            created: !existed,
            in_batch: false,
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing store for the operations CLI; never creates one.
    ///
    /// # Errors
    /// No store there, or a foreign or newer file.
    pub fn open_existing(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::Missing(dir.to_path_buf()));
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let mut store = Store {
            conn,
            path,
            created: false,
            in_batch: false,
        };
        store.configure()?;
        store.check_identity()?;
        Ok(store)
    }

    /// Whether this open created the database (the first start on this tree).
    pub fn is_new(&self) -> bool {
        self.created
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn foreign(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Foreign {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn configure(&mut self) -> Result<(), StoreError> {
        let not_a_db = |e: rusqlite::Error| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                StoreError::Foreign {
                    path: self.path.clone(),
                    reason: "not an SQLite database".into(),
                }
            }
            other => StoreError::Sql(other),
        };
        self.conn.busy_handler(Some(retry_soon)).map_err(not_a_db)?;
        // journal_mode answers with a row; it is also the first real read of the file.
        let _: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(not_a_db)?;
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(not_a_db)?;
        Ok(())
    }

    fn check_identity(&self) -> Result<(), StoreError> {
        let app: i32 = self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let version: i32 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if app != APPLICATION_ID {
            let tables: i64 =
                self.conn
                    .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
            if app != 0 || tables > 0 {
                return Err(self.foreign(format!(
                    "an SQLite database of another application (id {app:#x}, {tables} tables)"
                )));
            }
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.check_identity()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            tx.execute_batch(sql)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
        }
        tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))?;
        tx.commit()?;
        Ok(())
    }

    fn next_queue_seq(tx: &Connection) -> rusqlite::Result<i64> {
        tx.prepare_cached(
            "UPDATE counters SET value = value + 1 WHERE name = 'queue_seq' RETURNING value",
        )?
        .query_row([], |r| r.get(0))
    }

    fn upsert_file(
        tx: &Connection,
        path: &Path,
        v: FileVersion,
        baseline: bool,
    ) -> rusqlite::Result<i64> {
        tx.prepare_cached("INSERT INTO files (path, dev, ino, size, mtime_ns, baseline, seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(path) DO UPDATE SET dev = ?2, ino = ?3, size = ?4, mtime_ns = ?5,
                 baseline = CASE WHEN ?6 THEN 1 ELSE 0 END, seen_at = ?7
             RETURNING id")?.query_row(
            params![blob(path), v.dev as i64, v.ino as i64, v.size as i64, v.mtime_ns as i64, baseline, now_ms()],
            |r| r.get(0),
        )
    }

    /// Records files present at the first start: known, but not to be run.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn record_baseline(&mut self, files: &[(PathBuf, FileVersion)]) -> Result<(), StoreError> {
        self.write(|c| {
            for (path, version) in files {
                Self::upsert_file(c, path, *version, true)?;
            }
            Ok(())
        })
    }

    /// Whether start-up catch-up should run `rule` on this version of `path`: the file is new or
    /// changed since it was last seen, or this version's last job for the rule failed.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn wants_catch_up(
        &self,
        rule: &str,
        path: &Path,
        v: FileVersion,
    ) -> Result<bool, StoreError> {
        let known: Option<(i64, i64, i64, i64, i64)> = self
            .conn
            .query_row(
                "SELECT id, dev, ino, size, mtime_ns FROM files WHERE path = ?1",
                [blob(path)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((file_id, dev, ino, size, mtime)) = known else {
            return Ok(true);
        };
        if (dev, ino, size, mtime) != (v.dev as i64, v.ino as i64, v.size as i64, v.mtime_ns as i64)
        {
            return Ok(true);
        }
        let last: Option<String> = self
            .conn
            .query_row(
                "SELECT status FROM jobs WHERE file_id = ?1 AND rule = ?2 AND dev = ?3 AND ino = ?4 AND size = ?5 AND mtime_ns = ?6
                 ORDER BY id DESC LIMIT 1",
                params![file_id, rule, dev, ino, size, mtime],
                |r| r.get(0),
            )
            .optional()?;
        Ok(last.as_deref() == Some("failed"))
    }

    /// Records a job unless this version of the file already has a queued, running or done job
    /// for the rule. Returns its id, or `None` when it was a duplicate.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn enqueue(&mut self, job: &NewJob<'_>) -> Result<Option<Queued>, StoreError> {
        self.write(|c| {
            let v = job.version;
            let file_id = Self::upsert_file(c, job.path, v, false)?;
            let exists: Option<i64> = c
                .prepare_cached("SELECT id FROM jobs WHERE file_id = ?1 AND rule = ?2 AND dev = ?3 AND ino = ?4 AND size = ?5 AND mtime_ns = ?6
                     AND status IN ('queued', 'running', 'done') LIMIT 1")?.query_row(
                    params![file_id, job.rule, v.dev as i64, v.ino as i64, v.size as i64, v.mtime_ns as i64],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Ok(None);
            }
            let seq = Self::next_queue_seq(c)?;
            c.prepare_cached("INSERT INTO jobs (rule, rule_hash, file_id, dev, ino, size, mtime_ns, status, steps, output, created_at, queue_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?9, ?10, ?11)")?.execute(
                params![
                    job.rule,
                    job.rule_hash,
                    file_id,
                    v.dev as i64,
                    v.ino as i64,
                    v.size as i64,
                    v.mtime_ns as i64,
                    encode_steps(job.steps),
                    job.output.map(blob),
                    now_ms(),
                    seq
                ],
            )?;
            Ok(Some(Queued {
                id: c.last_insert_rowid(),
                seq,
            }))
        })
    }

    /// Opens a batch: until [`end_batch`](Self::end_batch), `enqueue` and `finish` share one
    /// transaction (group commit: one commit for many jobs). Keep batches short: other
    /// connections wait for the write lock meanwhile.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn begin_batch(&mut self) -> Result<(), StoreError> {
        if !self.in_batch {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.in_batch = true;
        }
        Ok(())
    }

    /// Commits the open batch, if any.
    ///
    /// # Errors
    /// SQLite errors (the batch is rolled back).
    pub fn end_batch(&mut self) -> Result<(), StoreError> {
        if self.in_batch {
            self.in_batch = false;
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Runs `body` in the open batch, or in a transaction of its own.
    fn write<T>(
        &mut self,
        body: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        if self.in_batch {
            return Ok(body(&self.conn)?);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = body(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// The highest queue sequence number handed out; jobs queued later have a higher one.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn queue_seq(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT value FROM counters WHERE name = 'queue_seq'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Jobs queued with a sequence number above `after` (by this daemon, a previous one, or the
    /// CLI's `retry` and `rerun`), oldest first.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn queued_since(&self, after: i64) -> Result<Vec<(i64, QueuedJob)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT j.queue_seq, j.id, j.rule, f.path, j.attempts, j.not_before FROM jobs j JOIN files f ON f.id = j.file_id
             WHERE j.status = 'queued' AND j.queue_seq > ?1 ORDER BY j.queue_seq",
        )?;
        let rows = stmt.query_map([after], |r| {
            Ok((
                r.get(0)?,
                QueuedJob {
                    id: r.get(1)?,
                    rule: r.get(2)?,
                    path: path_of(r.get(3)?),
                    attempts: r.get::<_, i64>(4)? as u32,
                    not_before: r.get(5)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replaces a queued job's commands (when it is planned again with the current rules).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn set_plan(
        &mut self,
        id: JobId,
        rule_hash: &str,
        steps: &[Vec<std::ffi::OsString>],
        output: Option<&Path>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE jobs SET rule_hash = ?2, steps = ?3, output = ?4 WHERE id = ?1",
            params![id, rule_hash, encode_steps(steps), output.map(blob)],
        )?;
        Ok(())
    }

    /// Claims a queued job whose first step has just started, recording that step's process
    /// group in the same write; false when it is no longer queued (a user cancelled it).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn claim(
        &mut self,
        id: JobId,
        temp_output: Option<&Path>,
        group: Option<&GroupId>,
    ) -> Result<bool, StoreError> {
        let changed = self.write(|c| {
            c.prepare_cached(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?2, temp_output = ?3,
                     pgid = ?4, leader_start = ?5, boot_id = ?6, exit_status = NULL, error = NULL
                 WHERE id = ?1 AND status = 'queued'",
            )?
            .execute(params![
                id,
                now_ms(),
                temp_output.map(blob),
                group.map(|g| g.pgid),
                group.map(|g| g.leader_start as i64),
                group.map(|g| g.boot_id.as_str())
            ])
        })?;
        Ok(changed == 1)
    }

    /// Records the process group of the step now running, so that it can be killed later.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn set_group(&mut self, id: JobId, group: &GroupId) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE jobs SET pgid = ?2, leader_start = ?3, boot_id = ?4 WHERE id = ?1",
            )?
            .execute(params![
                id,
                group.pgid,
                group.leader_start as i64,
                group.boot_id
            ])?;
        Ok(())
    }

    /// Records the version of the product about to be renamed into place, and the output as
    /// the rule's: before the rename, so a crash in between is recognisable at recovery.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn publishing(
        &mut self,
        id: JobId,
        rule: &str,
        output: &Path,
        v: FileVersion,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("UPDATE jobs SET publish_dev = ?2, publish_ino = ?3, publish_size = ?4, publish_mtime_ns = ?5 WHERE id = ?1")?.execute(
            params![id, v.dev as i64, v.ino as i64, v.size as i64, v.mtime_ns as i64],
        )?;
        tx.prepare_cached("INSERT INTO outputs (path, job_id, rule, dev, ino, size, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(path) DO UPDATE SET job_id = ?2, rule = ?3, dev = ?4, ino = ?5, size = ?6, mtime_ns = ?7")?.execute(
            params![blob(output), id, rule, v.dev as i64, v.ino as i64, v.size as i64, v.mtime_ns as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The rule that published exactly this version of `path`, if shotrouter did.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn producer(&self, path: &Path, v: FileVersion) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT rule FROM outputs WHERE path = ?1 AND dev = ?2 AND ino = ?3 AND size = ?4 AND mtime_ns = ?5")?.query_row(
                params![blob(path), v.dev as i64, v.ino as i64, v.size as i64, v.mtime_ns as i64],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records the end of an attempt (also of one whose start was never recorded: nothing was
    /// spawned). `retry_at` (unix ms) queues it again instead of failing it. Returns false when
    /// a user cancelled the job meanwhile.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn finish(
        &mut self,
        id: JobId,
        status: Status,
        result: Option<&str>,
        retry_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let changed = self.write(|c| match retry_at {
            Some(at) => {
                let seq = Self::next_queue_seq(c)?;
                c.prepare_cached(
                    "UPDATE jobs SET status = 'queued', exit_status = ?2, finished_at = ?3, not_before = ?4, queue_seq = ?5,
                         temp_output = NULL, pgid = NULL, attempts = attempts + (status = 'queued'),
                         started_at = coalesce(started_at, ?3)
                     WHERE id = ?1 AND status IN ('queued', 'running')",
                )?
                .execute(
                    params![id, result, now_ms(), at, seq],
                )
            }
            None => c
                .prepare_cached(
                    "UPDATE jobs SET status = ?2, exit_status = ?3, finished_at = ?4, temp_output = NULL, pgid = NULL,
                         attempts = attempts + (status = 'queued'), started_at = coalesce(started_at, ?4)
                     WHERE id = ?1 AND status IN ('queued', 'running')",
                )?
                .execute(
                params![id, status.as_str(), result, now_ms()],
            ),
        })?;
        Ok(changed == 1)
    }

    /// Start-up recovery: every job left `running` by a daemon that died is resolved. Its process
    /// group is killed if still alive (and provably ours), its temp output removed; if its product
    /// was published, it is recorded done, else queued again (the interrupted attempt counts).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn recover_interrupted(&mut self) -> Result<Vec<Interrupted>, StoreError> {
        type Row = (
            JobId,
            String,
            Option<i32>,
            Option<i64>,
            Option<String>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            [Option<i64>; 4],
        );
        let rows: Vec<Row> = {
            let mut stmt = self.conn.prepare(
                "SELECT id, rule, pgid, leader_start, boot_id, temp_output, output,
                        publish_dev, publish_ino, publish_size, publish_mtime_ns
                 FROM jobs WHERE status = 'running'",
            )?;
            let mapped = stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    [r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
                ))
            })?;
            mapped.collect::<Result<_, _>>()?
        };
        let mut recovered = Vec::new();
        for (id, rule, pgid, leader_start, boot_id, temp, output, published) in rows {
            let killed = match (pgid, leader_start, boot_id) {
                (Some(pgid), Some(start), Some(boot_id)) => GroupId {
                    pgid,
                    leader_start: start as u64,
                    boot_id,
                }
                .kill(),
                _ => 0,
            };
            if let Some(temp) = temp {
                let _ = std::fs::remove_file(path_of(temp));
            }
            let was_published = match (output, published) {
                (Some(output), [Some(dev), Some(ino), Some(size), Some(mtime)]) => {
                    FileVersion::of(&path_of(output)).is_some_and(|v| {
                        (v.dev as i64, v.ino as i64, v.size as i64, v.mtime_ns as i64)
                            == (dev, ino, size, mtime)
                    })
                }
                _ => false,
            };
            let resolution = if was_published {
                self.conn.execute(
                    "UPDATE jobs SET status = 'done', exit_status = 'published before an interruption', finished_at = ?2,
                         temp_output = NULL, pgid = NULL WHERE id = ?1",
                    params![id, now_ms()],
                )?;
                Resolution::Published
            } else {
                self.write(|tx| {
                    let seq = Self::next_queue_seq(tx)?;
                    tx.execute(
                        "UPDATE jobs SET status = 'queued', exit_status = 'interrupted: the daemon stopped', queue_seq = ?2,
                             temp_output = NULL, pgid = NULL WHERE id = ?1",
                        params![id, seq],
                    )
                })?;
                Resolution::Requeued
            };
            recovered.push(Interrupted {
                id,
                rule,
                resolution,
                killed,
            });
        }
        Ok(recovered)
    }

    /// The stored commands and output of a job.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn plan_of(&self, id: JobId) -> Result<Option<StoredPlan>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT steps, output FROM jobs WHERE id = ?1", [id], |r| {
                let steps: Option<Vec<u8>> = r.get(0)?;
                let output: Option<Vec<u8>> = r.get(1)?;
                Ok(StoredPlan {
                    steps: steps.map(|s| decode_steps(&s)).unwrap_or_default(),
                    output: output.map(path_of),
                })
            })
            .optional()?)
    }

    // ---- the operations CLI ----

    /// Counts for `shotrouter status`.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn status(&self) -> Result<StatusReport, StoreError> {
        let now = now_ms();
        let count = |sql: &str, since: i64| -> Result<u64, StoreError> {
            Ok(self.conn.query_row(sql, [since], |r| r.get::<_, i64>(0))? as u64)
        };
        let oldest: Option<i64> = self.conn.query_row(
            "SELECT min(created_at) FROM jobs WHERE status = 'queued'",
            [],
            |r| r.get(0),
        )?;
        Ok(StatusReport {
            running: count(
                "SELECT count(*) FROM jobs WHERE status = 'running' AND ?1 >= 0",
                0,
            )?,
            claimed: 0,
            queued: count(
                "SELECT count(*) FROM jobs WHERE status = 'queued' AND ?1 >= 0",
                0,
            )?,
            failed_24h: count(
                "SELECT count(*) FROM jobs WHERE status = 'failed' AND finished_at >= ?1",
                now - 86_400_000,
            )?,
            done_1h: count(
                "SELECT count(*) FROM jobs WHERE status = 'done' AND finished_at >= ?1",
                now - 3_600_000,
            )?,
            done_24h: count(
                "SELECT count(*) FROM jobs WHERE status = 'done' AND finished_at >= ?1",
                now - 86_400_000,
            )?,
            oldest_queued_s: oldest.map(|t| (now - t) / 1000),
            files: count("SELECT count(*) FROM files WHERE ?1 >= 0", 0)?,
        })
    }

    const ROW_SQL: &'static str = "SELECT j.id, j.rule, f.path, j.status, j.attempts, j.exit_status, j.created_at, j.started_at,
        j.finished_at, CASE WHEN j.status = 'done' THEN j.output END FROM jobs j JOIN files f ON f.id = j.file_id";

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
        Ok(JobRow {
            id: r.get(0)?,
            rule: r.get(1)?,
            path: lossy(&r.get::<_, Vec<u8>>(2)?),
            status: r.get(3)?,
            attempts: r.get::<_, i64>(4)? as u32,
            result: r.get(5)?,
            created_at: r.get(6)?,
            started_at: r.get(7)?,
            finished_at: r.get(8)?,
            output: r.get::<_, Option<Vec<u8>>>(9)?.map(|b| lossy(&b)),
            node: None,
        })
    }

    /// Jobs for `shotrouter jobs`, newest first.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn jobs(
        &self,
        status: Option<Status>,
        rule: Option<&str>,
        since_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<JobRow>, StoreError> {
        let sql = format!(
            "{} WHERE (?1 IS NULL OR j.status = ?1) AND (?2 IS NULL OR j.rule = ?2) AND (?3 IS NULL OR j.created_at >= ?3)
             ORDER BY j.id DESC LIMIT ?4",
            Self::ROW_SQL
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![status.map(Status::as_str), rule, since_ms, limit as i64],
            Self::row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Everything about one job.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn job(&self, id: JobId) -> Result<Option<JobDetail>, StoreError> {
        let sql = format!("{} WHERE j.id = ?1", Self::ROW_SQL);
        let Some(row) = self.conn.query_row(&sql, [id], Self::row).optional()? else {
            return Ok(None);
        };
        let (rule_hash, steps, input): (String, Option<Vec<u8>>, Option<StoredVersion>) =
            self.conn.query_row(
                "SELECT rule_hash, steps, dev, ino, size, mtime_ns FROM jobs WHERE id = ?1",
                [id],
                |r| {
                    let dev: Option<i64> = r.get(2)?;
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        match dev {
                            Some(dev) => Some((
                                dev as u64,
                                r.get::<_, i64>(3)? as u64,
                                r.get::<_, i64>(4)? as u64,
                                r.get(5)?,
                            )),
                            None => None,
                        },
                    ))
                },
            )?;
        let raw_steps = steps.map(|s| decode_steps(&s)).unwrap_or_default();
        Ok(Some(JobDetail {
            row,
            rule_hash,
            input,
            steps: raw_steps
                .iter()
                .map(|s| s.iter().map(|a| lossy(a)).collect())
                .collect(),
            raw_steps,
        }))
    }

    /// Queues failed or cancelled jobs again; returns the ids requeued.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn retry(
        &mut self,
        ids: &[JobId],
        all_failed_of_rule: Option<Option<&str>>,
    ) -> Result<Vec<JobId>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut targets: Vec<JobId> = ids.to_vec();
        if let Some(rule) = all_failed_of_rule {
            let mut stmt = tx.prepare(
                "SELECT id FROM jobs WHERE status = 'failed' AND (?1 IS NULL OR rule = ?1)",
            )?;
            let found = stmt.query_map(params![rule], |r| r.get(0))?;
            targets.extend(found.collect::<Result<Vec<JobId>, _>>()?);
        }
        let mut requeued = Vec::new();
        for id in targets {
            let seq = Self::next_queue_seq(&tx)?;
            // Planned again by the daemon with the current rules: a fixed rule takes effect.
            let changed = tx.execute(
                "UPDATE jobs SET status = 'queued', steps = NULL, not_before = 0, queue_seq = ?2, attempts = 0
                 WHERE id = ?1 AND status IN ('failed', 'cancelled')",
                params![id, seq],
            )?;
            if changed == 1 {
                requeued.push(id);
            }
        }
        tx.commit()?;
        Ok(requeued)
    }

    /// Cancels queued or running jobs; returns, for each cancelled job, the group to kill.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn cancel(&mut self, ids: &[JobId]) -> Result<Vec<(JobId, Option<GroupId>)>, StoreError> {
        self.write(|tx| {
        let mut cancelled = Vec::new();
        for &id in ids {
            let group: Option<(Option<i32>, Option<i64>, Option<String>)> = tx
                .query_row(
                    "UPDATE jobs SET status = 'cancelled', finished_at = ?2, exit_status = 'cancelled by a user'
                     WHERE id = ?1 AND status IN ('queued', 'running') RETURNING pgid, leader_start, boot_id",
                    params![id, now_ms()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((pgid, start, boot)) = group {
                let group = match (pgid, start, boot) {
                    (Some(pgid), Some(start), Some(boot_id)) => Some(GroupId {
                        pgid,
                        leader_start: start as u64,
                        boot_id,
                    }),
                    _ => None,
                };
                cancelled.push((id, group));
            }
        }
        Ok(cancelled)
        })
    }

    /// Queues new jobs of `rule` for the latest version of every file it ran on (since `since_ms`).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn rerun(
        &mut self,
        rule: &str,
        rule_hash_unknown: &str,
        since_ms: Option<i64>,
    ) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let files: Vec<(i64, i64, i64, i64, i64)> = {
            let mut stmt = tx.prepare(
                "SELECT DISTINCT f.id, f.dev, f.ino, f.size, f.mtime_ns FROM jobs j JOIN files f ON f.id = j.file_id
                 WHERE j.rule = ?1 AND (?2 IS NULL OR j.created_at >= ?2)
                 AND NOT EXISTS (SELECT 1 FROM jobs q WHERE q.file_id = f.id AND q.rule = ?1 AND q.status IN ('queued', 'running'))",
            )?;
            let rows = stmt.query_map(params![rule, since_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for (file_id, dev, ino, size, mtime) in &files {
            let seq = Self::next_queue_seq(&tx)?;
            tx.execute(
                "INSERT INTO jobs (rule, rule_hash, file_id, dev, ino, size, mtime_ns, status, created_at, queue_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?9)",
                params![rule, rule_hash_unknown, file_id, dev, ino, size, mtime, now_ms(), seq],
            )?;
        }
        tx.commit()?;
        Ok(files.len())
    }

    /// What the store knows of one file.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn file(&self, path: &Path) -> Result<Option<FileRecord>, StoreError> {
        let found: Option<(i64, i64, i64, i64, i64, bool)> = self
            .conn
            .query_row(
                "SELECT id, dev, ino, size, mtime_ns, baseline FROM files WHERE path = ?1",
                [blob(path)],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()?;
        let produced_by: Option<(String, JobId)> = self
            .conn
            .query_row(
                "SELECT rule, job_id FROM outputs WHERE path = ?1",
                [blob(path)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, dev, ino, size, mtime, baseline)) = found else {
            return Ok(produced_by.map(|p| FileRecord {
                path: lossy(blob(path)),
                version: None,
                baseline: false,
                jobs: Vec::new(),
                produced_by: Some(p),
            }));
        };
        let sql = format!("{} WHERE j.file_id = ?1 ORDER BY j.id DESC", Self::ROW_SQL);
        let mut stmt = self.conn.prepare(&sql)?;
        let jobs = stmt.query_map([id], Self::row)?.collect::<Result<_, _>>()?;
        Ok(Some(FileRecord {
            path: lossy(blob(path)),
            version: Some((dev as u64, ino as u64, size as u64, mtime)),
            baseline,
            jobs,
            produced_by,
        }))
    }
}

#[cfg(test)]
mod tests;
