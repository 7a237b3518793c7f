//! Applying one write of the engine's group commit to SQLite, one arm per kind of `Write`:
//! claims (a first claim in one statement), replans, progress, starts, the steps run, ends,
//! drops and baselines; an enqueue is recorded by `enqueue.rs`. Every write fenced by a claim
//! names the token and the statuses it may change in its `WHERE`, so a refused write changes
//! nothing, and [`refusal`] reads back why (a user's cancel, or a newer claim). The transaction
//! around the batch is `commit` in `queue.rs`.

use rusqlite::{Connection, OptionalExtension, params};

use super::super::JobId;
use super::super::queue::{Answer, Claim, DECLINE_MS, Ending, Write};
use super::encoding::{blob, encode_steps};
use super::enqueue::{enqueue, upsert_baseline};
use super::lineage;
use crate::store::RunHandle;
use crate::store::lineage::RunUse;

/// Applies one write of a group commit.
pub(super) fn apply(
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
        Write::Finish { claim, ending } => finish(tx, now, *claim, ending, None),
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
        Write::Hold { id, reason } => super::control::hold(tx, *id, reason.as_deref()),
        Write::HoldRule { rule, reason } => super::control::hold_rule(tx, rule, reason.as_deref()),
        Write::Baseline { files } => {
            for (path, version) in files {
                upsert_baseline(tx, path, *version, now, legacy)?;
            }
            Ok(Answer::Ok)
        }
        Write::Wait { id, wait } => lineage::wait(tx, *id, wait),
        Write::Release { id } => lineage::release(tx, *id),
        Write::GiveUp { id, reason } => lineage::give_up(tx, *id, reason, now),
        Write::Used { claim, used } => lineage::used(tx, *claim, used, now),
        Write::InputSeen { path, version } => lineage::input_seen(tx, path, *version, now),
        Write::Rerun { ids } => lineage::rerun(tx, ids, now),
        Write::RuleDefs { defs } => lineage::rule_defs(tx, defs, now),
    }
}

/// A run's [`Write::Used`] and the same claim's [`Write::Finish`] just after it in one batch, as
/// the engine writes every successful end: one `UPDATE` of the job instead of two. The answers
/// are the ones the two writes would have had: the same `WHERE` fences both.
pub(super) fn used_and_finish(
    tx: &Connection,
    now: i64,
    claim: Claim,
    used: &RunUse,
    ending: &Ending,
) -> rusqlite::Result<(Answer, Answer)> {
    let ended = finish(tx, now, claim, ending, Some(used))?;
    if !matches!(ended, Answer::Ok) {
        return Ok((Answer::NotClaimable, ended));
    }
    lineage::used_inputs(tx, claim, used, now)?;
    Ok((Answer::Ok, ended))
}

fn finish(
    tx: &Connection,
    now: i64,
    claim: Claim,
    ending: &Ending,
    used: Option<&RunUse>,
) -> rusqlite::Result<Answer> {
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
    // What the run used, when its `Used` is folded in here (`?8`); else both stay.
    let programs = used.map(|u| serde_json::to_string(&u.programs).unwrap_or_default());
    // The queue_seq stays: the engine queued it again itself and knows it.
    let changed = tx
        .prepare_cached(
            "UPDATE jobs SET status = ?3, exit_status = ?4, not_before = ?5, finished_at = ?6,
                 started_at = coalesce(started_at, ?6), temp_output = NULL, pgid = NULL,
                 leader_start = NULL, boot_id = NULL, attempts = max(attempts - ?7, 0),
                 work_hash = CASE WHEN ?8 THEN ?9 ELSE work_hash END,
                 programs = CASE WHEN ?8 THEN ?10 ELSE programs END
             WHERE id = ?1 AND token = ?2 AND status IN ('claimed', 'running')",
        )?
        .execute(params![
            claim.id,
            claim.token,
            status,
            reason,
            not_before,
            now,
            uncount,
            used.is_some(),
            used.map(|u| u.work_hash.as_str()),
            programs
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
