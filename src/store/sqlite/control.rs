//! `bump` on SQLite: a queued job's priority, and a new `queue_seq` so the watcher holding it
//! sees the change at its next poll.

use rusqlite::{TransactionBehavior, params};

use super::super::control::Bump;
use super::super::{JobId, StoreError};
use super::{NEXT_QUEUE_SEQ, SqliteStore};

impl SqliteStore {
    /// See [`JobHistory::bump`](super::super::history::JobHistory::bump).
    pub(super) fn bump_jobs(
        &mut self,
        ids: &[JobId],
        to: Bump,
    ) -> Result<Vec<(JobId, i32)>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let highest: i32 = tx.query_row(
            "SELECT coalesce(max(priority), 0) FROM jobs WHERE status = 'queued'",
            [],
            |r| r.get(0),
        )?;
        let priority = to.resolve(highest);
        let mut bumped = Vec::new();
        {
            let mut stmt = tx.prepare(&format!(
                "UPDATE jobs SET priority = ?2, queue_seq = {NEXT_QUEUE_SEQ}
                 WHERE id = ?1 AND status = 'queued'"
            ))?;
            for &id in ids {
                if !bumped.iter().any(|(b, _)| *b == id)
                    && stmt.execute(params![id, priority])? == 1
                {
                    bumped.push((id, priority));
                }
            }
        }
        tx.commit()?;
        Ok(bumped)
    }
}
