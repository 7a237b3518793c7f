//! `bump` and `pause` on SQLite: a queued job's priority, and a new `queue_seq` so the watcher
//! holding it sees the change at its next poll; the `paused` nodes and rules.

use rusqlite::{TransactionBehavior, params};

use super::super::control::{Bump, Pause, PauseTarget};
use super::super::{JobId, StoreError, now_ms};
use super::{NEXT_QUEUE_SEQ, SqliteStore};

impl SqliteStore {
    /// See [`JobHistory::run_now`](super::super::history::JobHistory::run_now).
    pub(super) fn run_now_of(&mut self, ids: &[JobId]) -> Result<Vec<JobId>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut changed = Vec::new();
        {
            let mut stmt = tx.prepare(&format!(
                "UPDATE jobs SET run_now = 1, queue_seq = {NEXT_QUEUE_SEQ}
                 WHERE id = ?1 AND status = 'queued'"
            ))?;
            for &id in ids {
                if !changed.contains(&id) && stmt.execute([id])? == 1 {
                    changed.push(id);
                }
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// See [`JobHistory::bump`](super::super::history::JobHistory::bump).
    pub(super) fn bump_jobs(
        &mut self,
        ids: &[JobId],
        to: Bump,
    ) -> Result<Vec<(JobId, i32)>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let highest: i32 = tx.query_row(
            "SELECT coalesce(max(priority), 0) FROM jobs WHERE status = 'queued'",
            [],
            |r| r.get(0),
        )?;
        let priority = to.resolve(highest);
        let mut bumped = Vec::new();
        {
            let mut stmt = tx.prepare(&format!(
                "UPDATE jobs SET priority = ?2, queue_seq = {NEXT_QUEUE_SEQ}
                 WHERE id = ?1 AND status = 'queued'"
            ))?;
            for &id in ids {
                if !bumped.iter().any(|(b, _)| *b == id)
                    && stmt.execute(params![id, priority])? == 1
                {
                    bumped.push((id, priority));
                }
            }
        }
        tx.commit()?;
        Ok(bumped)
    }
}

/// Every pause in force, oldest first.
pub(super) fn pauses(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<Pause>> {
    let mut stmt =
        conn.prepare_cached("SELECT kind, name, since FROM paused ORDER BY since, kind, name")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
    })?;
    let mut pauses = Vec::new();
    for row in rows {
        let (kind, name, since_ms) = row?;
        if let Some(target) = PauseTarget::from_row(&kind, name) {
            pauses.push(Pause { target, since_ms });
        }
    }
    Ok(pauses)
}

/// Whether `node` is paused: its claims take nothing.
pub(super) fn node_paused(conn: &rusqlite::Connection, node: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM paused WHERE kind = 'node' AND name = ?1)")?
        .query_row([node], |r| r.get(0))
}

impl SqliteStore {
    /// See [`JobHistory::set_paused`](super::super::history::JobHistory::set_paused).
    pub(super) fn set_paused_to(
        &mut self,
        target: &PauseTarget,
        paused: bool,
    ) -> Result<bool, StoreError> {
        let changed = if paused {
            self.conn.execute(
                "INSERT INTO paused (kind, name, since) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![target.kind(), target.name(), now_ms()],
            )?
        } else {
            self.conn.execute(
                "DELETE FROM paused WHERE kind = ?1 AND name = ?2",
                params![target.kind(), target.name()],
            )?
        };
        Ok(changed == 1)
    }
}

/// [`Write::Hold`](super::super::queue::Write::Hold): a queued job's reason to wait.
pub(super) fn hold(
    tx: &rusqlite::Connection,
    id: JobId,
    reason: Option<&str>,
) -> rusqlite::Result<super::super::queue::Answer> {
    tx.prepare_cached("UPDATE jobs SET exit_status = ?2 WHERE id = ?1 AND status = 'queued'")?
        .execute(params![id, reason])?;
    Ok(super::super::queue::Answer::Ok)
}

/// [`Write::HoldRule`](super::super::queue::Write::HoldRule): why a rule's queued jobs wait.
pub(super) fn hold_rule(
    tx: &rusqlite::Connection,
    rule: &str,
    reason: Option<&str>,
) -> rusqlite::Result<super::super::queue::Answer> {
    let window = super::super::control::WINDOW_REASON;
    match reason {
        Some(reason) => tx
            .prepare_cached(
                "UPDATE jobs SET exit_status = ?2
                 WHERE status = 'queued' AND rule = ?1 AND NOT run_now",
            )?
            .execute(params![rule, reason])?,
        None => tx
            .prepare_cached(
                "UPDATE jobs SET exit_status = NULL
                 WHERE status = 'queued' AND rule = ?1 AND substr(exit_status, 1, ?2) = ?3",
            )?
            .execute(params![rule, window.len() as i64, window])?,
    };
    Ok(super::super::queue::Answer::Ok)
}

/// Queued jobs held outside their rule's window, per rule and reason: those a watcher holds
/// (their reason recorded) and those left to workers (by the recorded windows, now).
pub(super) fn waiting_for_window(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<Vec<super::super::control::WindowWait>> {
    let mut waits = recorded_window_waits(conn)?;
    let closed = super::super::control::closed_windows(super::lineage::rule_windows(conn)?);
    let mut count = conn.prepare_cached(
        "SELECT count(*) FROM jobs
         WHERE status = 'queued' AND rule = ?1 AND exit_status IS NULL AND NOT run_now",
    )?;
    for (rule, reason) in &closed {
        let jobs: i64 = count.query_row([rule], |r| r.get(0))?;
        super::super::control::count_unrecorded(&mut waits, rule, reason, jobs as u64);
    }
    Ok(waits)
}

fn recorded_window_waits(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<Vec<super::super::control::WindowWait>> {
    conn.prepare_cached(
        "SELECT rule, exit_status, count(*) FROM jobs
         WHERE status = 'queued' AND substr(exit_status, 1, ?1) = ?2
         GROUP BY rule, exit_status ORDER BY rule",
    )?
    .query_map(
        params![
            super::super::control::WINDOW_REASON.len() as i64,
            super::super::control::WINDOW_REASON
        ],
        |r| {
            Ok(super::super::control::WindowWait {
                rule: r.get(0)?,
                reason: r.get(1)?,
                jobs: r.get::<_, i64>(2)? as u64,
            })
        },
    )?
    .collect()
}

/// Queued jobs no live node can take (see [`unplaceable`](super::super::control::unplaceable)).
pub(super) fn waiting_for_tags(
    conn: &rusqlite::Connection,
    now: i64,
) -> rusqlite::Result<Vec<super::super::control::TagWait>> {
    use super::encoding::decode_tags;
    let queued = conn
        .prepare_cached(
            "SELECT tags, count(*) FROM jobs WHERE status = 'queued' AND tags != '' GROUP BY tags",
        )?
        .query_map([], |r| {
            Ok((
                decode_tags(&r.get::<_, String>(0)?),
                r.get::<_, i64>(1)? as u64,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    let live = conn
        .prepare_cached("SELECT tags FROM nodes WHERE heartbeat_at >= ?1")?
        .query_map([now - super::super::control::LIVE_MS], |r| {
            Ok(decode_tags(&r.get::<_, String>(0)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut waits = super::super::control::unplaceable(queued, &live);
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM jobs WHERE status = 'queued' AND tags = ?1 ORDER BY id LIMIT ?2",
    )?;
    for wait in &mut waits {
        let tags = super::encoding::encode_tags(&wait.tags);
        let limit = super::super::control::TAG_WAIT_IDS as i64;
        wait.ids = stmt
            .query_map(params![tags, limit], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
    }
    Ok(waits)
}

/// Gives queued jobs their reason to wait, as `jobs` and `job` show it: a paused rule's, else
/// the one of [`waiting_for_tags`] when no live node can take them (a window's is stored).
pub(super) fn explain_waits(
    conn: &rusqlite::Connection,
    rows: &mut [crate::store::JobRow],
) -> rusqlite::Result<()> {
    if !rows.iter().any(|r| r.status == "queued") {
        return Ok(());
    }
    super::super::control::explain_pauses(&pauses(conn)?, rows);
    let unexplained = |r: &crate::store::JobRow| r.status == "queued" && r.result.is_none();
    if !rows.iter().any(unexplained) {
        return Ok(());
    }
    let closed = super::super::control::closed_windows(super::lineage::rule_windows(conn)?);
    if !closed.is_empty() {
        let mut run_now = conn.prepare_cached("SELECT run_now FROM jobs WHERE id = ?1")?;
        for row in rows.iter_mut().filter(|r| unexplained(r)) {
            if let Some(reason) = closed.get(&row.rule)
                && !run_now.query_row([row.id], |r| r.get::<_, bool>(0))?
            {
                row.result = Some(reason.clone());
            }
        }
    }
    let waits = waiting_for_tags(conn, now_ms())?;
    if waits.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached("SELECT tags FROM jobs WHERE id = ?1")?;
    for row in rows.iter_mut().filter(|r| unexplained(r)) {
        let tags: String = stmt.query_row([row.id], |r| r.get(0))?;
        let tags = super::encoding::decode_tags(&tags);
        row.result = waits
            .iter()
            .find(|w| w.tags == tags)
            .map(|w| w.reason.clone());
    }
    Ok(())
}
