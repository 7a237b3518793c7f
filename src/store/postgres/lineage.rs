//! The writes and reads of declared inputs for PostgreSQL, the same as SQLite's
//! (`sqlite/lineage.rs`): a job recorded `waiting`, released, given up on; what a run used; a
//! new version of an input and the jobs that read the old; reruns by job; the rules' work
//! hashes. Tables and columns: `store::lineage`.

use std::path::Path;

use super::super::JobId;
use super::super::lineage::{RunUse, WaitFor};
use super::super::queue::{Answer, Claim, RootedPath, RuleDef, WaitingJob};
use super::cached::Cached;
use super::{NEXT_QUEUE_SEQ, NOW_MS, rooted};
use crate::os::version::FileVersion;
use crate::store::encoding::{blob, path_of, stored};

fn ok_if(changed: u64) -> Answer {
    if changed == 1 {
        Answer::Ok
    } else {
        Answer::NotClaimable
    }
}

/// A queued job becomes `waiting` (planned again, its inputs are not all there).
pub(super) fn wait(
    tx: &mut Cached<'_, '_>,
    id: JobId,
    wait: &WaitFor,
) -> Result<Answer, postgres::Error> {
    let changed = tx.execute(
        "UPDATE jobs SET status = 'waiting', waits_for = $2, wait_until = $3, exit_status = $4
         WHERE id = $1 AND status = 'queued'",
        &[&id, &wait.to_text(), &wait.until_ms, &wait.describe()],
    )?;
    Ok(ok_if(changed))
}

/// A waiting job whose inputs are there: queued behind the jobs queued by others (the caller
/// holds the queue's place lock).
pub(super) fn release(tx: &mut Cached<'_, '_>, id: JobId) -> Result<Answer, postgres::Error> {
    let changed = tx.execute(
        &format!(
            "UPDATE jobs SET status = 'queued', waits_for = NULL, wait_until = NULL,
                 exit_status = NULL, due_at = '-infinity', queue_seq = {NEXT_QUEUE_SEQ}
             WHERE id = $1 AND status = 'waiting'"
        ),
        &[&id],
    )?;
    Ok(ok_if(changed))
}

/// A waiting job whose inputs never came: failed, saying which.
pub(super) fn give_up(
    tx: &mut Cached<'_, '_>,
    id: JobId,
    reason: &str,
) -> Result<Answer, postgres::Error> {
    let changed = tx.execute(
        &format!(
            "UPDATE jobs SET status = 'failed', exit_status = $2, finished_at = {NOW_MS},
                 waits_for = NULL, wait_until = NULL
             WHERE id = $1 AND status = 'waiting'"
        ),
        &[&id, &reason],
    )?;
    Ok(ok_if(changed))
}

/// What a claimed job's run used (a job succeeds once: its id records one run).
pub(super) fn used(
    tx: &mut Cached<'_, '_>,
    node: &str,
    claim: Claim,
    used: &RunUse,
) -> Result<Answer, postgres::Error> {
    let programs = serde_json::to_string(&used.programs).unwrap_or_default();
    let changed = tx.execute(
        "UPDATE jobs SET work_hash = $3, programs = $4
         WHERE id = $1 AND token = $2 AND status IN ('claimed', 'running')",
        &[&claim.id, &claim.token, &used.work_hash, &programs],
    )?;
    // A stale claim records nothing; its end, written next, is refused and says why.
    if changed == 0 {
        return Ok(Answer::NotClaimable);
    }
    used_inputs(tx, node, claim, used)?;
    Ok(Answer::Ok)
}

/// The declared inputs a claimed job's run read, at the versions it read.
pub(super) fn used_inputs(
    tx: &mut Cached<'_, '_>,
    node: &str,
    claim: Claim,
    used: &RunUse,
) -> Result<(), postgres::Error> {
    for input in &used.inputs {
        let file_id = file_row(tx, node, &input.path, input.version)?;
        let (ino, size, mtime) = stored(input.version);
        tx.execute(
            "INSERT INTO job_inputs (job_id, file_id, ino, size, mtime_ns, hash)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (job_id, file_id) DO UPDATE SET ino = excluded.ino,
                 size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash",
            &[&claim.id, &file_id, &ino, &size, &mtime, &input.hash],
        )?;
    }
    Ok(())
}

/// The `files` row of a declared input, made when it has none.
fn file_row(
    tx: &mut Cached<'_, '_>,
    node: &str,
    path: &Path,
    version: FileVersion,
) -> Result<i64, postgres::Error> {
    let at = rooted(tx.inner(), node, path)?;
    let (ino, size, mtime) = stored(version);
    tx.execute(
        &format!(
            "INSERT INTO files (root, rel, ino, size, mtime_ns, baseline, seen_at)
             VALUES ($1, $2, $3, $4, $5, false, {NOW_MS})
             ON CONFLICT (root, rel) DO NOTHING"
        ),
        &[&at.root, &blob(&at.rel), &ino, &size, &mtime],
    )?;
    let row = tx.query_one(
        "SELECT id FROM files WHERE root = $1 AND rel = $2",
        &[&at.root, &blob(&at.rel)],
    )?;
    Ok(row.get(0))
}

/// A new version of a declared input: its record updated; the answer names the jobs whose
/// last done run read another version.
pub(super) fn input_seen(
    tx: &mut Cached<'_, '_>,
    node: &str,
    path: &Path,
    version: FileVersion,
) -> Result<Answer, postgres::Error> {
    let at = rooted(tx.inner(), node, path)?;
    let (ino, size, mtime) = stored(version);
    let rel = blob(&at.rel);
    tx.execute(
        &format!(
            "UPDATE files SET ino = $3, size = $4, mtime_ns = $5, seen_at = {NOW_MS}
             WHERE root = $1 AND rel = $2"
        ),
        &[&at.root, &rel, &ino, &size, &mtime],
    )?;
    let users = tx
        .query(
            "SELECT j.id, j.rule FROM job_inputs i
             JOIN files f ON f.id = i.file_id
             JOIN jobs j ON j.id = i.job_id
             WHERE f.root = $1 AND f.rel = $2 AND j.status = 'done'
                 AND NOT (i.ino = $3 AND i.size = $4 AND i.mtime_ns = $5)
                 AND j.id = (SELECT max(l.id) FROM jobs l WHERE l.file_id = j.file_id
                     AND l.rule = j.rule AND l.status = 'done')
             ORDER BY j.id",
            &[&at.root, &rel, &ino, &size, &mtime],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(Answer::Users(users))
}

/// Queues each job's file again for its rule, unless one is unfinished (the caller holds the
/// queue's place lock).
pub(super) fn rerun(tx: &mut Cached<'_, '_>, ids: &[JobId]) -> Result<Answer, postgres::Error> {
    rerun_jobs(tx, ids).map(|_| Answer::Ok)
}

/// [`rerun`], answering how many jobs it queued.
pub(super) fn rerun_jobs(tx: &mut Cached<'_, '_>, ids: &[JobId]) -> Result<usize, postgres::Error> {
    let sql = rerun_sql();
    let mut queued = 0;
    for id in ids {
        queued += tx.execute(&sql, &[id])? as usize;
    }
    Ok(queued)
}

/// The statement of [`rerun`] for one job, `$1`.
pub(super) fn rerun_sql() -> String {
    format!(
        "INSERT INTO jobs (rule, rule_hash, file_id, ino, size, mtime_ns, generation,
             status, created_at, queue_seq, tags, concurrency, plan)
         SELECT j.rule, 'rerun', f.id, f.ino, f.size, f.mtime_ns,
             coalesce((SELECT max(g.generation) + 1 FROM jobs g WHERE g.file_id = f.id
                 AND g.rule = j.rule AND g.ino = f.ino AND g.size = f.size
                 AND g.mtime_ns = f.mtime_ns), 0),
             'queued', {NOW_MS}, {NEXT_QUEUE_SEQ}, j.tags, j.concurrency, j.plan
         FROM jobs j JOIN files f ON f.id = j.file_id
         WHERE j.id = $1
             AND NOT EXISTS (SELECT 1 FROM jobs q WHERE q.file_id = f.id
                 AND q.rule = j.rule
                 AND q.status IN ('waiting', 'queued', 'claimed', 'running'))"
    )
}

/// Each rule's current work hash and windows.
pub(super) fn rule_defs(
    tx: &mut Cached<'_, '_>,
    defs: &[RuleDef],
) -> Result<Answer, postgres::Error> {
    for def in defs {
        tx.execute(
            &format!(
                "INSERT INTO rule_defs (name, work_hash, seen_at, windows)
                     VALUES ($1, $2, {NOW_MS}, $3)
                 ON CONFLICT (name) DO UPDATE SET work_hash = excluded.work_hash,
                     seen_at = excluded.seen_at, windows = excluded.windows"
            ),
            &[&def.name, &def.work_hash, &def.windows],
        )?;
    }
    Ok(Answer::Ok)
}

/// The rules with windows, and their windows.
pub(super) fn rule_windows(
    client: &mut impl postgres::GenericClient,
) -> Result<Vec<(String, String)>, postgres::Error> {
    let rows = client.query(
        "SELECT name, windows FROM rule_defs WHERE windows <> '' ORDER BY name",
        &[],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// What job `id`'s run recorded (`shotrouter job`); paths shown where this node mounts them.
pub(super) fn run_record(
    client: &mut impl postgres::GenericClient,
    node: &str,
    id: JobId,
) -> Result<Option<crate::store::lineage::RunRecord>, postgres::Error> {
    let row = client.query_one("SELECT work_hash, programs FROM jobs WHERE id = $1", &[&id])?;
    let rows = client.query(
        &format!(
            "SELECT f.root, f.rel, {}, i.ino, i.size, i.mtime_ns,
                 NOT (i.ino = f.ino AND i.size = f.size AND i.mtime_ns = f.mtime_ns)
             FROM job_inputs i JOIN files f ON f.id = i.file_id
             WHERE i.job_id = $1 ORDER BY f.rel",
            super::root_path_sql("f.root", "$2")
        ),
        &[&id, &node],
    )?;
    let inputs = rows
        .iter()
        .map(|r| {
            let root: String = r.get(0);
            let rel: Vec<u8> = r.get(1);
            let root_path: Option<Vec<u8>> = r.get(2);
            crate::store::lineage::InputRead {
                path: crate::store::encoding::display_path(&root, &rel, root_path.as_deref()),
                version: (
                    0,
                    r.get::<_, i64>(3) as u64,
                    r.get::<_, i64>(4) as u64,
                    r.get(5),
                ),
                changed: r.get(6),
            }
        })
        .collect();
    Ok(crate::store::lineage::RunRecord::from_parts(
        row.get(0),
        row.get(1),
        inputs,
    ))
}

/// Every waiting job, oldest first.
pub(super) fn waiting_jobs(
    client: &mut impl postgres::GenericClient,
) -> Result<Vec<WaitingJob>, postgres::Error> {
    let rows = client.query(
        "SELECT j.id, j.rule, f.root, f.rel, j.waits_for FROM jobs j
         JOIN files f ON f.id = j.file_id
         WHERE j.status = 'waiting' ORDER BY j.id",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| WaitingJob {
            id: r.get(0),
            rule: r.get(1),
            input: RootedPath {
                root: r.get(2),
                rel: path_of(r.get(3)),
            },
            // A wait this build cannot read waits for nothing: released at once.
            wait: r
                .get::<_, Option<&str>>(4)
                .and_then(WaitFor::from_text)
                .unwrap_or(WaitFor {
                    inputs: Vec::new(),
                    until_ms: 0,
                }),
        })
        .collect())
}

/// Every file read as a declared input by a job's last run.
pub(super) fn declared_inputs(
    client: &mut impl postgres::GenericClient,
) -> Result<Vec<RootedPath>, postgres::Error> {
    let rows = client.query(
        "SELECT f.root, f.rel FROM files f
         WHERE f.id IN (SELECT DISTINCT file_id FROM job_inputs)",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| RootedPath {
            root: r.get(0),
            rel: path_of(r.get(1)),
        })
        .collect())
}
