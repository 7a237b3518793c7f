//! [`JobQueue`] for SQLite: the engine's group commits, claims fenced by tokens, and the start-up
//! questions (catch-up, producer). Enqueue is idempotent by construction: the unique version
//! index plus `INSERT … ON CONFLICT DO NOTHING`, never a look-up first. Every fenced write names
//! the token and the statuses it may change in its `WHERE`, so a refused write changes nothing.
//!
//! Just past 600 lines: one `Write` per arm of one group commit, each arm short. The next split
//! is the claim statements beside `enqueue.rs` (a `claim.rs`), due when a write kind is added.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::super::queue::{
    Abandoned, Answer, Claim, ClaimedJob, DECLINE_MS, Delivered, Ending, JobQueue, Published,
    QueuedJob, RootedPath, Write,
};
use super::super::{JobId, StoreError, now_ms};
use super::encoding::{blob, encode_steps, path_of};
use super::enqueue::{enqueue, upgrade_legacy, upsert_baseline};
use super::{SqliteStore, stored};
use crate::os::version::FileVersion;
use crate::store::RunHandle;
use crate::store::encoding::loaded;

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
        let applied: rusqlite::Result<Vec<Answer>> = writes
            .iter()
            .map(|write| apply(&self.conn, &self.node, now, legacy, write))
            .collect();
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
            "SELECT j.id, j.rule, f.root, f.rel, j.attempts, j.not_before, j.queue_seq
             FROM jobs j JOIN files f ON f.id = j.file_id
             WHERE j.status = 'queued' AND ?1 < 0 ORDER BY j.id"
        } else {
            "SELECT j.id, j.rule, f.root, f.rel, j.attempts, j.not_before, j.queue_seq
             FROM jobs j JOIN files f ON f.id = j.file_id
             WHERE j.queue_seq > 0 AND j.queue_seq > ?1 AND j.status = 'queued'
             ORDER BY j.queue_seq, j.id"
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
            "SELECT j.id, j.rule, f.root, f.rel, j.attempts, j.not_before, j.queue_seq
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
        tags: &[String],
        roots: &[String],
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        self.claim_next_jobs(tags, roots, limit)
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

    fn register_node(&mut self, role: &str, lease_ms: i64) -> Result<(), StoreError> {
        self.set_role(role, lease_ms)
    }
}

/// Applies one write of a group commit.
fn apply(
    tx: &Connection,
    node: &str,
    now: i64,
    legacy: bool,
    write: &Write,
) -> rusqlite::Result<Answer> {
    match write {
        Write::Enqueue { job, claim } => enqueue(tx, node, now, legacy, job, *claim),
        Write::Claim { id } => {
            // A job's first claim (token and attempts still 0, as a job queued without a claim
            // has) needs no read-back: one statement per claim in a burst. Any other matches
            // nothing here and takes the general path, which reads the token by primary key,
            // not with `RETURNING` (a trigger filling a temporary table in SQLite).
            let first = tx
                .prepare_cached(
                    "UPDATE jobs SET status = 'claimed', token = 1, node = ?2, attempts = 1,
                         claimed_at = ?3, exit_status = NULL
                     WHERE id = ?1 AND status = 'queued' AND token = 0 AND attempts = 0",
                )?
                .execute(params![id, node, now])?;
            if first == 1 {
                return Ok(Answer::Claimed(Claim {
                    id: *id,
                    token: 1,
                    attempt: 1,
                }));
            }
            let changed = tx
                .prepare_cached(
                    "UPDATE jobs SET status = 'claimed', token = token + 1, node = ?2,
                         attempts = attempts + 1, claimed_at = ?3, exit_status = NULL
                     WHERE id = ?1 AND status = 'queued'",
                )?
                .execute(params![id, node, now])?;
            if changed == 0 {
                return Ok(Answer::NotClaimable);
            }
            let (token, attempt): (i64, i64) = tx
                .prepare_cached("SELECT token, attempts FROM jobs WHERE id = ?1")?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(Answer::Claimed(Claim {
                id: *id,
                token,
                attempt: attempt as u32,
            }))
        }
        Write::Replan {
            id,
            rule_hash,
            steps,
            output,
            plan,
        } => {
            // A claimed job has not started yet, so its plan may still change. A product an
            // earlier attempt published under another rule definition or output is not this
            // plan's: forgotten, so the next attempt runs the new commands instead of only
            // copying the old product. (The steps are not compared: their temp names differ
            // from one daemon to the next.)
            let changed = tx
                .prepare_cached(
                    "UPDATE jobs SET rule_hash = ?2, steps = ?3, output = ?4,
                         plan = coalesce(?5, plan),
                         publish_ino = CASE WHEN rule_hash IS ?2 AND output IS ?4 THEN publish_ino END,
                         publish_size = CASE WHEN rule_hash IS ?2 AND output IS ?4 THEN publish_size END,
                         publish_mtime_ns = CASE WHEN rule_hash IS ?2 AND output IS ?4 THEN publish_mtime_ns END
                     WHERE id = ?1 AND status IN ('queued', 'claimed')",
                )?
                .execute(params![
                    id,
                    rule_hash,
                    encode_steps(steps),
                    output.as_deref().map(blob),
                    (!plan.is_empty()).then_some(plan.as_str())
                ])?;
            Ok(if changed == 1 {
                Answer::Ok
            } else {
                Answer::NotClaimable
            })
        }
        Write::Progress { claim, progress } => {
            // A stale claim's progress is dropped: its node learns of the loss elsewhere.
            tx.prepare_cached(
                "UPDATE jobs SET progress = ?3
                 WHERE id = ?1 AND token = ?2 AND status = 'running'",
            )?
            .execute(params![claim.id, claim.token, progress.to_text()])?;
            Ok(Answer::Ok)
        }
        Write::Started {
            claim,
            run,
            temp_output,
        } => {
            let group = run.as_ref().and_then(RunHandle::group);
            let changed = tx
                .prepare_cached(
                    "UPDATE jobs SET status = 'running', started_at = coalesce(started_at, ?3),
                         pgid = ?4, leader_start = ?5, boot_id = ?6, temp_output = ?7,
                         run_remote = ?8, progress = NULL
                     WHERE id = ?1 AND token = ?2 AND status IN ('claimed', 'running')",
                )?
                .execute(params![
                    claim.id,
                    claim.token,
                    now,
                    group.as_ref().map(|g| g.pgid),
                    group.as_ref().map(|g| g.leader_start as i64),
                    group.as_ref().map(|g| g.boot_id.as_str()),
                    temp_output.as_deref().map(blob),
                    run.as_ref().and_then(RunHandle::remote_text)
                ])?;
            if changed == 1 {
                Ok(Answer::Ok)
            } else {
                refusal(tx, claim.id)
            }
        }
        Write::Ran { claim, steps } => {
            let changed = tx
                .prepare_cached(
                    "UPDATE jobs SET ran_steps = ?3, ran_node = node, ran_token = token
                     WHERE id = ?1 AND token = ?2 AND status IN ('claimed', 'running')",
                )?
                .execute(params![claim.id, claim.token, encode_steps(steps)])?;
            if changed == 1 {
                Ok(Answer::Ok)
            } else {
                refusal(tx, claim.id)
            }
        }
        Write::Finish { claim, ending } => finish(tx, now, *claim, ending),
        Write::Drop { id, reason } => {
            let changed = tx
                .prepare_cached(
                    "UPDATE jobs SET status = 'cancelled', exit_status = ?2, finished_at = ?3
                     WHERE id = ?1 AND status = 'queued'",
                )?
                .execute(params![id, reason, now])?;
            Ok(if changed == 1 {
                Answer::Ok
            } else {
                Answer::NotClaimable
            })
        }
        Write::Baseline { files } => {
            for (path, version) in files {
                upsert_baseline(tx, path, *version, now, legacy)?;
            }
            Ok(Answer::Ok)
        }
    }
}

fn finish(tx: &Connection, now: i64, claim: Claim, ending: &Ending) -> rusqlite::Result<Answer> {
    let (status, reason, not_before) = match ending {
        Ending::Done => ("done", None, 0),
        Ending::Failed { reason } => ("failed", Some(reason.as_str()), 0),
        Ending::Cancelled => ("cancelled", Some("cancelled"), 0),
        Ending::Retry { reason, not_before } => ("queued", Some(reason.as_str()), *not_before),
        Ending::Interrupted => ("queued", Some("interrupted: this node shut down"), 0),
        Ending::Declined { reason } => ("queued", Some(reason.as_str()), now + DECLINE_MS),
    };
    // An attempt this node's stop cut short, or that it could not run, gives its count back
    // (its claim raised it).
    let uncount = i64::from(matches!(
        ending,
        Ending::Interrupted | Ending::Declined { .. }
    ));
    // The queue_seq stays: the engine queued it again itself and knows it.
    let changed = tx
        .prepare_cached(
            "UPDATE jobs SET status = ?3, exit_status = ?4, not_before = ?5, finished_at = ?6,
                 started_at = coalesce(started_at, ?6), temp_output = NULL, pgid = NULL,
                 leader_start = NULL, boot_id = NULL, attempts = max(attempts - ?7, 0)
             WHERE id = ?1 AND token = ?2 AND status IN ('claimed', 'running')",
        )?
        .execute(params![
            claim.id,
            claim.token,
            status,
            reason,
            not_before,
            now,
            uncount
        ])?;
    if changed == 1 {
        Ok(Answer::Ok)
    } else {
        refusal(tx, claim.id)
    }
}

/// Why a fenced write changed nothing: a user's cancel, or a newer claim.
fn refusal(tx: &Connection, id: JobId) -> rusqlite::Result<Answer> {
    let row: Option<(String, i64)> = tx
        .prepare_cached("SELECT status, token FROM jobs WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        Some((status, _)) if status == "cancelled" => Answer::Cancelled,
        Some((_, current)) => Answer::Stale { current },
        None => Answer::Stale { current: 0 },
    })
}

/// Re-keys rows a previous release stored under absolute paths below `path` to root `name`.
/// A file already known under its rooted key keeps that row; the legacy row's jobs join it
/// (taking the next generation when the same version has a job there).
fn adopt(tx: &Connection, name: &str, path: &Path) -> rusqlite::Result<()> {
    let mut prefix = path.as_os_str().as_bytes().to_vec();
    if prefix.last() != Some(&b'/') {
        prefix.push(b'/');
    }
    let len = prefix.len() as i64;
    let legacy: Vec<(i64, Vec<u8>, bool)> = tx
        .prepare(
            "SELECT id, substr(rel, ?2 + 1), baseline FROM files
             WHERE root = '' AND substr(rel, 1, ?2) = ?1",
        )?
        .query_map(params![prefix, len], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    for (id, rel, baseline) in legacy {
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM files WHERE root = ?1 AND rel = ?2",
                params![name, rel],
                |r| r.get(0),
            )
            .optional()?;
        let Some(keep) = existing else {
            tx.execute(
                "UPDATE files SET root = ?2, rel = ?3 WHERE id = ?1",
                params![id, name, rel],
            )?;
            continue;
        };
        let jobs: Vec<JobId> = tx
            .prepare("SELECT id FROM jobs WHERE file_id = ?1 ORDER BY id")?
            .query_map([id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for job in jobs {
            tx.execute(
                "UPDATE jobs SET file_id = ?2, generation = coalesce(
                     (SELECT max(k.generation) + 1 FROM jobs k WHERE k.file_id = ?2
                         AND k.rule = jobs.rule AND k.ino = jobs.ino AND k.size = jobs.size
                         AND k.mtime_ns = jobs.mtime_ns),
                     generation)
                 WHERE id = ?1",
                params![job, keep],
            )?;
        }
        tx.execute(
            "UPDATE files SET baseline = max(baseline, ?2) WHERE id = ?1",
            params![keep, baseline],
        )?;
        tx.execute("DELETE FROM files WHERE id = ?1", [id])?;
    }
    // Outputs carry no jobs: a rooted row recorded by this release wins over its legacy twin.
    tx.execute(
        "UPDATE OR IGNORE outputs SET root = ?3, rel = substr(rel, ?2 + 1)
         WHERE root = '' AND substr(rel, 1, ?2) = ?1",
        params![prefix, len, name],
    )?;
    tx.execute(
        "DELETE FROM outputs WHERE root = '' AND substr(rel, 1, ?2) = ?1",
        params![prefix, len],
    )?;
    Ok(())
}

/// A queued job from a row of `id, rule, root, rel, attempts, not_before, queue_seq`.
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
    })
}
