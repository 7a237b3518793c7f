//! Claims whose holder is gone: this node's own after a crash (`recover`) and any node's whose
//! heartbeat lapsed (`expire`). Both run in one `BEGIN IMMEDIATE` transaction, queue the jobs
//! again with a fresh `queue_seq` (so every engine's cursor sees them) and return what the
//! caller must clean up; the store kills no process and deletes no file itself.

use rusqlite::{Connection, TransactionBehavior, params};

use super::super::queue::Abandoned;
use super::super::{JobId, StoreError, now_ms};
use super::encoding::path_of;
use super::{NEXT_QUEUE_SEQ, SqliteStore};
use crate::os::version::FileVersion;
use crate::store::RunHandle;

/// A claimed or running job as the lease code reads it.
struct Held {
    id: JobId,
    rule: String,
    run: Option<RunHandle>,
    temp_output: Option<Vec<u8>>,
    output: Option<Vec<u8>>,
    published: [Option<i64>; 3],
    token: i64,
}

impl Held {
    /// What the engine must clean up after this claim, once it is given back.
    fn abandoned(self, published: bool) -> Abandoned {
        Abandoned {
            id: self.id,
            rule: self.rule,
            run: self.run,
            temp_output: self.temp_output.map(path_of),
            output: self.output.map(path_of),
            token: self.token,
            published,
        }
    }
}

const HELD_SQL: &str = "SELECT id, rule, pgid, leader_start, boot_id, temp_output, output,
        publish_ino, publish_size, publish_mtime_ns, token, run_remote
    FROM jobs WHERE status IN ('claimed', 'running')";

fn held(tx: &Connection, sql: &str, param: &dyn rusqlite::ToSql) -> rusqlite::Result<Vec<Held>> {
    let mut stmt = tx.prepare(sql)?;
    let rows = stmt.query_map([param], |r| {
        Ok(Held {
            id: r.get(0)?,
            rule: r.get(1)?,
            run: RunHandle::from_columns(r.get(2)?, r.get(3)?, r.get(4)?, r.get(11)?),
            temp_output: r.get(5)?,
            output: r.get(6)?,
            published: [r.get(7)?, r.get(8)?, r.get(9)?],
            token: r.get(10)?,
        })
    })?;
    rows.collect()
}

/// Queues a held job again for someone else to claim; the attempt was counted by its claim.
fn requeue(tx: &Connection, id: JobId, reason: &str) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "UPDATE jobs SET status = 'queued', exit_status = ?2, not_before = 0,
                 queue_seq = {NEXT_QUEUE_SEQ}, temp_output = NULL, pgid = NULL,
                 leader_start = NULL, boot_id = NULL, run_remote = NULL
             WHERE id = ?1"
        ),
        params![id, reason],
    )?;
    Ok(())
}

impl SqliteStore {
    /// See [`JobQueue::recover`](super::super::queue::JobQueue::recover). Claims without a node
    /// were left `running` by the single-node v1 release: the first node to recover takes them.
    pub(super) fn recover_claims(&mut self) -> Result<Vec<Abandoned>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sql = format!("{HELD_SQL} AND (node = ?1 OR node IS NULL) ORDER BY id");
        let mut abandoned = Vec::new();
        for job in held(&tx, &sql, &self.node)? {
            let published = match (&job.output, job.published) {
                (Some(output), [Some(ino), Some(size), Some(mtime)]) => {
                    FileVersion::of(&path_of(output.clone())).is_some_and(|v| {
                        (v.ino as i64, v.size as i64, v.mtime_ns as i64) == (ino, size, mtime)
                    })
                }
                _ => false,
            };
            // Queued again even when its product is in place: a `copy:` after the publish may
            // not have been made. The next attempt finds the product it recorded and delivers
            // it without running the commands again.
            let reason = if published {
                "interrupted after its product was published: the next attempt delivers it without running its commands"
            } else {
                "interrupted: the daemon stopped"
            };
            requeue(&tx, job.id, reason)?;
            abandoned.push(job.abandoned(published));
        }
        tx.commit()?;
        Ok(abandoned)
    }

    /// See [`JobQueue::expire`](super::super::queue::JobQueue::expire). A node with no
    /// heartbeat row at all counts as lapsed.
    pub(super) fn expire_claims(&mut self, lease_ms: i64) -> Result<Vec<Abandoned>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Each node's own lease (`register_node`), else the caller's.
        let sql = format!(
            "{HELD_SQL} AND (node IS NULL OR node NOT IN
                 (SELECT name FROM nodes
                  WHERE heartbeat_at + coalesce(lease_ms, {lease_ms}) >= ?1)) ORDER BY id"
        );
        let mut abandoned = Vec::new();
        for job in held(&tx, &sql, &now_ms())? {
            requeue(
                &tx,
                job.id,
                "interrupted: its node stopped sending heartbeats",
            )?;
            abandoned.push(job.abandoned(false));
        }
        tx.commit()?;
        Ok(abandoned)
    }
}
