//! Checkpoints the write-ahead log from a thread of its own. SQLite would otherwise checkpoint
//! inside whichever commit crosses 1,000 WAL pages, and a checkpoint fsyncs: several
//! milliseconds added to one unlucky claim, which is what the engine's p99 latency showed.
//! The engine's connections turn automatic checkpoints off; this thread runs a passive one (it
//! never blocks a writer) every quarter second and once more when the store is closed.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rusqlite::{Connection, OpenFlags};

use super::encoding::retry_soon;

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
        let _ = conn.busy_handler(Some(retry_soon));
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
    loop {
        let last = !matches!(stopped.recv_timeout(EVERY), Err(RecvTimeoutError::Timeout));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "checkpoint deferred");
        }
        if last {
            return;
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
