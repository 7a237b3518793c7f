//! Recording a new job and the file it is on, as the SQLite backend does: the idempotent
//! insert (`ON CONFLICT DO NOTHING` on the unique version index, never a look-up first), the
//! checks that make an enqueue a no-op (a baseline version, a move the store follows) and the
//! supersession of older versions' unfinished jobs.

use super::super::JobId;
use super::super::encoding::{blob, encode_steps, path_of, stored};
use super::super::queue::{Answer, Claim, NewJob, RootedPath};
use super::NOW_MS;
use super::cached::Cached;
use crate::os::version::FileVersion;

pub(super) fn enqueue(
    tx: &mut Cached<'_, '_>,
    node: &str,
    job: &NewJob,
    claim: bool,
) -> Result<Answer, postgres::Error> {
    // One look-up of the path's record answers the baseline check and rules out a move (a
    // path that has a record is not followed); the upsert says whether it made the record, and
    // a record this transaction made has no older jobs to supersede: a round trip less each.
    let known = known_file(tx, job)?;
    if !job.baseline_runs && known == Some(true) {
        return Ok(Answer::Duplicate);
    }
    let settled = job.unplannable.as_ref().or(job.skipped.as_ref());
    let moved = if known.is_none() && job.follow_moves && settled.is_none() {
        follow_move(tx, job)?
    } else {
        None
    };
    let (file_id, made) = upsert_file(tx, &job.input, job.version, false)?;
    if let Some(from) = moved {
        return Ok(Answer::Moved { from });
    }
    let (ino, size, mtime) = stored(job.version);
    let claim = claim && settled.is_none() && job.waiting.is_none();
    let (status, token, claimer, attempts, claimed, finished): (
        &str,
        i64,
        Option<&str>,
        i32,
        bool,
        bool,
    ) = match (&job.unplannable, claim) {
        (Some(_), _) => ("failed", 0, None, 0, false, true),
        (None, _) if job.skipped.is_some() => ("skipped", 0, None, 0, false, true),
        (None, _) if job.waiting.is_some() => ("waiting", 0, None, 0, false, false),
        (None, true) => ("claimed", 1, Some(node), 1, true, false),
        (None, false) => ("queued", 0, None, 0, false, false),
    };
    let steps = encode_steps(&job.steps);
    let output = job.output.as_deref().map(blob);
    let mut tags = job.tags.clone();
    tags.sort_unstable();
    tags.dedup();
    let concurrency = job.concurrency.map(|n| n.min(i32::MAX as u32) as i32);
    let plan = (!job.plan.is_empty()).then_some(job.plan.as_str());
    let waits_for = job.waiting.as_ref().map(|w| w.to_text());
    let wait_until = job.waiting.as_ref().map(|w| w.until_ms);
    let result = settled
        .cloned()
        .or_else(|| job.waiting.as_ref().map(|w| w.describe()));
    // With DO NOTHING, RETURNING yields no row at all for a conflict: that is the duplicate.
    let row = tx.query_opt(
        &format!(
            "INSERT INTO jobs (rule, rule_hash, file_id, ino, size, mtime_ns, status, token, node,
                 attempts, steps, output, exit_status, created_at, claimed_at, finished_at,
                 tags, concurrency, plan, waits_for, wait_until, priority)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, {NOW_MS},
                 CASE WHEN $14 THEN {NOW_MS} END, CASE WHEN $15 THEN {NOW_MS} END,
                 $16, $17, $18, $19, $20, $21)
             ON CONFLICT DO NOTHING RETURNING id"
        ),
        &[
            &job.rule,
            &job.rule_hash,
            &file_id,
            &ino,
            &size,
            &mtime,
            &status,
            &token,
            &claimer,
            &attempts,
            &steps,
            &output,
            &result,
            &claimed,
            &finished,
            &tags,
            &concurrency,
            &plan,
            &waits_for,
            &wait_until,
            &job.priority,
        ],
    )?;
    let Some(row) = row else {
        return Ok(Answer::Duplicate);
    };
    let id: JobId = row.get(0);
    // A rerun (a new generation of the same version) does not cancel the job it repeats.
    let superseded: Vec<JobId> = if made {
        Vec::new()
    } else {
        supersede(tx, file_id, &job.rule, id, job.version)?
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

/// Cancels the unfinished jobs of `rule` on the file's older versions, for the new job `id`;
/// answers them in order.
fn supersede(
    tx: &mut Cached<'_, '_>,
    file_id: i64,
    rule: &str,
    id: JobId,
    version: FileVersion,
) -> Result<Vec<JobId>, postgres::Error> {
    let (ino, size, mtime) = stored(version);
    let mut superseded: Vec<JobId> = tx
        .query(
            &format!(
                "UPDATE jobs SET status = 'cancelled', finished_at = {NOW_MS},
                     exit_status = 'superseded by job ' || $3::bigint || ': a newer version of the input arrived'
                 WHERE file_id = $1 AND rule = $2 AND id < $3
                     AND status IN ('waiting', 'queued', 'claimed', 'running')
                     AND NOT (ino = $4 AND size = $5 AND mtime_ns = $6)
                 RETURNING id"
            ),
            &[&file_id, &rule, &id, &ino, &size, &mtime],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    superseded.sort_unstable();
    Ok(superseded)
}

/// Whether the input's path has a record (`None`: not), and if so whether it holds exactly
/// this version as baseline: known, never to run.
fn known_file(tx: &mut Cached<'_, '_>, job: &NewJob) -> Result<Option<bool>, postgres::Error> {
    let (ino, size, mtime) = stored(job.version);
    Ok(tx
        .query_opt(
            "SELECT baseline AND ino = $3 AND size = $4 AND mtime_ns = $5
             FROM files WHERE root = $1 AND rel = $2",
            &[&job.input.root, &blob(&job.input.rel), &ino, &size, &mtime],
        )?
        .map(|r| r.get(0)))
}

/// When `job`'s version succeeded for its rule under another path that still records that
/// version, moves that file's record (and so its history) to the job's path and returns where
/// it was; only a plain move is followed (see the SQLite backend's `follow_move`).
fn follow_move(
    tx: &mut Cached<'_, '_>,
    job: &NewJob,
) -> Result<Option<RootedPath>, postgres::Error> {
    let (ino, size, mtime) = stored(job.version);
    let rel = blob(&job.input.rel);
    let found = tx.query_opt(
        "SELECT f.id, f.root, f.rel FROM files f
         WHERE f.ino = $1 AND f.size = $2 AND f.mtime_ns = $3
             AND NOT (f.root = $4 AND f.rel = $5)
             AND EXISTS (SELECT 1 FROM jobs j WHERE j.file_id = f.id AND j.rule = $6
                 AND j.ino = $1 AND j.size = $2 AND j.mtime_ns = $3 AND j.status = 'done')
             AND NOT EXISTS (SELECT 1 FROM jobs a WHERE a.file_id = f.id
                 AND a.status IN ('waiting', 'queued', 'claimed', 'running'))
         LIMIT 1 FOR UPDATE OF f",
        &[&ino, &size, &mtime, &job.input.root, &rel, &job.rule],
    )?;
    let Some(found) = found else {
        return Ok(None);
    };
    let (old_id, root, old_rel): (i64, String, Vec<u8>) =
        (found.get(0), found.get(1), found.get(2));
    let taken = tx.query_opt(
        "SELECT id FROM files WHERE root = $1 AND rel = $2",
        &[&job.input.root, &rel],
    )?;
    if taken.is_some() {
        return Ok(None);
    }
    tx.execute(
        "UPDATE files SET root = $2, rel = $3 WHERE id = $1",
        &[&old_id, &job.input.root, &rel],
    )?;
    Ok(Some(RootedPath {
        root,
        rel: path_of(old_rel),
    }))
}

/// Records this version of a file and returns its row id, and whether this made the record
/// (`xmax = 0`: the row version is an insert's, not an update's).
pub(super) fn upsert_file(
    tx: &mut Cached<'_, '_>,
    path: &RootedPath,
    version: FileVersion,
    baseline: bool,
) -> Result<(i64, bool), postgres::Error> {
    let (ino, size, mtime) = stored(version);
    let row = tx.query_one(
        &format!(
            "INSERT INTO files (root, rel, ino, size, mtime_ns, baseline, seen_at)
                 VALUES ($1, $2, $3, $4, $5, $6, {NOW_MS})
                 ON CONFLICT (root, rel) DO UPDATE SET ino = excluded.ino, size = excluded.size,
                     mtime_ns = excluded.mtime_ns, baseline = excluded.baseline,
                     seen_at = excluded.seen_at
                 RETURNING id, xmax = 0"
        ),
        &[&path.root, &blob(&path.rel), &ino, &size, &mtime, &baseline],
    )?;
    Ok((row.get(0), row.get(1)))
}
