//! Opening the store wherever `--store` says it is: the one place that knows every backend.

use super::cuts::CutStore;
use super::history::JobHistory;
use super::location::Location;
use super::postgres::PgStore;
use super::queue::JobQueue;
use super::sqlite::SqliteStore;
use super::{OpsStore, StoreError};

/// Opens the engine's side of the store at `loc` for node `node`, creating or upgrading it.
///
/// # Errors
/// Whatever the backend's open reports.
pub fn open_queue(loc: &Location, node: &str) -> Result<Box<dyn JobQueue>, StoreError> {
    Ok(match loc {
        Location::Folder(dir) => Box::new(SqliteStore::open(dir, node)?),
        Location::Postgres(pg) => Box::new(PgStore::open(pg, node)?),
    })
}

/// Opens the store at `loc` for one of a worker's connections: an SQLite store must exist (the
/// watcher on this machine made it, and migrates it); a PostgreSQL one is created or upgraded
/// as by [`open_queue`], since workers may start before any watcher.
///
/// # Errors
/// Whatever the backend's open reports.
pub fn open_worker_queue(loc: &Location, node: &str) -> Result<Box<dyn JobQueue>, StoreError> {
    Ok(match loc {
        Location::Folder(dir) => Box::new(SqliteStore::open_for_worker(dir, node)?),
        Location::Postgres(pg) => Box::new(PgStore::open(pg, node)?),
    })
}

/// Opens an existing store at `loc` for the operations commands; never creates nor upgrades one.
///
/// # Errors
/// A missing or outdated store; whatever the backend's open reports.
pub fn open_history(loc: &Location) -> Result<Box<dyn JobHistory + Send>, StoreError> {
    Ok(match loc {
        Location::Folder(dir) => Box::new(SqliteStore::open_existing(dir)?),
        Location::Postgres(pg) => Box::new(PgStore::open_existing(pg)?),
    })
}

/// Opens an existing store at `loc` for `shotrouter cut` and the API's cuts; never creates nor
/// upgrades one.
///
/// # Errors
/// As [`open_history`].
pub fn open_cuts(loc: &Location) -> Result<Box<dyn CutStore + Send>, StoreError> {
    Ok(match loc {
        Location::Folder(dir) => Box::new(SqliteStore::open_existing(dir)?),
        Location::Postgres(pg) => Box::new(PgStore::open_existing(pg)?),
    })
}

/// Opens an existing store at `loc` for the HTTP server: its history and its cuts on one
/// connection; never creates nor upgrades one.
///
/// # Errors
/// As [`open_history`].
pub fn open_ops(loc: &Location) -> Result<Box<dyn OpsStore + Send>, StoreError> {
    Ok(match loc {
        Location::Folder(dir) => Box::new(SqliteStore::open_existing(dir)?),
        Location::Postgres(pg) => Box::new(PgStore::open_existing(pg)?),
    })
}
