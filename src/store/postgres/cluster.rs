//! What workers ask of the PostgreSQL store: the next jobs they may run, a sign that work was
//! queued (`LISTEN shotrouter_jobs`), the claims they lost, and their role.
//!
//! A claim is one short transaction. The eligible jobs (due by the database's clock, with a
//! plan, tags within the worker's, root among its roots, rule not outside its window unless the
//! job is marked run-now) are read oldest first; each is taken with `FOR UPDATE SKIP LOCKED`,
//! so workers claiming at once never wait on each other's rows and never take the same job. A
//! rule with a cluster-wide `concurrency` is counted under a transaction-level advisory lock of
//! that rule, taken with `pg_try_advisory_xact_lock`: while another node is claiming that
//! rule's jobs this one skips them rather than wait, and since the lock is held to the commit,
//! the count it reads is never stale.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use super::super::encoding::{decode_steps, path_of};
use super::super::queue::{Claim, ClaimFilter, ClaimedJob, RootedPath};
use super::super::{JobId, StoreError};
use super::cached::Cached;
use super::queue::retryable;
use super::{CHANNEL, NEXT_QUEUE_SEQ, NOW_MS, PgStore};

/// How many eligible queued jobs one claim looks at before it gives up on finding one it may
/// take (the others are at their rule's limit, or being claimed by other nodes).
const CLAIM_WINDOW: i64 = 512;

/// Queued jobs a node may take: due, planned, tags within its `$1`, root among its `$2`
/// (any when empty), rule neither paused nor at its limit (`$4`) nor closed (`$5`) unless the
/// job is run-now; a page's priority and position follow ([`claim_once`]), then its order and
/// size (`$3`).
const CANDIDATES: &str = "SELECT j.id, j.rule, j.concurrency, j.priority FROM jobs j
         JOIN files f ON f.id = j.file_id
     WHERE j.status = 'queued' AND j.due_at <= now() AND j.plan IS NOT NULL
         AND j.tags <@ $1::text[] AND (cardinality($2::text[]) = 0 OR f.root = ANY($2))
         AND j.rule NOT IN (SELECT name FROM paused WHERE kind = 'rule')
         AND NOT (j.rule = ANY($4::text[]))
         AND (j.run_now OR NOT (j.rule = ANY($5::text[])))";
const PAGE: &str = "ORDER BY j.priority DESC, j.id LIMIT $3";

/// The advisory-lock key space of rules' concurrency (the second key is the rule's hash).
const CONCURRENCY_LOCK: i32 = 0x5352_4F56;

impl PgStore {
    /// Listens for queued work on this connection, once per connection. A worker's first
    /// `claim_next` runs it before it looks, so nothing queued after the look goes unheard.
    fn listen(&self, client: &mut postgres::Client) -> Result<(), StoreError> {
        if !self.listening.get() {
            client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            self.listening.set(true);
        }
        Ok(())
    }

    pub(super) fn claim_next_jobs(
        &mut self,
        filter: &ClaimFilter,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut client = self.client()?;
        self.listen(&mut client)?;
        let mut tries = 0;
        loop {
            let mut statements = self.statements.borrow_mut();
            let tx = Cached::new(client.transaction()?, &mut statements);
            match claim_once(tx, &self.node, filter, limit) {
                Err(e) if retryable(&e) && tries < 5 => tries += 1,
                other => return Ok(other?),
            }
        }
    }

    /// Waits for a notification on `shotrouter_jobs` (any node's commit that queued work);
    /// those that arrived meanwhile count, and are all taken at once.
    pub(super) fn wait_for_notification(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        let mut client = self.client()?;
        self.listen(&mut client)?;
        let mut notifications = client.notifications();
        let woke = notifications.timeout_iter(timeout).next()?.is_some();
        while notifications.iter().next()?.is_some() {}
        Ok(woke)
    }

    pub(super) fn lost(&mut self, claims: &[Claim]) -> Result<Vec<JobId>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = claims.iter().map(|c| c.id).collect();
        let tokens: Vec<i64> = claims.iter().map(|c| c.token).collect();
        let rows = self.client()?.query(
            "SELECT c.id FROM unnest($1::bigint[], $2::bigint[]) AS c(id, token)
             WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = c.id AND j.token = c.token
                 AND j.status IN ('claimed', 'running'))
             ORDER BY c.id",
            &[&ids, &tokens],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(super) fn release(&mut self, held: &[JobId]) -> Result<Vec<JobId>, StoreError> {
        let node = self.node.clone();
        // A fresh `queue_seq`, so a watcher that runs jobs sees its released claim at its next
        // poll (workers claim by age and need none).
        self.requeueing(|tx| {
            let rows = tx.query(
                &format!(
                    "UPDATE jobs SET status = 'queued', node = NULL, claimed_at = NULL,
                         attempts = greatest(attempts - 1, 0), queue_seq = {NEXT_QUEUE_SEQ},
                         exit_status = 'interrupted: its claim never reached the node'
                     WHERE node = $1 AND status = 'claimed' AND NOT (id = ANY($2::bigint[]))
                     RETURNING id"
                ),
                &[&node, &held],
            )?;
            let released: Vec<JobId> = rows.iter().map(|r| r.get(0)).collect();
            if !released.is_empty() {
                super::wake::notify(tx)?;
            }
            Ok(released)
        })
    }

    pub(super) fn set_role(
        &mut self,
        role: &str,
        lease_ms: i64,
        tags: &[String],
    ) -> Result<(), StoreError> {
        let mut tags = tags.to_vec();
        tags.sort_unstable();
        tags.dedup();
        self.client()?.execute(
            "INSERT INTO nodes (name, heartbeat_at, role, lease_ms, tags)
                 VALUES ($1, now(), $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET heartbeat_at = now(), role = excluded.role,
                 lease_ms = excluded.lease_ms, tags = excluded.tags",
            &[&self.node, &role, &lease_ms, &tags],
        )?;
        Ok(())
    }
}

/// One claiming transaction.
fn claim_once(
    mut tx: Cached<'_, '_>,
    node: &str,
    filter: &ClaimFilter,
    limit: usize,
) -> Result<Vec<ClaimedJob>, postgres::Error> {
    let ClaimFilter {
        tags,
        roots,
        closed_rules,
    } = filter;
    // Per limited rule: how many more this node may claim now (0 when another node holds the
    // rule's lock, i.e. is claiming its jobs right now).
    let mut room: HashMap<String, i64> = HashMap::new();
    let mut claimed = Vec::new();
    // A paused node claims nothing new; a paused rule's jobs stay queued.
    let paused: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM paused WHERE kind = 'node' AND name = $1)",
            &[&node],
        )?
        .get(0);
    if paused {
        tx.commit()?;
        return Ok(claimed);
    }
    // Pages higher priority first, in id order within one; a rule found at its limit is left
    // out of the next pages, so a saturated backlog never starves the jobs queued behind it. A
    // page reads on within the last page's priority or, that priority done, below it: each is
    // one range of `jobs_claimable`.
    let (mut after, mut level, mut within): (i64, i32, bool) = (0, i32::MAX, true);
    while claimed.len() < limit {
        let full: Vec<&str> = room
            .iter()
            .filter(|(_, left)| **left <= 0)
            .map(|(rule, _)| rule.as_str())
            .collect();
        let candidates = if within {
            tx.query(
                &format!("{CANDIDATES} AND j.priority = $6 AND j.id > $7 {PAGE}"),
                &[
                    &tags,
                    &roots,
                    &CLAIM_WINDOW,
                    &full,
                    &closed_rules,
                    &level,
                    &after,
                ],
            )?
        } else {
            tx.query(
                &format!("{CANDIDATES} AND j.priority < $6 {PAGE}"),
                &[&tags, &roots, &CLAIM_WINDOW, &full, &closed_rules, &level],
            )?
        };
        let short = candidates.len() < CLAIM_WINDOW as usize;
        let Some(last) = candidates.last() else {
            if within {
                within = false;
                continue;
            }
            break;
        };
        // A short page read its priority to the end (and, read below it, the queue).
        (after, level, within) = (last.get(0), last.get(3), !short || !within);
        claim_page(&mut tx, node, candidates, limit, &mut room, &mut claimed)?;
    }
    tx.commit()?;
    Ok(claimed)
}

/// Claims what it may of one page of candidates.
fn claim_page(
    tx: &mut Cached<'_, '_>,
    node: &str,
    candidates: Vec<postgres::Row>,
    limit: usize,
    room: &mut HashMap<String, i64>,
    claimed: &mut Vec<ClaimedJob>,
) -> Result<(), postgres::Error> {
    for candidate in candidates {
        if claimed.len() >= limit {
            break;
        }
        let id: i64 = candidate.get(0);
        let rule: String = candidate.get(1);
        let concurrency: Option<i32> = candidate.get(2);
        if let Some(max) = concurrency {
            let left = match room.get(&rule) {
                Some(left) => *left,
                None => {
                    let locked: bool = tx
                        .query_one(
                            "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                            &[&CONCURRENCY_LOCK, &rule],
                        )?
                        .get(0);
                    let left = if locked {
                        let busy: i64 = tx
                            .query_one(
                                "SELECT count(*) FROM jobs
                                 WHERE rule = $1 AND status IN ('claimed', 'running')",
                                &[&rule],
                            )?
                            .get(0);
                        (i64::from(max) - busy).max(0)
                    } else {
                        0
                    };
                    room.insert(rule.clone(), left);
                    left
                }
            };
            if left == 0 {
                continue;
            }
        }
        let taken = tx.query_opt(
            &format!(
                "UPDATE jobs j SET status = 'claimed', token = j.token + 1, node = $2,
                     attempts = j.attempts + 1, claimed_at = {NOW_MS}, exit_status = NULL
                 FROM files f
                 WHERE j.id = (SELECT id FROM jobs WHERE id = $1 AND status = 'queued'
                         FOR UPDATE SKIP LOCKED)
                     AND f.id = j.file_id
                 RETURNING j.token, j.attempts, f.root, f.rel, j.steps, j.output, j.plan"
            ),
            &[&id, &node],
        )?;
        let Some(row) = taken else {
            continue;
        };
        if concurrency.is_some()
            && let Some(left) = room.get_mut(&rule)
        {
            *left -= 1;
        }
        let steps: Option<Vec<u8>> = row.get(4);
        claimed.push(ClaimedJob {
            claim: Claim {
                id,
                token: row.get(0),
                attempt: row.get::<_, i32>(1) as u32,
            },
            rule,
            input: RootedPath {
                root: row.get(2),
                rel: path_of(row.get(3)),
            },
            steps: decode_steps(&steps.unwrap_or_default())
                .into_iter()
                .map(|argv| argv.into_iter().map(OsString::from_vec).collect())
                .collect(),
            output: row.get::<_, Option<Vec<u8>>>(5).map(path_of),
            plan: row.get::<_, Option<String>>(6).unwrap_or_default(),
        });
    }
    Ok(())
}
