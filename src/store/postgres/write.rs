//! The writes of a group commit on PostgreSQL, each fenced by its claim's token and status in
//! its `WHERE` (a refused write changes nothing), answered in order as on SQLite.

use super::super::encoding::{blob, encode_steps};
use super::super::lineage::RunUse;
use super::super::queue::{Answer, Claim, DECLINE_MS, Ending, Write};
use super::super::write::{InOrder, in_commit_order};
use super::super::{JobId, now_ms};
use super::cached::Cached;
use super::enqueue::{enqueue, upsert_file};
use super::{NOW_MS, lineage};
use crate::store::RunHandle;

/// Applies one write of a group commit; `queues` is set when it queued a job.
fn apply(
    tx: &mut Cached<'_, '_>,
    node: &str,
    write: &Write,
    queues: &mut bool,
) -> Result<Answer, postgres::Error> {
    match write {
        Write::Enqueue { job, claim } => {
            let answer = enqueue(tx, node, job, *claim)?;
            if let Answer::Enqueued { claim: None, .. } = answer
                && job.unplannable.is_none()
            {
                *queues = true;
            }
            Ok(answer)
        }
        Write::Claim { id } => {
            let claimed = tx.query_opt(
                &format!(
                    "UPDATE jobs SET status = 'claimed', token = token + 1, node = $2,
                         attempts = attempts + 1, claimed_at = {NOW_MS}, exit_status = NULL
                     WHERE id = $1 AND status = 'queued' RETURNING token, attempts"
                ),
                &[id, &node],
            )?;
            Ok(match claimed {
                Some(row) => Answer::Claimed(Claim {
                    id: *id,
                    token: row.get(0),
                    attempt: row.get::<_, i32>(1) as u32,
                }),
                None => Answer::NotClaimable,
            })
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
            let changed = tx.execute(
                "UPDATE jobs SET rule_hash = $2, steps = $3, output = $4,
                     plan = coalesce($5, plan),
                     publish_ino = CASE WHEN rule_hash IS NOT DISTINCT FROM $2
                         AND output IS NOT DISTINCT FROM $4 THEN publish_ino END,
                     publish_size = CASE WHEN rule_hash IS NOT DISTINCT FROM $2
                         AND output IS NOT DISTINCT FROM $4 THEN publish_size END,
                     publish_mtime_ns = CASE WHEN rule_hash IS NOT DISTINCT FROM $2
                         AND output IS NOT DISTINCT FROM $4 THEN publish_mtime_ns END
                 WHERE id = $1 AND status IN ('queued', 'claimed')",
                &[
                    id,
                    rule_hash,
                    &encode_steps(steps),
                    &output.as_deref().map(blob),
                    &(!plan.is_empty()).then_some(plan.as_str()),
                ],
            )?;
            Ok(if changed == 1 {
                Answer::Ok
            } else {
                Answer::NotClaimable
            })
        }
        Write::Progress { claim, progress } => {
            // A stale claim's progress is dropped: its node learns of the loss elsewhere.
            tx.execute(
                "UPDATE jobs SET progress = $3
                 WHERE id = $1 AND token = $2 AND status = 'running'",
                &[&claim.id, &claim.token, &progress.to_text()],
            )?;
            Ok(Answer::Ok)
        }
        Write::Started {
            claim,
            run,
            temp_output,
        } => {
            let group = run.as_ref().and_then(RunHandle::group);
            let changed = tx.execute(
                &format!(
                    "UPDATE jobs SET status = 'running', started_at = coalesce(started_at, {NOW_MS}),
                         pgid = $3, leader_start = $4, boot_id = $5, temp_output = $6,
                         run_remote = $7, progress = NULL
                     WHERE id = $1 AND token = $2 AND status IN ('claimed', 'running')"
                ),
                &[
                    &claim.id,
                    &claim.token,
                    &group.as_ref().map(|g| g.pgid),
                    &group.as_ref().map(|g| g.leader_start as i64),
                    &group.as_ref().map(|g| g.boot_id.as_str()),
                    &temp_output.as_deref().map(blob),
                    &run.as_ref().and_then(RunHandle::remote_text),
                ],
            )?;
            if changed == 1 {
                Ok(Answer::Ok)
            } else {
                refusal(tx, claim.id)
            }
        }
        Write::Ran { claim, steps } => {
            let changed = tx.execute(
                "UPDATE jobs SET ran_steps = $3, ran_node = node, ran_token = token
                 WHERE id = $1 AND token = $2 AND status IN ('claimed', 'running')",
                &[&claim.id, &claim.token, &encode_steps(steps)],
            )?;
            if changed == 1 {
                Ok(Answer::Ok)
            } else {
                refusal(tx, claim.id)
            }
        }
        Write::Finish { claim, ending } => {
            let answer = finish(tx, *claim, ending, None)?;
            if answer == Answer::Ok && matches!(ending, Ending::Retry { .. } | Ending::Interrupted)
            {
                *queues = true;
            }
            Ok(answer)
        }
        Write::Drop { id, reason } => {
            let changed = tx.execute(
                &format!(
                    "UPDATE jobs SET status = 'cancelled', exit_status = $2, finished_at = {NOW_MS}
                     WHERE id = $1 AND status = 'queued'"
                ),
                &[id, reason],
            )?;
            Ok(if changed == 1 {
                Answer::Ok
            } else {
                Answer::NotClaimable
            })
        }
        Write::Baseline { files } => {
            for (path, version) in files {
                upsert_file(tx, path, *version, true)?;
            }
            Ok(Answer::Ok)
        }
        Write::Wait { id, wait } => lineage::wait(tx, *id, wait),
        Write::Release { id } => {
            let answer = lineage::release(tx, *id)?;
            *queues |= answer == Answer::Ok;
            Ok(answer)
        }
        Write::GiveUp { id, reason } => lineage::give_up(tx, *id, reason),
        Write::Used { claim, used } => lineage::used(tx, node, *claim, used),
        Write::InputSeen { path, version } => lineage::input_seen(tx, node, path, *version),
        Write::Hold { id, reason } => super::control::hold(tx, *id, reason.as_deref()),
        Write::HoldRule { rule, reason } => super::control::hold_rule(tx, rule, reason.as_deref()),
        Write::Rerun { ids } => {
            *queues = true;
            lineage::rerun(tx, ids)
        }
        Write::RuleDefs { defs } => lineage::rule_defs(tx, defs),
    }
}

/// Applies a group commit's writes in order. A run's `Used` followed by the same claim's
/// `Finish` (how the engine ends every successful run) is one statement, not two: one round
/// trip fewer per job to a database across the network.
pub(super) fn apply_all(
    tx: &mut Cached<'_, '_>,
    node: &str,
    writes: &[Write],
    queues: &mut bool,
) -> Result<Vec<Answer>, postgres::Error> {
    let mut answers = Vec::with_capacity(writes.len());
    for step in in_commit_order(writes) {
        match step {
            InOrder::One(write) => answers.push(apply(tx, node, write, queues)?),
            InOrder::UsedAndEnd {
                claim,
                used,
                ending,
            } => {
                let ended = finish(tx, claim, ending, Some(used))?;
                if ended == Answer::Ok {
                    lineage::used_inputs(tx, node, claim, used)?;
                    *queues |= matches!(ending, Ending::Retry { .. } | Ending::Interrupted);
                    answers.extend([Answer::Ok, ended]);
                } else {
                    // A stale claim records nothing; the end says why, as the two writes would.
                    answers.extend([Answer::NotClaimable, ended]);
                }
            }
        }
    }
    Ok(answers)
}

/// Whether a write gives a job a place among those queued by others: the transaction takes
/// the queue's place lock first, before any row lock, as `requeueing` does.
pub(super) fn places_jobs(write: &Write) -> bool {
    matches!(write, Write::Release { .. } | Write::Rerun { .. })
}

/// A claim's end; with `used`, what its run used is written in the same statement.
fn finish(
    tx: &mut Cached<'_, '_>,
    claim: Claim,
    ending: &Ending,
    used: Option<&RunUse>,
) -> Result<Answer, postgres::Error> {
    // `not_before` as reported (the engine's clock; `None`: the database's now + the delay)
    // and the delay after which the job is due, in the database's clock.
    let (status, reason, not_before, delay_ms) = match ending {
        Ending::Done => ("done", None, Some(0), 0),
        Ending::Failed { reason } => ("failed", Some(reason.as_str()), Some(0), 0),
        Ending::Cancelled => ("cancelled", Some("cancelled"), Some(0), 0),
        // The engine says when in its own clock; the database is told how long from now, so
        // the due time is in its clock (this machine's clock only measures the delay).
        Ending::Retry { reason, not_before } => (
            "queued",
            Some(reason.as_str()),
            Some(*not_before),
            (*not_before - now_ms()).max(0),
        ),
        Ending::Interrupted => (
            "queued",
            Some("interrupted: this node shut down"),
            Some(0),
            0,
        ),
        Ending::Declined { reason } => ("queued", Some(reason.as_str()), None, DECLINE_MS),
    };
    // An attempt this node's stop cut short, or that it could not run, gives its count back
    // (its claim raised it).
    let uncount = i32::from(matches!(
        ending,
        Ending::Interrupted | Ending::Declined { .. }
    ));
    // What the run used, when its `Used` is folded in here (`$8`); else both stay.
    let programs = used.map(|u| serde_json::to_string(&u.programs).unwrap_or_default());
    let work_hash = used.map(|u| u.work_hash.as_str());
    // The queue_seq stays: the engine queued it again itself and knows it.
    let changed = tx.execute(
        &format!(
            "UPDATE jobs SET status = $3, exit_status = $4,
                 not_before = coalesce($5::bigint, {NOW_MS} + $6::bigint),
                 due_at = now() + $6::bigint * interval '1 millisecond',
                 finished_at = {NOW_MS}, started_at = coalesce(started_at, {NOW_MS}),
                 temp_output = NULL, pgid = NULL, leader_start = NULL, boot_id = NULL,
                 attempts = greatest(attempts - $7, 0),
                 work_hash = CASE WHEN $8 THEN $9 ELSE work_hash END,
                 programs = CASE WHEN $8 THEN $10 ELSE programs END
             WHERE id = $1 AND token = $2 AND status IN ('claimed', 'running')"
        ),
        &[
            &claim.id,
            &claim.token,
            &status,
            &reason,
            &not_before,
            &delay_ms,
            &uncount,
            &used.is_some(),
            &work_hash,
            &programs,
        ],
    )?;
    if changed == 1 {
        Ok(Answer::Ok)
    } else {
        refusal(tx, claim.id)
    }
}

/// Why a fenced write changed nothing: a user's cancel, or a newer claim.
pub(super) fn refusal(tx: &mut Cached<'_, '_>, id: JobId) -> Result<Answer, postgres::Error> {
    let row = tx.query_opt("SELECT status, token FROM jobs WHERE id = $1", &[&id])?;
    Ok(match row {
        Some(row) if row.get::<_, &str>(0) == "cancelled" => Answer::Cancelled,
        Some(row) => Answer::Stale {
            current: row.get(1),
        },
        None => Answer::Stale { current: 0 },
    })
}
