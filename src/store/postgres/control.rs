//! `bump` and `pause` on PostgreSQL: a queued job's priority, a new `queue_seq` so the watcher
//! holding it sees the change at its next poll, and a notice that wakes waiting workers; the
//! `paused` nodes and rules.

use super::super::control::{Bump, Pause, PauseTarget};
use super::super::{JobId, StoreError};
use super::wake::notify;
use super::{NEXT_QUEUE_SEQ, NOW_MS, PgStore};

impl PgStore {
    /// See [`JobHistory::run_now`](super::super::history::JobHistory::run_now).
    pub(super) fn run_now_of(&mut self, ids: &[JobId]) -> Result<Vec<JobId>, StoreError> {
        self.requeueing(|tx| {
            let sql = format!(
                "UPDATE jobs SET run_now = true, queue_seq = {NEXT_QUEUE_SEQ}
                 WHERE id = $1 AND status = 'queued'"
            );
            let mut changed = Vec::new();
            for &id in ids {
                if !changed.contains(&id) && tx.execute(&sql, &[&id])? == 1 {
                    changed.push(id);
                }
            }
            Ok(changed)
        })
    }

    /// See [`JobHistory::bump`](super::super::history::JobHistory::bump).
    pub(super) fn bump_jobs(
        &mut self,
        ids: &[JobId],
        to: Bump,
    ) -> Result<Vec<(JobId, i32)>, StoreError> {
        self.requeueing(|tx| {
            let highest: i32 = tx
                .query_one(
                    "SELECT coalesce(max(priority), 0) FROM jobs WHERE status = 'queued'",
                    &[],
                )?
                .get(0);
            let priority = to.resolve(highest);
            let sql = format!(
                "UPDATE jobs SET priority = $2, queue_seq = {NEXT_QUEUE_SEQ}
                 WHERE id = $1 AND status = 'queued'"
            );
            let mut bumped = Vec::new();
            for &id in ids {
                if !bumped.iter().any(|(b, _)| *b == id)
                    && tx.execute(&sql, &[&id, &priority])? == 1
                {
                    bumped.push((id, priority));
                }
            }
            if !bumped.is_empty() {
                notify(tx)?;
            }
            Ok(bumped)
        })
    }
}

/// Every pause in force, oldest first.
pub(super) fn pauses(client: &mut postgres::Client) -> Result<Vec<Pause>, postgres::Error> {
    let rows = client.query(
        "SELECT kind, name, since FROM paused ORDER BY since, kind, name",
        &[],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            PauseTarget::from_row(r.get(0), r.get(1)).map(|target| Pause {
                target,
                since_ms: r.get(2),
            })
        })
        .collect())
}

impl PgStore {
    /// See [`JobHistory::set_paused`](super::super::history::JobHistory::set_paused). A resume
    /// notifies waiting workers, so they claim the jobs it frees at once.
    pub(super) fn set_paused_to(
        &mut self,
        target: &PauseTarget,
        paused: bool,
    ) -> Result<bool, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let changed = if paused {
            tx.execute(
                &format!(
                    "INSERT INTO paused (kind, name, since) VALUES ($1, $2, {NOW_MS})
                     ON CONFLICT DO NOTHING"
                ),
                &[&target.kind(), &target.name()],
            )?
        } else {
            tx.execute(
                "DELETE FROM paused WHERE kind = $1 AND name = $2",
                &[&target.kind(), &target.name()],
            )?
        };
        if changed == 1 && !paused {
            notify(&mut tx)?;
        }
        tx.commit()?;
        Ok(changed == 1)
    }
}

/// [`Write::Hold`](super::super::queue::Write::Hold): a queued job's reason to wait.
pub(super) fn hold(
    tx: &mut super::cached::Cached<'_, '_>,
    id: JobId,
    reason: Option<&str>,
) -> Result<super::super::queue::Answer, postgres::Error> {
    tx.execute(
        "UPDATE jobs SET exit_status = $2 WHERE id = $1 AND status = 'queued'",
        &[&id, &reason],
    )?;
    Ok(super::super::queue::Answer::Ok)
}

/// [`Write::HoldRule`](super::super::queue::Write::HoldRule): why a rule's queued jobs wait.
pub(super) fn hold_rule(
    tx: &mut super::cached::Cached<'_, '_>,
    rule: &str,
    reason: Option<&str>,
) -> Result<super::super::queue::Answer, postgres::Error> {
    let window = super::super::control::WINDOW_REASON;
    match reason {
        Some(reason) => tx.execute(
            "UPDATE jobs SET exit_status = $2
             WHERE status = 'queued' AND rule = $1 AND NOT run_now",
            &[&rule, &reason],
        )?,
        None => tx.execute(
            "UPDATE jobs SET exit_status = NULL
             WHERE status = 'queued' AND rule = $1 AND left(exit_status, $2) = $3",
            &[&rule, &(window.chars().count() as i32), &window],
        )?,
    };
    Ok(super::super::queue::Answer::Ok)
}

/// Queued jobs no live node can take (see [`unplaceable`](super::super::control::unplaceable)).
pub(super) fn waiting_for_tags(
    client: &mut postgres::Client,
) -> Result<Vec<super::super::control::TagWait>, postgres::Error> {
    let queued: Vec<(Vec<String>, u64)> = client
        .query(
            "SELECT tags, count(*) FROM jobs WHERE status = 'queued' AND cardinality(tags) > 0
             GROUP BY tags",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
        .collect();
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    let live: Vec<Vec<String>> = client
        .query(
            "SELECT tags FROM nodes WHERE heartbeat_at > now() - $1 * interval '1 millisecond'",
            &[&(super::super::control::LIVE_MS as f64)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut waits = super::super::control::unplaceable(queued, &live);
    for wait in &mut waits {
        let limit = super::super::control::TAG_WAIT_IDS as i64;
        wait.ids = client
            .query(
                "SELECT id FROM jobs WHERE status = 'queued' AND tags = $1 ORDER BY id LIMIT $2",
                &[&wait.tags, &limit],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
    }
    Ok(waits)
}

/// Queued jobs held outside their rule's window, per rule and reason: those a watcher holds
/// (their reason recorded) and those left to workers (by the recorded windows, now).
pub(super) fn waiting_for_window(
    client: &mut postgres::Client,
) -> Result<Vec<super::super::control::WindowWait>, postgres::Error> {
    let mut waits = recorded_window_waits(client)?;
    let closed = super::super::control::closed_windows(super::lineage::rule_windows(client)?);
    for (rule, reason) in &closed {
        let jobs: i64 = client
            .query_one(
                "SELECT count(*) FROM jobs
                 WHERE status = 'queued' AND rule = $1 AND exit_status IS NULL AND NOT run_now",
                &[rule],
            )?
            .get(0);
        super::super::control::count_unrecorded(&mut waits, rule, reason, jobs as u64);
    }
    Ok(waits)
}

fn recorded_window_waits(
    client: &mut postgres::Client,
) -> Result<Vec<super::super::control::WindowWait>, postgres::Error> {
    let prefix = super::super::control::WINDOW_REASON;
    Ok(client
        .query(
            "SELECT rule, exit_status, count(*) FROM jobs
             WHERE status = 'queued' AND left(exit_status, $1) = $2
             GROUP BY rule, exit_status ORDER BY rule",
            &[&(prefix.chars().count() as i32), &prefix],
        )?
        .iter()
        .map(|r| super::super::control::WindowWait {
            rule: r.get(0),
            reason: r.get(1),
            jobs: r.get::<_, i64>(2) as u64,
        })
        .collect())
}

/// Gives queued jobs their reason to wait, as `jobs` and `job` show it: a paused rule's, else
/// the one of [`waiting_for_tags`] when no live node can take them (a window's is stored).
pub(super) fn explain_waits(
    client: &mut postgres::Client,
    rows: &mut [crate::store::JobRow],
) -> Result<(), postgres::Error> {
    if !rows.iter().any(|r| r.status == "queued") {
        return Ok(());
    }
    super::super::control::explain_pauses(&pauses(client)?, rows);
    let unexplained = |r: &crate::store::JobRow| r.status == "queued" && r.result.is_none();
    if !rows.iter().any(unexplained) {
        return Ok(());
    }
    let closed = super::super::control::closed_windows(super::lineage::rule_windows(client)?);
    if !closed.is_empty() {
        for row in rows.iter_mut().filter(|r| unexplained(r)) {
            if let Some(reason) = closed.get(&row.rule)
                && !client
                    .query_one("SELECT run_now FROM jobs WHERE id = $1", &[&row.id])?
                    .get::<_, bool>(0)
            {
                row.result = Some(reason.clone());
            }
        }
    }
    let waits = waiting_for_tags(client)?;
    if waits.is_empty() {
        return Ok(());
    }
    for row in rows.iter_mut().filter(|r| unexplained(r)) {
        let tags: Vec<String> = client
            .query_one("SELECT tags FROM jobs WHERE id = $1", &[&row.id])?
            .get(0);
        row.result = waits
            .iter()
            .find(|w| w.tags == tags)
            .map(|w| w.reason.clone());
    }
    Ok(())
}
