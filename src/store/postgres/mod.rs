//! The PostgreSQL backend of the store traits, for a store that watchers and workers on many
//! machines share. One [`PgStore`] is one connection on behalf of one node (the sync `postgres`
//! client: the codebase is threads and channels). Every write is a short transaction; a job is
//! claimed with `FOR UPDATE SKIP LOCKED` and no transaction stays open while it runs. Leases,
//! heartbeats and due times use the database's clock only (`now()`), never this machine's, so
//! nodes with skewed clocks agree. A commit that queues work sends `NOTIFY shotrouter_jobs` in
//! the same transaction. A broken connection is opened again at the next call.
//!
//! Paths are (root name, relative path) as raw bytes (`BYTEA`), so machines that mount the tree
//! at different places agree; each node registers where it mounts each root (`roots` is keyed
//! by node and name), and absolute paths are mapped through this node's mounts first.

use std::cell::{Cell, RefCell, RefMut};
use std::path::{Path, PathBuf};

use postgres::Client;

use super::StoreError;
use super::encoding::path_of;
use super::location::PgLocation;
use super::queue::RootedPath;

mod cached;
mod cluster;
mod control;
mod cuts;
mod enqueue;
mod history;
mod lease;
mod lineage;
mod lineage_query;
mod queue;
mod schema;
#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;
pub mod tls;
mod wake;
mod write;

/// The channel a commit that queues work notifies.
pub const CHANNEL: &str = "shotrouter_jobs";

/// The current time in the database, as unix milliseconds (the unit of the job rows' times).
/// `now()` is the transaction's start: every row a commit writes gets the same time.
const NOW_MS: &str = "(extract(epoch from now()) * 1000)::bigint";

/// The advisory lock that orders `queue_seq`: taken by a transaction before it gives a job a
/// place after the others, held to its commit, so places are given in commit order and an
/// engine's cursor never skips a job committed late with a lower place.
const QUEUE_SEQ_LOCK: i64 = 0x5352_4F55_0001;

/// The SQL that gives a job queued by someone else its place after every other such job (under
/// [`QUEUE_SEQ_LOCK`]).
const NEXT_QUEUE_SEQ: &str =
    "(SELECT coalesce(max(queue_seq), 0) + 1 FROM jobs WHERE queue_seq > 0)";

/// A connection to the PostgreSQL store, on behalf of one node.
pub struct PgStore {
    client: RefCell<Client>,
    location: PgLocation,
    node: String,
    created: bool,
    /// Whether this connection has run `LISTEN` (a new connection has not).
    listening: Cell<bool>,
    /// The statements prepared on this connection.
    statements: RefCell<cached::Statements>,
}

impl PgStore {
    /// Opens the store at `loc` for node `node`, creating the schema on first use and
    /// upgrading an older one in place.
    ///
    /// # Errors
    /// An unreachable server, a foreign or newer schema, database errors.
    pub fn open(loc: &PgLocation, node: &str) -> Result<PgStore, StoreError> {
        let mut client = connect(loc)?;
        let created = schema::migrate(&mut client, &loc.to_string())?;
        Ok(PgStore {
            client: RefCell::new(client),
            location: loc.clone(),
            node: node.to_string(),
            created,
            listening: Cell::new(false),
            statements: RefCell::default(),
        })
    }

    /// Opens an existing store for the operations CLI, never creating nor upgrading it.
    ///
    /// # Errors
    /// [`StoreError::NoSchema`] when there is none, [`StoreError::Outdated`] for an older
    /// schema, [`StoreError::TooNew`]; an unreachable server, database errors.
    pub fn open_existing(loc: &PgLocation) -> Result<PgStore, StoreError> {
        let mut client = connect(loc)?;
        schema::check_current(&mut client, &loc.to_string())?;
        Ok(PgStore {
            client: RefCell::new(client),
            location: loc.clone(),
            node: super::sqlite::node_name(),
            created: false,
            listening: Cell::new(false),
            statements: RefCell::default(),
        })
    }

    /// Where the store is.
    pub fn location(&self) -> &PgLocation {
        &self.location
    }

    /// The connection, opened again first when the server dropped it.
    fn client(&self) -> Result<RefMut<'_, Client>, StoreError> {
        let mut client = self.client.borrow_mut();
        if client.is_closed() {
            *client = connect(&self.location)?;
            self.listening.set(false);
            self.statements.borrow_mut().clear();
        }
        Ok(client)
    }
}

/// Connects to the database at `loc`, logging in with its resolved password, over TLS as its
/// `sslmode` asks; an error names the redacted URL and never the password.
///
/// # Errors
/// [`StoreError::Connect`] when the server cannot be reached or refuses the login;
/// [`StoreError::Tls`] when TLS cannot be set up or the server's certificate is refused;
/// [`StoreError::TlsRequired`] when the server takes only TLS and `sslmode=disable`;
/// [`StoreError::Location`] for an unusable password file.
pub(crate) fn connect(loc: &PgLocation) -> Result<postgres::Client, StoreError> {
    // libpq ignores sslmode on a unix socket (the server offers no TLS there, and there is no
    // host name to check): a machine-wide PGSSLMODE=verify-full must not need a CA file for it.
    let settings = if loc.is_socket() {
        &tls::TlsSettings::OFF
    } else {
        &loc.tls
    };
    let tls = tls::MakeRustls::new(settings).map_err(|source| StoreError::TlsSetup {
        url: loc.to_string(),
        source,
    })?;
    let (config, password) = loc.client_config()?;
    let mut client = config.connect(tls).map_err(|e| {
        let url = loc.to_string();
        let reason = super::url::scrub(&describe(&e), password.as_deref());
        if is_tls_failure(&e) {
            StoreError::Tls { url, reason }
        } else if e.as_db_error().is_some_and(|db| {
            *db.code() == postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                && db.message().contains("no encryption")
        }) {
            StoreError::TlsRequired { url, reason }
        } else {
            StoreError::Connect { url, reason }
        }
    })?;
    // A node frozen inside one of its (millisecond-long) transactions (SIGSTOP, a paused VM,
    // a swap storm) would hold its row and advisory locks for as long as it stays frozen, and
    // every other node's expiry and recovery would wait behind them: the lease would never
    // lapse. The server ends such a session instead; the node reconnects when it wakes.
    client
        .batch_execute(&format!(
            "SET idle_in_transaction_session_timeout = '{}ms'",
            IDLE_IN_TRANSACTION.as_millis()
        ))
        .map_err(|e| StoreError::Connect {
            url: loc.to_string(),
            reason: super::url::scrub(&describe(&e), password.as_deref()),
        })?;
    Ok(client)
}

/// Longest a session may sit idle inside an open transaction before the server ends it.
/// shotrouter's transactions never wait on anything but the database, so only a frozen
/// client reaches it.
pub(crate) const IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether the connection failed in the TLS handshake or its negotiation (the client's own
/// kind of error, or this module's [`tls::TlsError`] among its causes).
fn is_tls_failure(e: &postgres::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<tls::TlsError>() {
            return true;
        }
        cause = c.source();
    }
    e.as_db_error().is_none() && e.to_string().starts_with("error performing TLS handshake")
}

/// An error of the `postgres` client with its causes (its own text is only a kind, such as
/// `db error`), one line.
pub(crate) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The registered roots: this node's mounts first, then other nodes' (for a CLI on a machine
/// that runs no daemon), each group longest path first, so the first one containing a path is
/// the innermost (roots may nest).
fn registered_roots(
    client: &mut impl postgres::GenericClient,
    node: &str,
) -> Result<Vec<(String, PathBuf)>, postgres::Error> {
    let rows = client.query(
        "SELECT name, path FROM roots ORDER BY (node = $1) DESC, length(path) DESC, seen_at DESC",
        &[&node],
    )?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get(0), path_of(r.get(1))))
        .collect())
}

/// `path` (absolute on this node) as the store keys it.
fn rooted(
    client: &mut impl postgres::GenericClient,
    node: &str,
    path: &Path,
) -> Result<RootedPath, postgres::Error> {
    for (name, root) in registered_roots(client, node)? {
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

/// The SQL (a scalar subquery) for where root `root_col` is mounted, this node's mount first;
/// `$node` is the parameter holding the node's name.
fn root_path_sql(root_col: &str, node_param: &str) -> String {
    format!(
        "(SELECT r.path FROM roots r WHERE r.name = {root_col}
             ORDER BY (r.node = {node_param}) DESC, r.seen_at DESC LIMIT 1)"
    )
}
