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
        // rule at its limit) until it has `limit` or the queue ends, so a saturated backlog
        // never starves the jobs behind it.
        type Candidate = (JobId, String, String, String, Option<u32>, i32, bool);
        // Token, attempt, the input's path, steps, product and plan of a job just claimed.
        type Taken = (i64, i64, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>, String);
        let mut claimed = Vec::new();
        let (mut after, mut level): (JobId, i32) = (0, i32::MAX);
        'pages: loop {
            let page: Vec<Candidate> = tx
                .prepare_cached(
                    "SELECT j.id, j.rule, f.root, j.tags, j.concurrency, j.priority, j.run_now
                     FROM jobs j JOIN files f ON f.id = j.file_id
                     WHERE j.status = 'queued' AND j.not_before <= ?1 AND j.plan IS NOT NULL
                         AND (j.priority < ?4 OR (j.priority = ?4 AND j.id > ?3))
                         AND j.rule NOT IN (SELECT name FROM paused WHERE kind = 'rule')
                     ORDER BY j.priority DESC, j.id LIMIT ?2",
                )?
                .query_map(params![now, CLAIM_WINDOW, after, level], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let Some(last) = page.last() else {
                break;
            };
            (after, level) = (last.0, last.5);
            for (id, rule, root, job_tags, concurrency, _, run_now) in page {
                if claimed.len() >= limit {
                    break 'pages;
                }
                let needs = decode_tags(&job_tags);
                if !needs.iter().all(|t| tags.contains(t))
                    || !(roots.is_empty() || roots.contains(&root))
                    || (!run_now && closed_rules.contains(&rule))
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
