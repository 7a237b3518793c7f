//! [`JobQueue`] for PostgreSQL: the engine's group commits in one short transaction, claims
//! fenced by tokens, and the start-up questions (catch-up, producer), with the semantics of the
//! SQLite backend. Every fenced write names the token and the statuses it may change in its
//! `WHERE`, so a refused write changes nothing. A commit that deadlocks with another node's is
//! run again (nothing of it was written).

use std::path::{Path, PathBuf};

use postgres::error::SqlState;

use super::super::encoding::{blob, loaded, path_of, stored};
use super::super::queue::{
    Abandoned, Answer, Claim, ClaimedJob, Delivered, JobQueue, Published, QueuedJob, RootedPath,
    Write,
};
use super::super::{JobId, StoreError};
use super::cached::Cached;
use super::write::{apply_all, places_jobs};
use super::{CHANNEL, NOW_MS, PgStore, QUEUE_SEQ_LOCK, lineage, rooted};
use crate::os::version::FileVersion;

/// How often a commit that lost a deadlock or a serialization race is tried again.
const RETRIES: usize = 5;

/// Whether a failed transaction may simply be run again.
pub(super) fn retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

impl JobQueue for PgStore {
    fn node(&self) -> &str {
        &self.node
    }

    fn is_new(&self) -> bool {
        self.created
    }

    fn register_roots(&mut self, roots: &[(String, PathBuf)]) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        for (name, path) in roots {
            tx.execute(
                &format!(
                    "INSERT INTO roots (node, name, path, seen_at) VALUES ($1, $2, $3, {NOW_MS})
                     ON CONFLICT (node, name) DO UPDATE SET path = excluded.path,
                         seen_at = excluded.seen_at"
                ),
                &[&self.node, name, &blob(path)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn commit(&mut self, writes: &[Write]) -> Result<Vec<Answer>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client()?;
        let mut statements = self.statements.borrow_mut();
        let mut tries = 0;
        loop {
            let mut tx = Cached::new(client.transaction()?, &mut statements);
            if writes.iter().any(places_jobs) {
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&QUEUE_SEQ_LOCK])?;
            }
            let mut queues = false;
            let applied = apply_all(&mut tx, &self.node, writes, &mut queues);
            let committed = applied.and_then(|answers| {
                if queues {
                    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])?;
                }
                tx.commit()?;
                Ok(answers)
            });
            match committed {
                Err(e) if retryable(&e) && tries < RETRIES => tries += 1,
                // Nothing of the batch is written: the engine keeps its writes and tries again.
                other => return Ok(other?),
            }
        }
    }

    fn publishing(
        &mut self,
        claim: Claim,
        rule: &str,
        output: &Path,
        version: FileVersion,
        what: Delivered,
    ) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let (ino, size, mtime) = stored(version);
        // A copy leaves the product's version as the job's: recovery checks the product. A
        // product published again forgets the delivery of the one before.
        let product = what == Delivered::Product;
        let changed = tx.execute(
            "UPDATE jobs SET publish_ino = CASE WHEN $6 THEN $3 ELSE publish_ino END,
                 publish_size = CASE WHEN $6 THEN $4 ELSE publish_size END,
                 publish_mtime_ns = CASE WHEN $6 THEN $5 ELSE publish_mtime_ns END,
                 delivered_ino = CASE WHEN $6 THEN NULL ELSE $3 END,
                 delivered_size = CASE WHEN $6 THEN NULL ELSE $4 END,
                 delivered_mtime_ns = CASE WHEN $6 THEN NULL ELSE $5 END
             WHERE id = $1 AND token = $2 AND status IN ('claimed', 'running')",
            &[&claim.id, &claim.token, &ino, &size, &mtime, &product],
        )?;
        if changed == 0 {
            return Err(StoreError::Stale {
                id: claim.id,
                token: claim.token,
            });
        }
        let at = rooted(&mut tx, &self.node, output)?;
        tx.execute(
            "INSERT INTO outputs (root, rel, job_id, rule, ino, size, mtime_ns)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (root, rel) DO UPDATE SET job_id = excluded.job_id,
                 rule = excluded.rule, ino = excluded.ino, size = excluded.size,
                 mtime_ns = excluded.mtime_ns",
            &[
                &at.root,
                &blob(&at.rel),
                &claim.id,
                &rule,
                &ino,
                &size,
                &mtime,
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn published_product(&mut self, claim: Claim) -> Result<Option<Published>, StoreError> {
        let row = self.client()?.query_opt(
            "SELECT publish_ino, publish_size, publish_mtime_ns,
                 delivered_ino, delivered_size, delivered_mtime_ns FROM jobs
             WHERE id = $1 AND token = $2",
            &[&claim.id, &claim.token],
        )?;
        Ok(row.and_then(|r| {
            Some(Published {
                product: loaded([r.get(0), r.get(1), r.get(2)])?,
                delivered: loaded([r.get(3), r.get(4), r.get(5)]),
            })
        }))
    }

    fn take_notices(&mut self) -> Result<Vec<RootedPath>, StoreError> {
        let rows = self.client()?.query(
            "DELETE FROM notices
                 WHERE root IN (SELECT name FROM roots WHERE node = $1)
                 RETURNING id, root, rel",
            &[&self.node],
        )?;
        let mut taken: Vec<(i64, String, Vec<u8>)> = rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
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
        self.client()?.execute(
            "INSERT INTO nodes (name, heartbeat_at, health) VALUES ($1, now(), $2)
             ON CONFLICT (name) DO UPDATE SET heartbeat_at = now(), health = excluded.health",
            &[&self.node, &health],
        )?;
        Ok(())
    }

    fn expire(&mut self, lease_ms: i64) -> Result<Vec<Abandoned>, StoreError> {
        self.expire_claims(lease_ms)
    }

    fn queued_since(&self, cursor: i64) -> Result<Vec<QueuedJob>, StoreError> {
        let sql = if cursor < 0 {
            "SELECT j.id, j.rule, f.root, f.rel, j.attempts, j.not_before, j.queue_seq, j.priority,
                 j.run_now
             FROM jobs j JOIN files f ON f.id = j.file_id
             WHERE j.status = 'queued' AND $1::bigint < 0 ORDER BY j.id"
        } else {
            "SELECT j.id, j.rule, f.root, f.rel, j.attempts, j.not_before, j.queue_seq, j.priority,
                 j.run_now
             FROM jobs j JOIN files f ON f.id = j.file_id
             WHERE j.queue_seq > 0 AND j.queue_seq > $1 AND j.status = 'queued'
             ORDER BY j.queue_seq, j.id"
        };
        let rows = self.client()?.query(sql, &[&cursor])?;
        Ok(rows.into_iter().map(|r| queued_job(&r)).collect())
    }

    /// Of nodes naming one root, the last to register it owns it (as SQLite's one row per
    /// name does), the node's name breaking a tie.
    fn queued_due(
        &self,
        rules: &[String],
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<QueuedJob>, StoreError> {
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.client()?.query(
            "SELECT j.id, j.rule, f.root, f.rel, j.attempts, j.not_before, j.queue_seq, j.priority,
                 j.run_now
             FROM jobs j JOIN files f ON f.id = j.file_id
             WHERE j.status = 'queued' AND j.not_before <= $1 AND j.rule = ANY($2)
                 AND f.root IN (
                     SELECT r.name FROM roots r WHERE r.node = $3 AND NOT EXISTS (
                         SELECT 1 FROM roots o WHERE o.name = r.name AND o.node <> r.node
                             AND (coalesce(o.seen_at, 0), o.node)
                                 > (coalesce(r.seen_at, 0), r.node)))
             ORDER BY j.id LIMIT $4",
            &[&now_ms, &rules, &self.node, &(limit as i64)],
        )?;
        Ok(rows.into_iter().map(|r| queued_job(&r)).collect())
    }

    fn wants_catch_up(
        &mut self,
        rule: &str,
        input: &RootedPath,
        version: FileVersion,
    ) -> Result<bool, StoreError> {
        let (ino, size, mtime) = stored(version);
        let mut client = self.client()?;
        let known = client.query_opt(
            "SELECT id, ino, size, mtime_ns FROM files WHERE root = $1 AND rel = $2",
            &[&input.root, &blob(&input.rel)],
        )?;
        let Some(known) = known else {
            return Ok(true);
        };
        let file_id: i64 = known.get(0);
        if (
            known.get::<_, i64>(1),
            known.get::<_, i64>(2),
            known.get::<_, i64>(3),
        ) != (ino, size, mtime)
        {
            return Ok(true);
        }
        let last = client.query_opt(
            "SELECT status FROM jobs
             WHERE file_id = $1 AND rule = $2 AND ino = $3 AND size = $4 AND mtime_ns = $5
             ORDER BY generation DESC, id DESC LIMIT 1",
            &[&file_id, &rule, &ino, &size, &mtime],
        )?;
        Ok(last.is_some_and(|r| r.get::<_, &str>(0) == "failed"))
    }

    fn producer(&self, output: &Path, version: FileVersion) -> Result<Option<String>, StoreError> {
        let (ino, size, mtime) = stored(version);
        let mut client = self.client()?;
        let at = rooted(&mut *client, &self.node, output)?;
        let found = client.query_opt(
            "SELECT rule FROM outputs
             WHERE root = $1 AND rel = $2 AND ino = $3 AND size = $4 AND mtime_ns = $5",
            &[&at.root, &blob(&at.rel), &ino, &size, &mtime],
        )?;
        Ok(found.map(|r| r.get(0)))
    }

    fn claim_next(
        &mut self,
        filter: &crate::store::queue::ClaimFilter,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        self.claim_next_jobs(filter, limit)
    }

    fn rule_windows(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(lineage::rule_windows(&mut *self.client()?)?)
    }

    fn wait_for_work(&mut self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        self.wait_for_notification(timeout)
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
        let pauses = super::control::pauses(&mut *self.client()?)?;
        Ok(pauses.into_iter().map(|p| p.target).collect())
    }

    fn waiting_jobs(&self) -> Result<Vec<crate::store::queue::WaitingJob>, StoreError> {
        Ok(lineage::waiting_jobs(&mut *self.client()?)?)
    }

    fn declared_inputs(&self) -> Result<Vec<RootedPath>, StoreError> {
        Ok(lineage::declared_inputs(&mut *self.client()?)?)
    }
}

/// A queued job from a row of `id, rule, root, rel, attempts, not_before, queue_seq,
/// priority, run_now`.
fn queued_job(r: &postgres::Row) -> QueuedJob {
    QueuedJob {
        id: r.get(0),
        rule: r.get(1),
        input: RootedPath {
            root: r.get(2),
            rel: path_of(r.get(3)),
        },
        attempts: r.get::<_, i32>(4) as u32,
        not_before: r.get(5),
        cursor: r.get(6),
        priority: r.get(7),
        run_now: r.get(8),
    }
}
