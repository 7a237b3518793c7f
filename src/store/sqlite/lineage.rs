//! The writes and reads of declared inputs for SQLite: a job recorded `waiting`, released,
//! given up on; what a run used; a new version of an input and the jobs that read the old;
//! reruns by job; the rules' work hashes. Tables and columns: `store::lineage`.

use rusqlite::{Connection, params};

use super::super::JobId;
use super::super::lineage::{RunUse, WaitFor};
use super::super::queue::{Answer, Claim, RootedPath, RuleDef, WaitingJob};
use super::encoding::{blob, path_of};
use super::{NEXT_QUEUE_SEQ, SqliteStore, stored};
use crate::os::version::FileVersion;

/// A queued job becomes `waiting` (planned again, its inputs are not all there).
pub(super) fn wait(tx: &Connection, id: JobId, wait: &WaitFor) -> rusqlite::Result<Answer> {
    let changed = tx
        .prepare_cached(
            "UPDATE jobs SET status = 'waiting', waits_for = ?2, wait_until = ?3,
                 exit_status = ?4
             WHERE id = ?1 AND status = 'queued'",
        )?
        .execute(params![id, wait.to_text(), wait.until_ms, wait.describe()])?;
    Ok(if changed == 1 {
        Answer::Ok
    } else {
        Answer::NotClaimable
    })
}

/// A waiting job whose inputs are there: queued behind the jobs queued by others, so every
/// node's poll of the queue sees it.
pub(super) fn release(tx: &Connection, id: JobId) -> rusqlite::Result<Answer> {
    let changed = tx
        .prepare_cached(&format!(
            "UPDATE jobs SET status = 'queued', waits_for = NULL, wait_until = NULL,
                 exit_status = NULL, queue_seq = {NEXT_QUEUE_SEQ}
             WHERE id = ?1 AND status = 'waiting'"
        ))?
        .execute([id])?;
    Ok(if changed == 1 {
        Answer::Ok
    } else {
        Answer::NotClaimable
    })
}

/// A waiting job whose inputs never came: failed, saying which.
pub(super) fn give_up(
    tx: &Connection,
    id: JobId,
    reason: &str,
    now: i64,
) -> rusqlite::Result<Answer> {
    let changed = tx
        .prepare_cached(
            "UPDATE jobs SET status = 'failed', exit_status = ?2, finished_at = ?3,
                 waits_for = NULL, wait_until = NULL
             WHERE id = ?1 AND status = 'waiting'",
        )?
        .execute(params![id, reason, now])?;
    Ok(if changed == 1 {
        Answer::Ok
    } else {
        Answer::NotClaimable
    })
}

/// What a claimed job's run used (a job succeeds once: its id records one run).
pub(super) fn used(
    tx: &Connection,
    claim: Claim,
    used: &RunUse,
    now: i64,
) -> rusqlite::Result<Answer> {
    let programs = serde_json::to_string(&used.programs).unwrap_or_default();
    let changed = tx
        .prepare_cached(
            "UPDATE jobs SET work_hash = ?3, programs = ?4
             WHERE id = ?1 AND token = ?2 AND status IN ('claimed', 'running')",
        )?
        .execute(params![claim.id, claim.token, used.work_hash, programs])?;
    // A stale claim records nothing; its end, written next, is refused and says why.
    if changed == 0 {
        return Ok(Answer::NotClaimable);
    }
    used_inputs(tx, claim, used, now)?;
    Ok(Answer::Ok)
}

/// The declared inputs a run read, at the versions read (`job_inputs`), once the claim's
/// `work_hash` and `programs` are written (by [`used`], or folded into the end's statement).
pub(super) fn used_inputs(
    tx: &Connection,
    claim: Claim,
    used: &RunUse,
    now: i64,
) -> rusqlite::Result<()> {
    for input in &used.inputs {
        let file_id = file_row(tx, &input.path, input.version, now)?;
        let (ino, size, mtime) = stored(input.version);
        tx.prepare_cached(
            "INSERT OR REPLACE INTO job_inputs (job_id, file_id, ino, size, mtime_ns, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![claim.id, file_id, ino, size, mtime, input.hash])?;
    }
    Ok(())
}

/// The `files` row of a declared input, made when it has none. Its version is the watcher's
/// to update ([`input_seen`]): a run records the version it read in `job_inputs`.
fn file_row(
    tx: &Connection,
    path: &std::path::Path,
    version: FileVersion,
    now: i64,
) -> rusqlite::Result<i64> {
    let at = SqliteStore::rooted(tx, path)?;
    let (ino, size, mtime) = stored(version);
    tx.prepare_cached(
        "INSERT INTO files (root, rel, ino, size, mtime_ns, baseline, seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)
         ON CONFLICT(root, rel) DO NOTHING",
    )?
    .execute(params![at.root, blob(&at.rel), ino, size, mtime, now])?;
    tx.prepare_cached("SELECT id FROM files WHERE root = ?1 AND rel = ?2")?
        .query_row(params![at.root, blob(&at.rel)], |r| r.get(0))
}

/// A new version of a declared input: its record updated; the answer names the jobs whose
/// last done run (the newest done job of its rule on its file) read another version.
pub(super) fn input_seen(
    tx: &Connection,
    path: &std::path::Path,
    version: FileVersion,
    now: i64,
) -> rusqlite::Result<Answer> {
    let at = SqliteStore::rooted(tx, path)?;
    let (ino, size, mtime) = stored(version);
    tx.prepare_cached(
        "UPDATE files SET ino = ?3, size = ?4, mtime_ns = ?5, seen_at = ?6
         WHERE root = ?1 AND rel = ?2",
    )?
    .execute(params![at.root, blob(&at.rel), ino, size, mtime, now])?;
    let users = tx
        .prepare_cached(
            "SELECT j.id, j.rule FROM job_inputs i
             JOIN files f ON f.id = i.file_id
             JOIN jobs j ON j.id = i.job_id
             WHERE f.root = ?1 AND f.rel = ?2 AND j.status = 'done'
                 AND NOT (i.ino = ?3 AND i.size = ?4 AND i.mtime_ns = ?5)
                 AND j.id = (SELECT max(l.id) FROM jobs l WHERE l.file_id = j.file_id
                     AND l.rule = j.rule AND l.status = 'done')
             ORDER BY j.id",
        )?
        .query_map(params![at.root, blob(&at.rel), ino, size, mtime], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<(JobId, String)>>>()?;
    Ok(Answer::Users(users))
}

/// Queues each job's file again for its rule: a new generation of the file's latest version,
/// planned by the engine with the current rules (as `rerun` does), unless one is unfinished.
pub(super) fn rerun(tx: &Connection, ids: &[JobId], now: i64) -> rusqlite::Result<Answer> {
    rerun_jobs(tx, ids, now).map(|_| Answer::Ok)
}

/// [`rerun`], answering how many jobs it queued.
pub(super) fn rerun_jobs(tx: &Connection, ids: &[JobId], now: i64) -> rusqlite::Result<usize> {
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO jobs (rule, rule_hash, file_id, ino, size, mtime_ns, generation, status,
             created_at, queue_seq, tags, concurrency, plan)
         SELECT j.rule, 'rerun', f.id, f.ino, f.size, f.mtime_ns,
             coalesce((SELECT max(g.generation) + 1 FROM jobs g WHERE g.file_id = f.id
                 AND g.rule = j.rule AND g.ino = f.ino AND g.size = f.size
                 AND g.mtime_ns = f.mtime_ns), 0),
             'queued', ?2, {NEXT_QUEUE_SEQ}, j.tags, j.concurrency, j.plan
         FROM jobs j JOIN files f ON f.id = j.file_id
         WHERE j.id = ?1
             AND NOT EXISTS (SELECT 1 FROM jobs q WHERE q.file_id = f.id AND q.rule = j.rule
                 AND {active})",
        active = active!("q.")
    ))?;
    let mut queued = 0;
    for id in ids {
        queued += stmt.execute(params![id, now])?;
    }
    Ok(queued)
}

/// Each rule's current work hash and windows.
pub(super) fn rule_defs(tx: &Connection, defs: &[RuleDef], now: i64) -> rusqlite::Result<Answer> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO rule_defs (name, work_hash, seen_at, windows) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(name) DO UPDATE SET work_hash = excluded.work_hash,
             seen_at = excluded.seen_at, windows = excluded.windows",
    )?;
    for def in defs {
        stmt.execute(params![def.name, def.work_hash, now, def.windows])?;
    }
    Ok(Answer::Ok)
}

/// The rules with windows, and their windows.
pub(super) fn rule_windows(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    conn.prepare_cached("SELECT name, windows FROM rule_defs WHERE windows <> '' ORDER BY name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// What job `id`'s run recorded (`shotrouter job`).
pub(super) fn run_record(
    conn: &Connection,
    id: JobId,
) -> rusqlite::Result<Option<crate::store::lineage::RunRecord>> {
    let (work_hash, programs): (Option<String>, Option<String>) = conn.query_row(
        "SELECT work_hash, programs FROM jobs WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT f.root, f.rel, r.path, i.ino, i.size, i.mtime_ns,
             NOT (i.ino = f.ino AND i.size = f.size AND i.mtime_ns = f.mtime_ns)
         FROM job_inputs i JOIN files f ON f.id = i.file_id LEFT JOIN roots r ON r.name = f.root
         WHERE i.job_id = ?1 ORDER BY f.rel",
    )?;
    let inputs = stmt
        .query_map([id], |r| {
            let root: String = r.get(0)?;
            let rel: Vec<u8> = r.get(1)?;
            let root_path: Option<Vec<u8>> = r.get(2)?;
            Ok(crate::store::lineage::InputRead {
                path: crate::store::encoding::display_path(&root, &rel, root_path.as_deref()),
                version: (
                    0,
                    r.get::<_, i64>(3)? as u64,
                    r.get::<_, i64>(4)? as u64,
                    r.get(5)?,
                ),
                changed: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(crate::store::lineage::RunRecord::from_parts(
        work_hash,
        programs.as_deref(),
        inputs,
    ))
}

/// Every waiting job, oldest first.
pub(super) fn waiting_jobs(conn: &Connection) -> rusqlite::Result<Vec<WaitingJob>> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, j.rule, f.root, f.rel, j.waits_for FROM jobs j
         JOIN files f ON f.id = j.file_id
         WHERE j.status = 'waiting' ORDER BY j.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, JobId>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    let mut jobs = Vec::new();
    for row in rows {
        let (id, rule, root, rel, text) = row?;
        // A wait this build cannot read waits for nothing: released at once, planned again.
        let wait = text
            .as_deref()
            .and_then(WaitFor::from_text)
            .unwrap_or(WaitFor {
                inputs: Vec::new(),
                until_ms: 0,
            });
        jobs.push(WaitingJob {
            id,
            rule,
            input: RootedPath {
                root,
                rel: path_of(rel),
            },
            wait,
        });
    }
    Ok(jobs)
}

/// Every file read as a declared input by a job's last run.
pub(super) fn declared_inputs(conn: &Connection) -> rusqlite::Result<Vec<RootedPath>> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.root, f.rel FROM files f
         WHERE f.id IN (SELECT DISTINCT file_id FROM job_inputs)",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(RootedPath {
            root: r.get(0)?,
            rel: path_of(r.get::<_, Vec<u8>>(1)?),
        })
    })?;
    rows.collect()
}
