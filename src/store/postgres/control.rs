//! `bump` on PostgreSQL: a queued job's priority, a new `queue_seq` so the watcher holding it
//! sees the change at its next poll, and a notice that wakes waiting workers.

use super::super::control::Bump;
use super::super::{JobId, StoreError};
use super::queue::notify;
use super::{NEXT_QUEUE_SEQ, PgStore};

impl PgStore {
    /// See [`JobHistory::bump`](super::super::history::JobHistory::bump).
    pub(super) fn bump_jobs(
        &mut self,
        ids: &[JobId],
        to: Bump,
    ) -> Result<Vec<(JobId, i32)>, StoreError> {
        self.requeueing(|tx| {
            let highest: i32 = tx
                .query_one(
                    "SELECT coalesce(max(priority), 0) FROM jobs WHERE status = 'queued'",
                    &[],
                )?
                .get(0);
            let priority = to.resolve(highest);
            let sql = format!(
                "UPDATE jobs SET priority = $2, queue_seq = {NEXT_QUEUE_SEQ}
                 WHERE id = $1 AND status = 'queued'"
            );
            let mut bumped = Vec::new();
            for &id in ids {
                if !bumped.iter().any(|(b, _)| *b == id)
                    && tx.execute(&sql, &[&id, &priority])? == 1
                {
                    bumped.push((id, priority));
                }
            }
            if !bumped.is_empty() {
                notify(tx)?;
            }
            Ok(bumped)
        })
    }
}
