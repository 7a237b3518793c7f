//! The SQLite backend of the store traits: one [`SqliteStore`] per thread and per node name,
//! all sharing one file in WAL mode. Every write runs in a `BEGIN IMMEDIATE` transaction and a
//! 50 µs busy handler waits out the others, so daemons, workers and CLI processes never see a
//! lock error. The file is refused when it is on a network or FUSE file system, not ours
//! (`application_id`) or newer than this build; an older one is migrated in place on open.
//! Paths are stored as (root name, relative path); this module maps them to and from the
//! absolute paths of this node through the `roots` table.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::StoreError;
use super::queue::RootedPath;
use crate::store::encoding::{display_path, stored};
use encoding::{APPLICATION_ID, path_of, retry_soon};

/// SQL for "the job is queued, claimed or running", as a string literal, in the words of the
/// `jobs_active` partial index (so SQLite may use it) and without an `IN` list of three, which
/// SQLite evaluates by building a temporary b-tree each time (schema v6). `active!("j.")` for a
/// table alias.
macro_rules! active {
    () => {
        active!("")
    };
    ($alias:literal) => {
        concat!(
            "(",
            $alias,
            "status = 'waiting' OR ",
            $alias,
            "status = 'queued' OR ",
            $alias,
            "status = 'claimed' OR ",
            $alias,
            "status = 'running')"
        )
    };
}

mod adopt;
mod checkpoint;
mod cluster;
mod control;
mod cuts;
mod encoding;
mod enqueue;
pub use encoding::DB_FILE;
mod history;
mod lease;
mod lineage;
mod lineage_query;
mod queue;
mod schema;
#[cfg(test)]
mod tests;
mod write;

/// A connection to the SQLite store, on behalf of one node.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    node: String,
    created: bool,
    /// Whether rows migrated from the previous release may still need upgrading (checked at
    /// open; an enqueue skips the legacy look-up when there are none).
    has_legacy: bool,
    /// The engine's connection checkpoints the log from a thread of its own.
    _checkpointer: Option<checkpoint::Checkpointer>,
}

/// This machine's name, the default node name: the kernel's hostname.
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl SqliteStore {
    /// Opens (creating it if needed) the store in `dir` for the daemon of node `node`, and
    /// migrates an older schema in place.
    ///
    /// # Errors
    /// A network file system, an unusable folder, a foreign or newer file, database errors.
    pub fn open(dir: &Path, node: &str) -> Result<SqliteStore, StoreError> {
        let folder = |e: &dyn std::fmt::Display| StoreError::Folder {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| folder(&e))?;
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
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| folder(&e))?;
        let mut store = SqliteStore::start(conn, path, node, Some(!existed))?;
        store._checkpointer = checkpoint::Checkpointer::start(&store.path);
        if store._checkpointer.is_some() {
            store.conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        }
        Ok(store)
    }

    /// Opens the store a daemon has opened with [`open`](Self::open), for one of its workers:
    /// no migration, no checkpoints of its own (the daemon's connection runs them).
    ///
    /// # Errors
    /// As [`open_existing`](Self::open_existing).
    pub fn open_for_worker(dir: &Path, node: &str) -> Result<SqliteStore, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::Missing(dir.to_path_buf()));
        }
        let conn = Connection::open_with_flags(&path, SHARED_FLAGS)?;
        let store = SqliteStore::start(conn, path, node, None)?;
        store.conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        Ok(store)
    }

    /// Opens an existing store for the operations CLI, never creating nor migrating one: the
    /// daemon of the previous release may still be writing an older one.
    ///
    /// # Errors
    /// [`StoreError::Missing`] when there is no store, [`StoreError::Outdated`] for an older
    /// schema; a foreign or newer file, database errors.
    pub fn open_existing(dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::Missing(dir.to_path_buf()));
        }
        let conn = Connection::open_with_flags(&path, SHARED_FLAGS)?;
        let store = SqliteStore::start(conn, path, &node_name(), None)?;
        let found: i32 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found < schema::SCHEMA_VERSION {
            return Err(StoreError::Outdated {
                path: store.path,
                found,
                current: schema::SCHEMA_VERSION,
            });
        }
        Ok(store)
    }

    /// Configures the connection and checks the file; `created` is `Some` for the daemon's
    /// open, which may migrate it.
    fn start(
        conn: Connection,
        path: PathBuf,
        node: &str,
        created: Option<bool>,
    ) -> Result<SqliteStore, StoreError> {
        let may_migrate = created.is_some();
        let mut store = SqliteStore {
            conn,
            path,
            node: node.to_string(),
            created: created.unwrap_or(false),
            has_legacy: false,
            _checkpointer: None,
        };
        store.configure()?;
        // An up-to-date store is opened without a write: the CLI must not queue behind the
        // daemon's writes just to look.
        if !store.check_identity()? && may_migrate {
            schema::migrate(&mut store.conn, APPLICATION_ID)?;
        }
        store.has_legacy = store
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM files WHERE legacy = 1)",
                [],
                |r| r.get(0),
            )
            .unwrap_or(true);
        Ok(store)
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
                self.foreign("not an SQLite database")
            }
            other => StoreError::Sql(other),
        };
        self.conn.busy_handler(Some(retry_soon)).map_err(not_a_db)?;
        // The engine's connection cycles through more than rusqlite's default 16 cached
        // statements (enqueue, claims, starts, ends, the periodic polls): with 16, some were
        // evicted and parsed again on every use.
        self.conn
            .set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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

    /// Refuses a file that is not ours or is newer; answers whether it is ours and current.
    fn check_identity(&self) -> Result<bool, StoreError> {
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
        if version > schema::SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                supported: schema::SCHEMA_VERSION,
            });
        }
        Ok(app == APPLICATION_ID && version == schema::SCHEMA_VERSION)
    }

    /// The registered roots, longest path first, so the first one containing a path is the
    /// innermost (roots may nest).
    fn registered_roots(conn: &Connection) -> rusqlite::Result<Vec<(String, PathBuf)>> {
        let mut stmt = conn.prepare_cached("SELECT name, path FROM roots")?;
        let mut roots: Vec<(String, PathBuf)> = stmt
            .query_map([], |r| Ok((r.get(0)?, path_of(r.get(1)?))))?
            .collect::<Result<_, _>>()?;
        roots.sort_by_key(|(_, path)| std::cmp::Reverse(path.as_os_str().len()));
        Ok(roots)
    }

    /// `path` (absolute on this node) as the store keys it.
    fn rooted(conn: &Connection, path: &Path) -> rusqlite::Result<RootedPath> {
        for (name, root) in SqliteStore::registered_roots(conn)? {
            if let Ok(rel) = path.strip_prefix(&root) {
                return Ok(RootedPath {
                    root: name,
                    rel: rel.to_path_buf(),
                });
            }
        }
        Ok(RootedPath {
            root: String::new(),
            rel: path.to_path_buf(),
        })
    }
}

/// How a connection to an existing store is opened. `NO_MUTEX`: a [`Connection`] is never
/// shared between threads (it is not `Sync`), so SQLite's own per-call locking of it only
/// costs (a lock and an unlock around every step and every column read).
const SHARED_FLAGS: OpenFlags =
    OpenFlags::SQLITE_OPEN_READ_WRITE.union(OpenFlags::SQLITE_OPEN_NO_MUTEX);

/// Statements each connection keeps prepared: every one the store runs, with room to spare.
const STATEMENT_CACHE: usize = 64;

/// The SQL that gives a job queued by someone else its place after every other such job. Only
/// rows with `queue_seq > 0` enter the partial index, so the `max` reads one index entry.
const NEXT_QUEUE_SEQ: &str =
    "(SELECT coalesce(max(queue_seq), 0) + 1 FROM jobs WHERE queue_seq > 0)";
