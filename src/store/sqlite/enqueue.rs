//! Recording a new job and the file it is on: the idempotent insert, the checks that make an
//! enqueue a no-op (a baseline version, a move the store follows) and the supersession of
//! older versions' unfinished jobs.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::super::JobId;
use super::super::queue::{Answer, Claim, NewJob, RootedPath};
use super::encoding::{blob, encode_steps, path_of};
use super::stored;
use crate::os::version::FileVersion;

pub(super) fn enqueue(
    tx: &Connection,
    node: &str,
    now: i64,
    legacy: bool,
    job: &NewJob,
    claim: bool,
) -> rusqlite::Result<Answer> {
    // One look-up answers the baseline check, rules out a move (a path that has a record is
    // not followed) or finds the record to follow, names the record to update and, when there
    // is none, the supersession: a new record has no older jobs. A burst of new files so runs
    // three statements per job, and none with `RETURNING`: SQLite runs that clause as a
    // trigger filling a temporary table, which cost more than the row written.
    let settled = job.unplannable.as_ref().or(job.skipped.as_ref());
    let follow = job.follow_moves && settled.is_none();
    let (known, moved) = match look_up(tx, job, follow)? {
        Some(Found::Known(known)) => (Some(known), None),
        Some(Found::Moved(old_id, from)) => (None, Some((old_id, from))),
        None => (None, None),
    };
    if !job.baseline_runs && known.is_some_and(|k| k.baseline_here) {
        return Ok(Answer::Duplicate);
    }
    if let Some((old_id, from)) = moved {
        tx.prepare_cached("UPDATE files SET root = ?2, rel = ?3 WHERE id = ?1")?
            .execute(params![old_id, job.input.root, blob(&job.input.rel)])?;
        record_file(tx, &job.input, job.version, now, legacy, Some(old_id))?;
        return Ok(Answer::Moved { from });
    }
    let file_id = record_file(
        tx,
        &job.input,
        job.version,
        now,
        legacy,
        known.map(|k| k.id),
    )?;
    let (ino, size, mtime) = stored(job.version);
    let claim = claim && settled.is_none();
    let (status, token, claimer, attempts, claimed_at, finished_at) =
        match (&job.unplannable, claim) {
            (Some(_), _) => ("failed", 0, None, 0, None, Some(now)),
            (None, _) if job.skipped.is_some() => ("skipped", 0, None, 0, None, Some(now)),
            (None, _) if job.waiting.is_some() => ("waiting", 0, None, 0, None, None),
            (None, true) => ("claimed", 1, Some(node), 1, Some(now), None),
            (None, false) => ("queued", 0, None, 0, None, None),
        };
    let waits_for = job
        .waiting
        .as_ref()
        .map(|w| (w.to_text(), w.until_ms, w.describe()));
    let claim = claim && waits_for.is_none();
    // With DO NOTHING, a conflict inserts no row: that is the duplicate.
    let inserted = tx
        .prepare_cached(
            "INSERT INTO jobs (rule, rule_hash, file_id, ino, size, mtime_ns, status, token, node,
                 attempts, steps, output, exit_status, created_at, claimed_at, finished_at,
                 tags, concurrency, plan, waits_for, wait_until, priority)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, ?19, ?20, ?21, ?22)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            job.rule,
            job.rule_hash,
            file_id,
            ino,
            size,
            mtime,
            status,
            token,
            claimer,
            attempts,
            encode_steps(&job.steps),
            job.output.as_deref().map(blob),
            settled.or(waits_for.as_ref().map(|w| &w.2)),
            now,
            claimed_at,
            finished_at,
            super::encoding::encode_tags(&job.tags),
            job.concurrency,
            (!job.plan.is_empty()).then_some(job.plan.as_str()),
            waits_for.as_ref().map(|w| &w.0),
            waits_for.as_ref().map(|w| w.1),
            job.priority
        ])?;
    if inserted == 0 {
        return Ok(Answer::Duplicate);
    }
    let id: JobId = tx.last_insert_rowid();
    // A rerun (a new generation of the same version) does not cancel the job it repeats.
    let superseded = if known.is_some() {
        supersede(tx, file_id, &job.rule, id, now, job.version)?
    } else {
        Vec::new()
    };
    Ok(Answer::Enqueued {
        id,
        claim: claim.then_some(Claim {
            id,
            token: 1,
            attempt: 1,
        }),
        superseded,
    })
}

/// The record of a job's path, when the store has one.
#[derive(Clone, Copy)]
struct Known {
    /// Its row id.
    id: i64,
    /// It holds exactly the job's version as baseline: known, never to run.
    baseline_here: bool,
}

/// What the look-up before an enqueue found: the record of the job's path, or (when the path
/// has none and moves are followed) the record of another path to move here.
enum Found {
    Known(Known),
    /// The other record's row id and path.
    Moved(i64, RootedPath),
}

/// The record of a job's path; else, with `follow`, a record to follow: one statement. The
/// second arm runs only when the first found nothing (`LIMIT 1` over `UNION ALL`).
///
/// A record is followed when `job`'s version succeeded for its rule under another path that
/// still records that version. Only a plain move is followed: when the old record still has
/// unfinished jobs (of any rule: their commands name the old path) or the new path already has
/// a record (a file renamed over another, whose jobs must be superseded), the job runs as usual.
fn look_up(tx: &Connection, job: &NewJob, follow: bool) -> rusqlite::Result<Option<Found>> {
    let (ino, size, mtime) = stored(job.version);
    type Row = (
        Option<i64>,
        Option<bool>,
        Option<i64>,
        Option<String>,
        Option<Vec<u8>>,
    );
    let row: Option<Row> = tx
        .prepare_cached(concat!(
            "SELECT id, baseline = 1 AND ino = ?3 AND size = ?4 AND mtime_ns = ?5,
                 NULL, NULL, NULL
             FROM files WHERE root = ?1 AND rel = ?2
             UNION ALL
             SELECT NULL, NULL, f.id, f.root, f.rel FROM files f
             WHERE ?7 AND f.ino = ?3 AND f.size = ?4 AND f.mtime_ns = ?5 AND f.legacy = 0
                 AND NOT (f.root = ?1 AND f.rel = ?2)
                 AND EXISTS (SELECT 1 FROM jobs j WHERE j.file_id = f.id AND j.rule = ?6
                     AND j.ino = ?3 AND j.size = ?4 AND j.mtime_ns = ?5 AND j.status = 'done')
                 AND NOT EXISTS (SELECT 1 FROM jobs a WHERE a.file_id = f.id AND ",
            active!("a."),
            ")
             LIMIT 1"
        ))?
        .query_row(
            params![
                job.input.root,
                blob(&job.input.rel),
                ino,
                size,
                mtime,
                job.rule,
                follow
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    Ok(match row {
        Some((Some(id), baseline_here, _, _, _)) => Some(Found::Known(Known {
            id,
            baseline_here: baseline_here.unwrap_or(false),
        })),
        Some((None, _, Some(old_id), Some(root), Some(rel))) => Some(Found::Moved(
            old_id,
            RootedPath {
                root,
                rel: path_of(rel),
            },
        )),
        _ => None,
    })
}

/// Cancels the unfinished jobs of `rule` on the file's older versions, for the new job `id`.
fn supersede(
    tx: &Connection,
    file_id: i64,
    rule: &str,
    id: JobId,
    now: i64,
    version: FileVersion,
) -> rusqlite::Result<Vec<JobId>> {
    let (ino, size, mtime) = stored(version);
    tx.prepare_cached(concat!(
        "UPDATE jobs SET status = 'cancelled', finished_at = ?4,
             exit_status = 'superseded by job ' || ?3 || ': a newer version of the input arrived'
         WHERE file_id = ?1 AND rule = ?2 AND id < ?3 AND ",
        active!(),
        " AND NOT (ino = ?5 AND size = ?6 AND mtime_ns = ?7)
         RETURNING id"
    ))?
    .query_map(params![file_id, rule, id, now, ino, size, mtime], |r| {
        r.get(0)
    })?
    .collect()
}

/// Records the version of an enqueued job's file: an update of the record `known` (found at
/// its path, or just moved there), else a new record; answers its row id. A legacy row (from
/// v1) whose size and mtime match is the same contents: its jobs of that version take the new
/// inode first, so the unique index recognises them.
fn record_file(
    tx: &Connection,
    path: &RootedPath,
    version: FileVersion,
    now: i64,
    legacy: bool,
    known: Option<i64>,
) -> rusqlite::Result<i64> {
    let (ino, size, mtime) = stored(version);
    let Some(id) = known else {
        tx.prepare_cached(
            "INSERT INTO files (root, rel, ino, size, mtime_ns, baseline, seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
        )?
        .execute(params![path.root, blob(&path.rel), ino, size, mtime, now])?;
        return Ok(tx.last_insert_rowid());
    };
    // Only a store migrated from the previous release has legacy rows; skip the look-up else.
    if legacy {
        upgrade_legacy(tx, &path.root, &path.rel, version)?;
    }
    tx.prepare_cached(
        "UPDATE files SET ino = ?2, size = ?3, mtime_ns = ?4, legacy = 0, baseline = 0,
             seen_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![id, ino, size, mtime, now])?;
    Ok(id)
}

/// Records this version of a file as baseline (known, never to run). A legacy row (from v1)
/// whose size and mtime match is the same contents: its jobs of that version take the new
/// inode first, so the unique index recognises them.
pub(super) fn upsert_baseline(
    tx: &Connection,
    path: &RootedPath,
    version: FileVersion,
    now: i64,
    legacy: bool,
) -> rusqlite::Result<()> {
    // Only a store migrated from the previous release has legacy rows; skip the look-up else.
    if legacy {
        upgrade_legacy(tx, &path.root, &path.rel, version)?;
    }
    let (ino, size, mtime) = stored(version);
    tx.prepare_cached(
        "INSERT INTO files (root, rel, ino, size, mtime_ns, baseline, seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)
         ON CONFLICT(root, rel) DO UPDATE SET ino = excluded.ino, size = excluded.size,
             mtime_ns = excluded.mtime_ns, legacy = 0, baseline = 1, seen_at = excluded.seen_at",
    )?
    .execute(params![path.root, blob(&path.rel), ino, size, mtime, now])?;
    Ok(())
}

/// Moves the jobs of a legacy file row's current version to the presented inode, when the
/// presented version has the same size and mtime. `OR IGNORE`: a job already recorded with the
/// new inode wins over its legacy twin, which then keeps the old one.
pub(super) fn upgrade_legacy(
    tx: &Connection,
    root: &str,
    rel: &Path,
    version: FileVersion,
) -> rusqlite::Result<()> {
    let (ino, size, mtime) = stored(version);
    tx.prepare_cached(
        "UPDATE OR IGNORE jobs SET ino = ?3
         WHERE file_id = (SELECT id FROM files
                 WHERE root = ?1 AND rel = ?2 AND legacy = 1 AND size = ?4 AND mtime_ns = ?5)
             AND ino = (SELECT ino FROM files WHERE root = ?1 AND rel = ?2)
             AND size = ?4 AND mtime_ns = ?5",
    )?
    .execute(params![root, blob(rel), ino, size, mtime])?;
    Ok(())
}
