//! What workers ask of the SQLite store: the next jobs they may run, a sign that something
//! changed, the claims they lost, and their role. SQLite serves workers on this machine only
//! (several `shotrouter worker` processes beside a watcher); the same calls on PostgreSQL serve
//! a farm.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::{Duration, Instant};

use rusqlite::{TransactionBehavior, params};

use super::super::queue::{Claim, ClaimFilter, ClaimedJob, RootedPath};
use super::super::{JobId, StoreError, now_ms};
use super::encoding::{decode_steps, decode_tags, path_of};
use super::{NEXT_QUEUE_SEQ, SqliteStore};

/// How many queued jobs one claim reads at a time (it reads on until it has what it asked for).
const CLAIM_WINDOW: i64 = 512;

/// How often `wait_for_work` asks whether another connection committed.
const WAKE_POLL: Duration = Duration::from_millis(20);

/// A page of the queue within one priority (`?4`), after the id `?3`: jobs not yet claimed
/// that are due (`?1`), planned, of a rule neither paused nor closed (`?5`, a JSON array; a
/// run-now job may start in a closed window), at most `?2`.
const WITHIN: &str = "SELECT j.id, j.rule, f.root, j.tags, j.concurrency, j.priority
     FROM jobs j INDEXED BY jobs_claimable JOIN files f ON f.id = j.file_id
     WHERE j.status = 'queued' AND j.priority = ?4 AND j.id > ?3
         AND j.not_before <= ?1 AND j.plan IS NOT NULL
         AND j.rule NOT IN (SELECT name FROM paused WHERE kind = 'rule')
         AND (j.run_now OR j.rule NOT IN (SELECT value FROM json_each(?5)))
     ORDER BY j.priority DESC, j.id LIMIT ?2";
/// The same below the priority `?4` (`?3` unused), higher priority first, in id order. Both
/// name their index: left to choose, SQLite reads this one by `jobs_active` and sorts.
const BELOW: &str = "SELECT j.id, j.rule, f.root, j.tags, j.concurrency, j.priority
     FROM jobs j INDEXED BY jobs_claimable JOIN files f ON f.id = j.file_id
     WHERE j.status = 'queued' AND j.priority < ?4
         AND j.not_before <= ?1 AND j.plan IS NOT NULL
         AND j.rule NOT IN (SELECT name FROM paused WHERE kind = 'rule')
         AND (j.run_now OR j.rule NOT IN (SELECT value FROM json_each(?5)))
     ORDER BY j.priority DESC, j.id LIMIT ?2";

impl SqliteStore {
    pub(super) fn claim_next_jobs(
        &mut self,
        filter: &ClaimFilter,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let ClaimFilter {
            tags,
            roots,
            closed_rules,
        } = filter;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // A paused node claims nothing new; a paused rule's jobs stay queued.
        if super::control::node_paused(&tx, &self.node)? {
            return Ok(Vec::new());
        }
        let mut busy: HashMap<String, u32> = HashMap::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT rule, count(*) FROM jobs WHERE status IN ('claimed', 'running')
                 GROUP BY rule",
            )?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))? {
                let (rule, n) = row?;
                busy.insert(rule, n);
            }
        }
        // Pages of the queue, higher priority first and in id order within one, only the
        // columns that decide: a claim looks past jobs it may not take (other tags or roots, a
        // rule at its limit, a closed rule's) until it has `limit` or the queue ends, so a
        // saturated backlog never starves the jobs behind it. A page reads on within the last
        // page's priority, or, that priority done, from the next lower one: each is one seek
        // of `jobs_claimable` (a keyset of `priority < ? OR (priority = ? AND id > ?)` is not,
        // and re-reads each page's priority from its start).
        type Candidate = (JobId, String, String, String, Option<u32>, i32);
        // Token, attempt, the input's path, steps, product and plan of a job just claimed.
        type Taken = (i64, i64, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>, String);
        let closed = serde_json::to_string(closed_rules).unwrap_or_else(|_| "[]".into());
        let mut claimed = Vec::new();
        // Where the last page ended, and whether its priority may have more.
        let (mut after, mut level, mut within): (JobId, i32, bool) = (0, i32::MAX, true);
        'pages: loop {
            let page: Vec<Candidate> = tx
                .prepare_cached(if within { WITHIN } else { BELOW })?
                .query_map(params![now, CLAIM_WINDOW, after, level, closed], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let full = page.len() as i64 == CLAIM_WINDOW;
            let Some(last) = page.last() else {
                if within {
                    within = false;
                    continue;
                }
                break;
            };
            // A short page read its priority to the end (and, read below, the queue).
            (after, level, within) = (last.0, last.5, full || !within);
            for (id, rule, root, job_tags, concurrency, _) in page {
                if claimed.len() >= limit {
                    break 'pages;
                }
                let needs = decode_tags(&job_tags);
                if !needs.iter().all(|t| tags.contains(t))
                    || !(roots.is_empty() || roots.contains(&root))
                {
                    continue;
                }
                let running = busy.get(&rule).copied().unwrap_or(0);
                if concurrency.is_some_and(|limit| running >= limit) {
                    continue;
                }
                let (token, attempt, rel, steps, output, plan): Taken = tx
                    .prepare_cached(
                        "UPDATE jobs SET status = 'claimed', token = token + 1, node = ?2,
                             attempts = attempts + 1, claimed_at = ?3, exit_status = NULL
                         WHERE id = ?1 AND status = 'queued'
                         RETURNING token, attempts, (SELECT rel FROM files WHERE id = file_id),
                             steps, output, plan",
                    )?
                    .query_row(params![id, self.node, now], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    })?;
                *busy.entry(rule.clone()).or_default() += 1;
                claimed.push(ClaimedJob {
                    claim: Claim {
                        id,
                        token,
                        attempt: attempt as u32,
                    },
                    rule,
                    input: RootedPath {
                        root,
                        rel: path_of(rel),
                    },
                    steps: decode_steps(&steps.unwrap_or_default())
                        .into_iter()
                        .map(|argv| argv.into_iter().map(OsString::from_vec).collect())
                        .collect(),
                    output: output.map(path_of),
                    plan,
                });
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Waits for another connection's commit: `PRAGMA data_version` changes when one lands.
    pub(super) fn wait_for_commit(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        let deadline = Instant::now() + timeout;
        let version = |store: &SqliteStore| -> rusqlite::Result<i64> {
            store
                .conn
                .prepare_cached("PRAGMA data_version")?
                .query_row([], |r| r.get(0))
        };
        let start = version(self)?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            std::thread::sleep(left.min(WAKE_POLL));
            if version(self)? != start {
                return Ok(true);
            }
        }
    }

    pub(super) fn lost(&mut self, claims: &[Claim]) -> Result<Vec<JobId>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT count(*) FROM jobs
             WHERE id = ?1 AND token = ?2 AND status IN ('claimed', 'running')",
        )?;
        let mut lost = Vec::new();
        for claim in claims {
            let held: i64 = stmt.query_row(params![claim.id, claim.token], |r| r.get(0))?;
            if held == 0 {
                lost.push(claim.id);
            }
        }
        Ok(lost)
    }

    pub(super) fn release(&mut self, held: &[JobId]) -> Result<Vec<JobId>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let claimed: Vec<JobId> = tx
            .prepare_cached("SELECT id FROM jobs WHERE node = ?1 AND status = 'claimed'")?
            .query_map([&self.node], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut released = Vec::new();
        for id in claimed.into_iter().filter(|id| !held.contains(id)) {
            // A fresh `queue_seq`, so a watcher that runs jobs sees its released claim at
            // its next poll (workers claim by age and need none).
            tx.prepare_cached(&format!(
                "UPDATE jobs SET status = 'queued', node = NULL, claimed_at = NULL,
                     attempts = max(attempts - 1, 0), queue_seq = {NEXT_QUEUE_SEQ},
                     exit_status = 'interrupted: its claim never reached the node'
                 WHERE id = ?1 AND status = 'claimed'"
            ))?
            .execute([id])?;
            released.push(id);
        }
        tx.commit()?;
        Ok(released)
    }

    pub(super) fn set_role(
        &mut self,
        role: &str,
        lease_ms: i64,
        tags: &[String],
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO nodes (name, heartbeat_at, role, lease_ms, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
                     role = excluded.role, lease_ms = excluded.lease_ms, tags = excluded.tags",
            )?
            .execute(params![
                self.node,
                now_ms(),
                role,
                lease_ms,
                super::encoding::encode_tags(tags)
            ])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{BELOW, WITHIN};

    /// Each page of a claim is one search of `jobs_claimable` by priority (and id within
    /// one), never a scan of the queue from its start, also with `ANALYZE`'s statistics.
    #[test]
    fn claim_pages_seek_the_claimable_index() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        super::super::schema::migrate(&mut conn, 7).expect("migrates");
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO files (id, root, rel, ino, size, mtime_ns, seen_at)
                 SELECT i, 's', CAST('f' || i AS BLOB), i, 1, 1, 1 FROM n;
             INSERT INTO jobs (id, rule, rule_hash, file_id, ino, size, mtime_ns, status,
                     created_at, plan, priority)
                 SELECT id, 'r' || (id % 3), 'h', id, id, 1, 1,
                     CASE WHEN id % 4 = 0 THEN 'done' ELSE 'queued' END, 1, '{}', id % 5
                 FROM files;",
        )
        .expect("rows");
        for analyzed in [false, true] {
            if analyzed {
                conn.execute_batch("ANALYZE").expect("analyze");
            }
            for (sql, search) in [
                (WITHIN, "USING INDEX jobs_claimable (priority=? AND id>?)"),
                (BELOW, "USING INDEX jobs_claimable (priority<?)"),
            ] {
                let plan: Vec<String> = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .expect("explain")
                    .query_map(rusqlite::params![0, 512, 0, 3, "[\"r1\"]"], |r| {
                        r.get::<_, String>(3)
                    })
                    .expect("plan")
                    .collect::<Result<_, _>>()
                    .expect("read");
                assert!(
                    plan.iter()
                        .any(|p| p.starts_with("SEARCH j ") && p.ends_with(search)),
                    "analyzed: {analyzed}: {plan:?}"
                );
                assert!(
                    !plan.iter().any(|p| p.starts_with("SCAN j ")
                        || p == "SCAN j"
                        || p.contains("TEMP B-TREE")),
                    "analyzed: {analyzed}: {plan:?}"
                );
            }
        }
    }
}
