//! Claims whose holder is gone: this node's own after a crash (`recover`) and any node's whose
//! heartbeat lapsed by the database's clock (`expire`). Each runs in one transaction that
//! locks the rows it takes (`FOR UPDATE`, and `SKIP LOCKED` for expiry, which any node may run
//! at the same time), queues the jobs again with a fresh `queue_seq` and notifies, and returns
//! what the caller must clean up; the store kills no process and deletes no file itself.

use postgres::{Row, Transaction};

use super::super::StoreError;
use super::super::encoding::path_of;
use super::super::queue::Abandoned;
use super::queue::retryable;
use super::wake::notify;
use super::{NEXT_QUEUE_SEQ, PgStore, QUEUE_SEQ_LOCK};
use crate::os::version::FileVersion;
use crate::store::RunHandle;

const HELD_SQL: &str = "SELECT id, rule, pgid, leader_start, boot_id, temp_output, output,
        publish_ino, publish_size, publish_mtime_ns, token, run_remote
    FROM jobs WHERE status IN ('claimed', 'running')";

/// What the engine must clean up after this claim, once it is given back.
fn abandoned(row: &Row, published: bool) -> Abandoned {
    Abandoned {
        id: row.get(0),
        rule: row.get(1),
        run: RunHandle::from_columns(row.get(2), row.get(3), row.get(4), row.get(11)),
        temp_output: row.get::<_, Option<Vec<u8>>>(5).map(path_of),
        output: row.get::<_, Option<Vec<u8>>>(6).map(path_of),
        token: row.get(10),
        published,
    }
}

/// Whether the held job's product on disk is the version it recorded before the rename.
fn was_published(row: &Row) -> bool {
    let output: Option<Vec<u8>> = row.get(6);
    let recorded: [Option<i64>; 3] = [row.get(7), row.get(8), row.get(9)];
    match (output, recorded) {
        (Some(output), [Some(ino), Some(size), Some(mtime)]) => FileVersion::of(&path_of(output))
            .is_some_and(|v| {
                (v.ino as i64, v.size as i64, v.mtime_ns as i64) == (ino, size, mtime)
            }),
        _ => false,
    }
}

/// Why a job this node held when it died was queued again.
fn interrupted(published: bool) -> &'static str {
    if published {
        "interrupted after its product was published: the next attempt delivers it without running its commands"
    } else {
        "interrupted: the daemon stopped"
    }
}

/// Queues a held job again for someone else to claim; the attempt was counted by its claim.
fn requeue(tx: &mut Transaction<'_>, id: i64, reason: &str) -> Result<(), postgres::Error> {
    tx.execute(
        &format!(
            "UPDATE jobs SET status = 'queued', exit_status = $2, not_before = 0,
                 due_at = '-infinity', queue_seq = {NEXT_QUEUE_SEQ}, temp_output = NULL,
                 pgid = NULL, leader_start = NULL, boot_id = NULL, run_remote = NULL
             WHERE id = $1"
        ),
        &[&id, &reason],
    )?;
    Ok(())
}

impl PgStore {
    /// Runs `body` in a transaction that holds the `queue_seq` lock, again after a deadlock.
    pub(super) fn requeueing<T>(
        &self,
        body: impl Fn(&mut Transaction<'_>) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut client = self.client()?;
        let mut tries = 0;
        loop {
            let result = (|| {
                let mut tx = client.transaction()?;
                // The lock comes first, before any row lock, so no two transactions wait on
                // each other's.
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&QUEUE_SEQ_LOCK])?;
                let value = body(&mut tx)?;
                tx.commit()?;
                Ok(value)
            })();
            match result {
                Err(e) if retryable(&e) && tries < 5 => tries += 1,
                other => return Ok(other?),
            }
        }
    }

    /// See [`JobQueue::recover`](super::super::queue::JobQueue::recover).
    pub(super) fn recover_claims(&mut self) -> Result<Vec<Abandoned>, StoreError> {
        let node = self.node.clone();
        self.requeueing(|tx| {
            let sql = format!("{HELD_SQL} AND (node = $1 OR node IS NULL) ORDER BY id FOR UPDATE");
            let mut found = Vec::new();
            let mut queued = false;
            for row in tx.query(&sql, &[&node])? {
                let id: i64 = row.get(0);
                let published = was_published(&row);
                // Queued again even when its product is in place: a `copy:` after the publish
                // may not have been made. The next attempt finds the product it recorded and
                // delivers it without running the commands again.
                requeue(tx, id, interrupted(published))?;
                queued = true;
                found.push(abandoned(&row, published));
            }
            if queued {
                notify(tx)?;
            }
            Ok(found)
        })
    }

    /// See [`JobQueue::expire`](super::super::queue::JobQueue::expire). A node with no
    /// heartbeat row at all counts as lapsed; each node's own lease (`register_node`) wins over
    /// `lease_ms`, and the database's clock measures it. A lease runs from the later of the
    /// node's last heartbeat and the server's start: while the database was down no node could
    /// heartbeat, so a restart gives every node a whole lease to come back before its claims
    /// are taken (otherwise the first node to reconnect would requeue every running job).
    pub(super) fn expire_claims(&mut self, lease_ms: i64) -> Result<Vec<Abandoned>, StoreError> {
        self.requeueing(|tx| {
            let sql = format!(
                "{HELD_SQL} AND (node IS NULL OR node NOT IN (SELECT name FROM nodes
                     WHERE greatest(heartbeat_at, pg_postmaster_start_time())
                         + coalesce(lease_ms, $1::bigint) * interval '1 millisecond' >= now()))
                 ORDER BY id FOR UPDATE SKIP LOCKED"
            );
            let mut found = Vec::new();
            for row in tx.query(&sql, &[&lease_ms])? {
                requeue(
                    tx,
                    row.get(0),
                    "interrupted: its node stopped sending heartbeats",
                )?;
                found.push(abandoned(&row, false));
            }
            if !found.is_empty() {
                notify(tx)?;
            }
            Ok(found)
        })
    }
}
