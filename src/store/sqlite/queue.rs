//! [`JobQueue`] for SQLite: the engine's group commits, the products published under a claim,
//! the queue the engine reads, and the start-up questions (catch-up, producer). Enqueue is
//! idempotent by construction: the unique version index plus `INSERT … ON CONFLICT DO NOTHING`,
//! never a look-up first. Every fenced write names the token and the statuses it may change in
//! its `WHERE`, so a refused write changes nothing.
//!
//! A group commit is one `BEGIN IMMEDIATE` transaction here; each of its writes is applied in
//! `write.rs` (an enqueue in `enqueue.rs`). The rows of the previous release that a root
//! registration re-keys are adopted in `adopt.rs`.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::super::queue::{
    Abandoned, Answer, Claim, ClaimedJob, Delivered, JobQueue, Published, QueuedJob, RootedPath,
    Write,
};
use super::super::write::{InOrder, in_commit_order};
use super::super::{JobId, StoreError, now_ms};
use super::adopt::adopt;
use super::encoding::{blob, path_of};
use super::enqueue::upgrade_legacy;
use super::write::{apply, used_and_finish};
use super::{SqliteStore, stored};
use crate::os::version::FileVersion;
use crate::store::encoding::loaded;

/// Applies a group commit's writes in order. A run's `Used` followed by the same claim's
/// `Finish` (how the engine ends every successful run) is one statement, not two.
fn apply_all(
    tx: &rusqlite::Connection,
    node: &str,
    now: i64,
    legacy: bool,
    writes: &[Write],
) -> rusqlite::Result<Vec<Answer>> {
    let mut answers = Vec::with_capacity(writes.len());
    for step in in_commit_order(writes) {
        match step {
            InOrder::One(write) => answers.push(apply(tx, node, now, legacy, write)?),
            InOrder::UsedAndEnd {
                claim,
                used,
                ending,
            } => {
                let (used, ended) = used_and_finish(tx, now, claim, used, ending)?;
                answers.extend([used, ended]);
            }
        }
    }
    Ok(answers)
}

/// The watcher's poll twice a second: jobs queued (or bumped, run now, retried) since its
/// cursor. Named to `jobs_by_queue`: left to choose without `ANALYZE`'s statistics, SQLite
/// walked every queued job through `jobs_active` and sorted them. And the cursor's bound comes
/// first: of two lower bounds SQLite seeks by one, and with `queue_seq > 0` first it started
/// from the queue's beginning. Either way the poll's cost grew with the backlog.
const QUEUED_SINCE: &str =
    "SELECT j.id, j.rule, f.root, f.rel, j.attempts, j.not_before, j.queue_seq, j.priority,
         j.run_now
     FROM jobs j INDEXED BY jobs_by_queue JOIN files f ON f.id = j.file_id
     WHERE j.queue_seq > ?1 AND j.queue_seq > 0 AND j.status = 'queued'
     ORDER BY j.queue_seq, j.id";

impl JobQueue for SqliteStore {
    fn node(&self) -> &str {
        &self.node
    }

    fn is_new(&self) -> bool {
        self.created
    }

    fn register_roots(&mut self, roots: &[(String, PathBuf)]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (name, path) in roots {
            tx.execute(
                "INSERT INTO roots (name, path, node, seen_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET path = excluded.path, node = excluded.node,
                     seen_at = excluded.seen_at",
                params![name, blob(path), self.node, now_ms()],
            )?;
            adopt(&tx, name, path)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn commit(&mut self, writes: &[Write]) -> Result<Vec<Answer>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        // BEGIN and COMMIT as cached statements: the engine commits hundreds of times a
        // second, and re-parsing them each time showed in the profile.
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let now = now_ms();
        let legacy = self.has_legacy;
        let applied = apply_all(&self.conn, &self.node, now, legacy, writes);
        let committed = applied.and_then(|answers| {
            self.conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(answers)
        });
        if committed.is_err() {
            // Nothing of the batch is written: the engine keeps its writes and tries again.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        Ok(committed?)
    }

    fn publishing(
        &mut self,
        claim: Claim,
        rule: &str,
        output: &Path,
        version: FileVersion,
        what: Delivered,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (ino, size, mtime) = stored(version);
        // A copy leaves the product's version as the job's: recovery checks the product. A
        // product published again forgets the delivery of the one before.
        let changed = tx
            .prepare_cached(
                "UPDATE jobs SET publish_ino = CASE WHEN ?6 THEN ?3 ELSE publish_ino END,
                     publish_size = CASE WHEN ?6 THEN ?4 ELSE publish_size END,
                     publish_mtime_ns = CASE WHEN ?6 THEN ?5 ELSE publish_mtime_ns END,
                     delivered_ino = CASE WHEN ?6 THEN NULL ELSE ?3 END,
                     delivered_size = CASE WHEN ?6 THEN NULL ELSE ?4 END,
                     delivered_mtime_ns = CASE WHEN ?6 THEN NULL ELSE ?5 END
                 WHERE id = ?1 AND token = ?2 AND status IN ('claimed', 'running')",
            )?
            .execute(params![
                claim.id,
                claim.token,
                ino,
                size,
                mtime,
                what == Delivered::Product
            ])?;
        if changed == 0 {
            return Err(StoreError::Stale {
                id: claim.id,
                token: claim.token,
            });
        }
        let at = SqliteStore::rooted(&tx, output)?;
        tx.prepare_cached(
            "INSERT INTO outputs (root, rel, job_id, rule, ino, size, mtime_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(root, rel) DO UPDATE SET job_id = excluded.job_id, rule = excluded.rule,
                 ino = excluded.ino, size = excluded.size, mtime_ns = excluded.mtime_ns",
        )?
        .execute(params![
            at.root,
            blob(&at.rel),
            claim.id,
            rule,
            ino,
            size,
            mtime
        ])?;
        tx.commit()?;
        Ok(())
    }

    fn published_product(&mut self, claim: Claim) -> Result<Option<Published>, StoreError> {
        let recorded: Option<[Option<i64>; 6]> = self
            .conn
            .prepare_cached(
                "SELECT publish_ino, publish_size, publish_mtime_ns,
                     delivered_ino, delivered_size, delivered_mtime_ns FROM jobs
                 WHERE id = ?1 AND token = ?2",
            )?
            .query_row(params![claim.id, claim.token], |r| {
                Ok([
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ])
            })
            .optional()?;
        Ok(recorded.and_then(|[i, s, m, di, ds, dm]| {
            Some(Published {
                product: loaded([i, s, m])?,
                delivered: loaded([di, ds, dm]),
            })
        }))
    }

    fn take_notices(&mut self) -> Result<Vec<RootedPath>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "DELETE FROM notices WHERE id <= (SELECT max(id) FROM notices)
                 AND root IN (SELECT name FROM roots WHERE node = ?1)
             RETURNING id, root, rel",
        )?;
        let mut taken = stmt
            .query_map([&self.node], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        taken.sort_by_key(|(id, _, _)| *id);
        Ok(taken
            .into_iter()
            .map(|(_, root, rel)| RootedPath {
                root,
                rel: path_of(rel),
            })
            .collect())
    }

    fn recover(&mut self) -> Result<Vec<Abandoned>, StoreError> {
        self.recover_claims()
    }

    fn heartbeat(&mut self, health: Option<&str>) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO nodes (name, heartbeat_at, health) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
                     health = excluded.health",
            )?
            .execute(params![self.node, now_ms(), health])?;
        Ok(())
    }

    fn expire(&mut self, lease_ms: i64) -> Result<Vec<Abandoned>, StoreError> {
        self.expire_claims(lease_ms)
    }

    fn queued_since(&self, cursor: i64) -> Result<Vec<QueuedJob>, StoreError> {
        // `queue_seq > 0` is spelled out so the planner may use the partial index.
        let sql = if cursor < 0 {
            "SELECT j.id, j.rule, f.root, f.rel, j.attempts, j.not_before, j.queue_seq, j.priority,
                 j.run_now
             FROM jobs j JOIN files f ON f.id = j.file_id
             WHERE j.status = 'queued' AND ?1 < 0 ORDER BY j.id"
        } else {
            QUEUED_SINCE
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([cursor], queued_job)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn queued_due(
        &self,
        rules: &[String],
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<QueuedJob>, StoreError> {
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT j.id, j.rule, f.root, f.rel, j.attempts, j.not_before, j.queue_seq, j.priority,
                 j.run_now
             FROM jobs j JOIN files f ON f.id = j.file_id
             WHERE j.status = 'queued' AND j.not_before <= ?1
                 AND j.rule IN (SELECT value FROM json_each(?2))
                 AND f.root IN (SELECT name FROM roots WHERE node = ?3)
             ORDER BY j.id LIMIT ?4",
        )?;
        let rules = serde_json::Value::from(rules.to_vec()).to_string();
        let rows = stmt.query_map(params![now_ms, rules, self.node, limit as i64], queued_job)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn wants_catch_up(
        &mut self,
        rule: &str,
        input: &RootedPath,
        version: FileVersion,
    ) -> Result<bool, StoreError> {
        let (ino, size, mtime) = stored(version);
        let known: Option<(i64, i64, i64, i64, bool)> = self
            .conn
            .prepare_cached(
                "SELECT id, ino, size, mtime_ns, legacy FROM files WHERE root = ?1 AND rel = ?2",
            )?
            .query_row(params![input.root, blob(&input.rel)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        let Some((file_id, known_ino, known_size, known_mtime, legacy)) = known else {
            return Ok(true);
        };
        if (known_size, known_mtime) != (size, mtime) || (!legacy && known_ino != ino) {
            return Ok(true);
        }
        if legacy {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            upgrade_legacy(&tx, &input.root, &input.rel, version)?;
            tx.execute(
                "UPDATE files SET ino = ?2, legacy = 0 WHERE id = ?1 AND legacy = 1",
                params![file_id, ino],
            )?;
            tx.commit()?;
        }
        let last: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT status FROM jobs
                 WHERE file_id = ?1 AND rule = ?2 AND ino = ?3 AND size = ?4 AND mtime_ns = ?5
                 ORDER BY generation DESC, id DESC LIMIT 1",
            )?
            .query_row(params![file_id, rule, ino, size, mtime], |r| r.get(0))
            .optional()?;
        Ok(last.as_deref() == Some("failed"))
    }

    fn producer(&self, output: &Path, version: FileVersion) -> Result<Option<String>, StoreError> {
        let (ino, size, mtime) = stored(version);
        let at = SqliteStore::rooted(&self.conn, output)?;
        // The second arm, only when the first found nothing: a product published by the
        // previous release and not adopted yet, recorded absolute. One statement, since every
        // file of a burst asks.
        let found = self
            .conn
            .prepare_cached(
                "SELECT rule FROM outputs
                 WHERE root = ?1 AND rel = ?2 AND ino = ?3 AND size = ?4 AND mtime_ns = ?5
                 UNION ALL
                 SELECT rule FROM outputs
                 WHERE ?1 <> '' AND root = '' AND rel = ?6 AND ino = ?3 AND size = ?4
                     AND mtime_ns = ?5
                 LIMIT 1",
            )?
            .query_row(
                params![at.root, blob(&at.rel), ino, size, mtime, blob(output)],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found)
    }

    fn claim_next(
        &mut self,
        filter: &crate::store::queue::ClaimFilter,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        self.claim_next_jobs(filter, limit)
    }

    fn rule_windows(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(super::lineage::rule_windows(&self.conn)?)
    }

    fn wait_for_work(&mut self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        self.wait_for_commit(timeout)
    }

    fn lost_claims(&mut self, claims: &[Claim]) -> Result<Vec<JobId>, StoreError> {
        self.lost(claims)
    }

    fn release_unheld(&mut self, held: &[JobId]) -> Result<Vec<JobId>, StoreError> {
        self.release(held)
    }

    fn register_node(
        &mut self,
        role: &str,
        lease_ms: i64,
        tags: &[String],
    ) -> Result<(), StoreError> {
        self.set_role(role, lease_ms, tags)
    }

    fn paused(&self) -> Result<Vec<crate::store::control::PauseTarget>, StoreError> {
        let pauses = super::control::pauses(&self.conn)?;
        Ok(pauses.into_iter().map(|p| p.target).collect())
    }

    fn waiting_jobs(&self) -> Result<Vec<crate::store::queue::WaitingJob>, StoreError> {
        Ok(super::lineage::waiting_jobs(&self.conn)?)
    }

    fn declared_inputs(&self) -> Result<Vec<RootedPath>, StoreError> {
        Ok(super::lineage::declared_inputs(&self.conn)?)
    }
}

/// A queued job from a row of `id, rule, root, rel, attempts, not_before, queue_seq,
/// priority, run_now`.
fn queued_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedJob> {
    Ok(QueuedJob {
        id: r.get(0)?,
        rule: r.get(1)?,
        input: RootedPath {
            root: r.get(2)?,
            rel: path_of(r.get(3)?),
        },
        attempts: r.get::<_, i64>(4)? as u32,
        not_before: r.get(5)?,
        cursor: r.get(6)?,
        priority: r.get(7)?,
        run_now: r.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    /// The poll searches `jobs_by_queue` from its cursor, with or without `ANALYZE`'s
    /// statistics, and never walks or sorts the whole backlog.
    #[test]
    fn the_poll_searches_the_queue_from_its_cursor() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        super::super::schema::migrate(&mut conn, 7).expect("migrates");
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO files (id, root, rel, ino, size, mtime_ns, seen_at)
                 SELECT i, 's', CAST('f' || i AS BLOB), i, 1, 1, 1 FROM n;
             INSERT INTO jobs (id, rule, rule_hash, file_id, ino, size, mtime_ns, status,
                     created_at, plan, queue_seq)
                 SELECT id, 'r', 'h', id, id, 1, 1, 'queued', 1, '{}', id FROM files;",
        )
        .expect("rows");
        for analyzed in [false, true] {
            if analyzed {
                conn.execute_batch("ANALYZE").expect("analyze");
            }
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", super::QUEUED_SINCE))
                .expect("explain")
                .query_map([1990], |r| r.get::<_, String>(3))
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("read");
            assert!(
                plan.iter()
                    .any(|p| p == "SEARCH j USING INDEX jobs_by_queue (queue_seq>?)"),
                "analyzed: {analyzed}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|p| p.contains("TEMP B-TREE")),
                "analyzed: {analyzed}: {plan:?}"
            );
            // The search starts at the cursor: ten rows past it cost tens of steps, not a
            // walk of the 2,000 before it.
            let mut poll = conn.prepare(super::QUEUED_SINCE).expect("prepare");
            let rows = poll
                .query_map([1990], |r| r.get::<_, i64>(0))
                .expect("poll")
                .count();
            let steps = poll.get_status(rusqlite::StatementStatus::VmStep);
            assert_eq!(rows, 10);
            assert!(steps < 400, "analyzed: {analyzed}: {steps} steps");
        }
    }
}
