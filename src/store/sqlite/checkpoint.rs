//! Checkpoints the write-ahead log from a thread of its own. SQLite would otherwise checkpoint
//! inside whichever commit crosses 1,000 WAL pages, and a checkpoint fsyncs: several
//! milliseconds added to one unlucky claim, which is what the engine's p99 latency showed.
//! The engine's connections turn automatic checkpoints off; this thread runs a passive one (it
//! never waits for a writer) every quarter second and once more when the store is closed.
//!
//! A checkpoint that copied the whole log also starts the log over from here ([`restart_log`]):
//! the first frame SQLite writes after a restart syncs the log's header, and that fsync would
//! otherwise fall in the engine's next commit, on some claim's path from file to job. It is the
//! same fsync, made by a write of this thread's, which holds the write lock meanwhile: the
//! commit of the engine that comes then waits for it.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rusqlite::{Connection, OpenFlags};

/// How often the log is checkpointed.
const EVERY: Duration = Duration::from_millis(250);

/// The checkpointing thread; dropping it runs a last checkpoint and stops the thread.
pub(super) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (which must exist).
    pub(super) fn start(path: &Path) -> Option<Checkpointer> {
        let conn = match Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the store for checkpoints; SQLite checkpoints in commits instead");
                return None;
            }
        };
        // Synchronous as the engine's connection is (its commits do not sync the log; the
        // checkpoints do); a restart that finds the lock taken waits briefly, then leaves it.
        if let Err(e) = conn
            .execute_batch("PRAGMA synchronous = NORMAL")
            .and_then(|()| conn.busy_handler(Some(briefly)))
        {
            tracing::warn!(error = %e, "cannot set up the store's checkpoints; SQLite checkpoints in commits instead");
            return None;
        }
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || run(&conn, &stopped))
            .ok()?;
        Some(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

fn run(conn: &Connection, stopped: &Receiver<()>) {
    let mut turns = Turns::default();
    loop {
        let last = !matches!(stopped.recv_timeout(EVERY), Err(RecvTimeoutError::Timeout));
        turns.turn(conn, last);
        if last {
            return;
        }
    }
}

/// Waits for another writer's lock for a millisecond or two at most: the restart is only worth
/// making at once (and a store being closed must not wait on another process's writer).
fn briefly(attempts: i32) -> bool {
    if attempts >= 16 {
        return false;
    }
    std::thread::sleep(Duration::from_micros(50));
    true
}

/// What one turn of the thread does, apart from its timing.
#[derive(Default)]
struct Turns {
    /// `PRAGMA data_version` as of this thread's own restart write: while it is unchanged, the
    /// log holds nothing but that write, which is left uncopied (copied, it would be restarted
    /// again, four times a second on a store nobody writes; left, the next commit appends to
    /// it instead of restarting the log).
    own_write: Option<i64>,
}

impl Turns {
    /// Checkpoints what others wrote since the last turn (everything when `last`), and starts
    /// the log over when all of it was copied and nobody wrote since.
    fn turn(&mut self, conn: &Connection, last: bool) {
        let before = data_version(conn);
        if !last && before.is_some() && self.own_write == before {
            return;
        }
        match checkpoint(conn) {
            Ok(true) if !last => match restart_log(conn, before) {
                Ok(true) => self.own_write = before,
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "log restart left to the next commit"),
            },
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "checkpoint deferred"),
        }
    }
}

/// Changes whenever another connection commits.
fn data_version(conn: &Connection) -> Option<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()
}

/// A passive checkpoint; whether it copied a log that had frames, all of them.
fn checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    let (busy, frames, copied): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    Ok(busy == 0 && frames > 0 && copied == frames)
}

/// Starts the copied log over with a write of one page: the user version, rewritten unchanged,
/// in a transaction of its own (so a migration cannot come between the read and the write).
/// Written only when no other connection committed since `before` (read before the
/// checkpoint): a commit since may have restarted the log itself, or left frames the checkpoint
/// did not copy, and this write would then only add a page. Answers whether it wrote.
fn restart_log(conn: &Connection, before: Option<i64>) -> rusqlite::Result<bool> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    if before.is_none() || data_version(&tx) != before {
        return Ok(false);
    }
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
    tx.commit()?;
    Ok(true)
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The log's header after its magic and format: page size, checkpoint sequence, salts. A
    /// restart changes the sequence and the salts.
    fn log_header(db: &Path) -> Vec<u8> {
        let wal = std::fs::read(db.with_extension("db-wal")).expect("log");
        wal[8..24].to_vec()
    }

    fn open(db: &Path) -> Connection {
        let conn = Connection::open(db).expect("opens");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0",
        )
        .expect("pragmas");
        conn
    }

    /// A database with a table of one row, its writer and the checkpointer's connection.
    fn store() -> (tempfile::TempDir, PathBuf, Connection, Connection) {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("s.db");
        let writer = open(&db);
        writer
            .execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)")
            .expect("writes");
        let checkpointer = open(&db);
        (dir, db, writer, checkpointer)
    }

    #[test]
    fn the_log_is_started_over_here_not_in_the_next_commit_and_left_alone_at_rest() {
        let (_dir, db, writer, checkpointer) = store();
        let mut turns = Turns::default();

        let before = log_header(&db);
        turns.turn(&checkpointer, false);
        let restarted = log_header(&db);
        assert_ne!(
            before, restarted,
            "a copied log is started over by the checkpointer"
        );

        writer
            .execute("INSERT INTO t VALUES (2)", [])
            .expect("writes");
        assert_eq!(
            log_header(&db),
            restarted,
            "the writer's commit appends (no restart, no fsync of the header in it)"
        );

        turns.turn(&checkpointer, false);
        let again = log_header(&db);
        assert_ne!(again, restarted, "the next turn copies and restarts again");
        turns.turn(&checkpointer, false);
        turns.turn(&checkpointer, false);
        assert_eq!(
            log_header(&db),
            again,
            "at rest, its own write is left alone"
        );

        writer
            .execute("INSERT INTO t VALUES (3)", [])
            .expect("writes");
        assert_eq!(log_header(&db), again, "and the next commit appends to it");
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("reads");
        assert_eq!(rows, 3);
    }

    #[test]
    fn no_restart_write_after_a_commit_the_checkpoint_did_not_see() {
        let (_dir, _db, writer, checkpointer) = store();
        let before = data_version(&checkpointer);
        assert!(
            checkpoint(&checkpointer).expect("checkpoints"),
            "all copied"
        );
        // A commit between the checkpoint and the restart: it restarted the log itself.
        writer
            .execute("INSERT INTO t VALUES (2)", [])
            .expect("writes");
        let seen_by_writer = data_version(&writer);
        assert!(
            !restart_log(&checkpointer, before).expect("restart"),
            "nothing written"
        );
        assert_eq!(
            data_version(&writer),
            seen_by_writer,
            "no commit by the checkpointer"
        );
        let mut turns = Turns::default();
        turns.turn(&checkpointer, false);
        assert_eq!(
            turns.own_write,
            data_version(&checkpointer),
            "the next turn copies that commit and restarts"
        );
    }
}
