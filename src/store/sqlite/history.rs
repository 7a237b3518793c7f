//! [`JobHistory`] for SQLite: what the operations CLI reads and changes. Paths are shown as
//! absolute paths of this node when their root is registered (`roots.path` + `rel`), else as
//! `root:rel`. Changes made here (`retry`, `rerun`, recovery elsewhere) give the jobs a fresh
//! `queue_seq`, which is how running engines notice them.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::super::history::{JobFilter, JobHistory};
use super::super::lineage::{Direction, LineageReport, StaleProduct};
use super::super::{
    FileRecord, JobDetail, JobId, JobProgress, JobRow, NodeReport, RanSteps, Status, StatusReport,
    StoreError, now_ms,
};
use super::encoding::{blob, decode_steps, lossy};
use super::{NEXT_QUEUE_SEQ, SqliteStore, display_path};
use crate::store::RunHandle;

/// The columns [`row`] reads.
const ROW_SQL: &str = "SELECT j.id, j.rule, f.root, f.rel, r.path, j.status, j.attempts,
        j.exit_status, j.created_at, j.started_at, j.finished_at,
        CASE WHEN j.status = 'done' THEN j.output END, j.node,
        CASE WHEN j.status = 'running' THEN j.progress END, j.priority
    FROM jobs j JOIN files f ON f.id = j.file_id LEFT JOIN roots r ON r.name = f.root";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let root: String = r.get(2)?;
    let rel: Vec<u8> = r.get(3)?;
    let root_path: Option<Vec<u8>> = r.get(4)?;
    Ok(JobRow {
        id: r.get(0)?,
        rule: r.get(1)?,
        path: display_path(&root, &rel, root_path.as_deref()),
        status: r.get(5)?,
        attempts: r.get::<_, i64>(6)? as u32,
        result: r.get(7)?,
        created_at: r.get(8)?,
        started_at: r.get(9)?,
        finished_at: r.get(10)?,
        output: r.get::<_, Option<Vec<u8>>>(11)?.map(|b| lossy(&b)),
        node: r.get(12)?,
        progress: JobProgress::from_text(r.get::<_, Option<String>>(13)?.as_deref()),
        priority: r.get(14)?,
    })
}

/// A file row: id, root, rel, (ino, size, mtime), baseline.
type FileRow = (i64, String, Vec<u8>, (i64, i64, i64), bool);

fn file_row(conn: &Connection, root: &str, rel: &[u8]) -> rusqlite::Result<Option<FileRow>> {
    conn.query_row(
        "SELECT id, root, rel, ino, size, mtime_ns, baseline FROM files WHERE root = ?1 AND rel = ?2",
        params![root, rel],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                (r.get(3)?, r.get(4)?, r.get(5)?),
                r.get(6)?,
            ))
        },
    )
    .optional()
}

impl JobHistory for SqliteStore {
    fn status(&self) -> Result<StatusReport, StoreError> {
        let now = now_ms();
        let mut report = StatusReport {
            running: 0,
            on_farm: 0,
            claimed: 0,
            queued: 0,
            waiting: 0,
            failed_24h: 0,
            skipped_24h: 0,
            done_1h: 0,
            done_24h: 0,
            oldest_queued_s: None,
            files: 0,
            nodes: Vec::new(),
            paused: Vec::new(),
            waiting_for_tags: Vec::new(),
            waiting_for_window: Vec::new(),
        };
        let mut stmt = self.conn.prepare(concat!(
            "SELECT status, count(*) FROM jobs WHERE ",
            active!(),
            " GROUP BY status"
        ))?;
        let counts = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for count in counts {
            let (status, n) = count?;
            match Status::parse(&status) {
                Some(Status::Queued) => report.queued = n as u64,
                Some(Status::Waiting) => report.waiting = n as u64,
                Some(Status::Claimed) => report.claimed = n as u64,
                Some(Status::Running) => report.running = n as u64,
                _ => {}
            }
        }
        let finished = |status: &str, since: i64| -> rusqlite::Result<u64> {
            self.conn.query_row(
                "SELECT count(*) FROM jobs WHERE status = ?1 AND finished_at >= ?2",
                params![status, since],
                |r| r.get::<_, i64>(0).map(|n| n as u64),
            )
        };
        report.on_farm = self.conn.query_row(
            "SELECT count(*) FROM jobs WHERE status = 'running' AND run_remote IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0).map(|n| n as u64),
        )?;
        report.failed_24h = finished("failed", now - 86_400_000)?;
        report.skipped_24h = finished("skipped", now - 86_400_000)?;
        report.done_1h = finished("done", now - 3_600_000)?;
        report.done_24h = finished("done", now - 86_400_000)?;
        let oldest: Option<i64> = self.conn.query_row(
            "SELECT min(created_at) FROM jobs WHERE status = 'queued'",
            [],
            |r| r.get(0),
        )?;
        report.oldest_queued_s = oldest.map(|t| (now - t) / 1000);
        report.files = self
            .conn
            .query_row("SELECT count(*) FROM files", [], |r| r.get::<_, i64>(0))?
            as u64;
        let mut stmt = self.conn.prepare(
            "SELECT n.name, n.heartbeat_at, n.health, n.role,
                     (SELECT count(*) FROM jobs j
                      WHERE j.status IN ('claimed', 'running') AND j.node = n.name)
                 FROM nodes n ORDER BY n.heartbeat_at DESC",
        )?;
        let nodes = stmt.query_map([], |r| {
            Ok(NodeReport {
                name: r.get(0)?,
                last_seen_s: (now - r.get::<_, i64>(1)?) / 1000,
                health: r.get(2)?,
                role: r.get(3)?,
                running: r.get::<_, i64>(4)? as u64,
                paused: false,
            })
        })?;
        report.nodes = nodes.collect::<rusqlite::Result<_>>()?;
        report.paused = super::control::pauses(&self.conn)?;
        report.waiting_for_tags = super::control::waiting_for_tags(&self.conn, now)?;
        report.waiting_for_window = super::control::waiting_for_window(&self.conn)?;
        report.mark_paused_nodes();
        Ok(report)
    }

    fn jobs(&self, filter: &JobFilter<'_>) -> Result<Vec<JobRow>, StoreError> {
        // The cursor as a plain range on the id, never `?5 IS NULL OR ...`: SQLite then walks
        // the primary key from the cursor down (a page deep in 100,000 jobs: 1 ms, not 70).
        let sql = format!(
            "{ROW_SQL} WHERE (?1 IS NULL OR j.status = ?1) AND (?2 IS NULL OR j.rule = ?2)
                 AND (?3 IS NULL OR j.created_at >= ?3)
                 AND j.id < coalesce(?5, 9223372036854775807)
             ORDER BY j.id DESC LIMIT ?4"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![
                filter.status.map(Status::as_str),
                filter.rule,
                filter.since_ms,
                filter.limit as i64,
                filter.before
            ],
            row,
        )?;
        let mut rows = rows.collect::<Result<Vec<_>, _>>()?;
        super::control::explain_waits(&self.conn, &mut rows)?;
        Ok(rows)
    }

    fn count_jobs(&self, filter: &JobFilter<'_>) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM jobs j
                 WHERE (?1 IS NULL OR j.status = ?1) AND (?2 IS NULL OR j.rule = ?2)
                     AND (?3 IS NULL OR j.created_at >= ?3)
                     AND j.id < coalesce(?5, 9223372036854775807)
                 LIMIT ?4)",
            )?
            .query_row(
                params![
                    filter.status.map(Status::as_str),
                    filter.rule,
                    filter.since_ms,
                    filter.limit as i64,
                    filter.before
                ],
                |r| r.get(0),
            )?;
        Ok(n as usize)
    }

    fn job(&self, id: JobId) -> Result<Option<JobDetail>, StoreError> {
        let sql = format!("{ROW_SQL} WHERE j.id = ?1");
        let Some(mut job_row) = self.conn.query_row(&sql, [id], row).optional()? else {
            return Ok(None);
        };
        super::control::explain_waits(&self.conn, std::slice::from_mut(&mut job_row))?;
        let (rule_hash, steps, (ino, size, mtime), ran, remote): (
            String,
            Option<Vec<u8>>,
            _,
            _,
            Option<String>,
        ) = self.conn.query_row(
            "SELECT rule_hash, steps, ino, size, mtime_ns, ran_steps, ran_node,
                     coalesce(ran_token = token, 0), run_remote
                 FROM jobs WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    (
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ),
                    (
                        r.get::<_, Option<Vec<u8>>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, bool>(7)?,
                    ),
                    r.get(8)?,
                ))
            },
        )?;
        let raw_steps = steps.map(|s| decode_steps(&s)).unwrap_or_default();
        let ran = RanSteps::recorded(ran.0, ran.1, ran.2, &raw_steps);
        Ok(Some(JobDetail {
            row: job_row,
            rule_hash,
            // The device is no part of a version here; shown as 0.
            input: Some((0, ino as u64, size as u64, mtime)),
            steps: raw_steps
                .iter()
                .map(|s| s.iter().map(|a| lossy(a)).collect())
                .collect(),
            raw_steps,
            ran,
            farm_run: crate::store::farm_run(remote),
            used: super::lineage::run_record(&self.conn, id)?,
        }))
    }

    fn file(&self, path: &Path) -> Result<Option<FileRecord>, StoreError> {
        let at = SqliteStore::rooted(&self.conn, path)?;
        let abs = blob(path);
        let rel = blob(&at.rel);
        let mut found = file_row(&self.conn, &at.root, rel)?;
        if found.is_none() && !at.root.is_empty() {
            // Recorded by the previous release and not adopted yet.
            found = file_row(&self.conn, "", abs)?;
        }
        let output = |root: &str, rel: &[u8]| {
            self.conn
                .query_row(
                    "SELECT rule, job_id FROM outputs WHERE root = ?1 AND rel = ?2",
                    params![root, rel],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
        };
        let mut produced_by: Option<(String, JobId)> = output(&at.root, rel)?;
        if produced_by.is_none() && !at.root.is_empty() {
            produced_by = output("", abs)?;
        }
        let shown = lossy(abs);
        let Some((id, _, _, (ino, size, mtime), baseline)) = found else {
            return Ok(produced_by.map(|p| FileRecord {
                path: shown,
                version: None,
                baseline: false,
                jobs: Vec::new(),
                produced_by: Some(p),
            }));
        };
        let sql = format!("{ROW_SQL} WHERE j.file_id = ?1 ORDER BY j.id DESC");
        let mut stmt = self.conn.prepare(&sql)?;
        let jobs = stmt.query_map([id], row)?.collect::<Result<_, _>>()?;
        Ok(Some(FileRecord {
            path: shown,
            version: Some((0, ino as u64, size as u64, mtime)),
            baseline,
            jobs,
            produced_by,
        }))
    }

    fn rule_names(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT rule FROM jobs ORDER BY rule")?;
        let names = stmt.query_map([], |r| r.get(0))?;
        Ok(names.collect::<Result<_, _>>()?)
    }

    fn counts_by_rule_and_status(&self) -> Result<Vec<(String, Status, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT rule, status, count(*) FROM jobs GROUP BY rule, status")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut counts = Vec::new();
        for row in rows {
            let (rule, status, n) = row?;
            // A status this build does not know (a newer schema) is not a count it can name.
            if let Some(status) = Status::parse(&status) {
                counts.push((rule, status, n as u64));
            }
        }
        Ok(counts)
    }

    fn retry(
        &mut self,
        ids: &[JobId],
        failed_of_rule: Option<Option<&str>>,
    ) -> Result<Vec<JobId>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut targets: Vec<JobId> = ids.to_vec();
        if let Some(rule) = failed_of_rule {
            let mut stmt = tx.prepare(
                "SELECT id FROM jobs WHERE status = 'failed' AND (?1 IS NULL OR rule = ?1)
                 ORDER BY id",
            )?;
            let found = stmt.query_map(params![rule], |r| r.get(0))?;
            targets.extend(found.collect::<Result<Vec<JobId>, _>>()?);
        }
        let mut requeued = Vec::new();
        {
            // No steps: the engine plans it again with the current rules, so a fixed rule
            // takes effect; no published product, which the next attempt would only copy.
            let mut stmt = tx.prepare(&format!(
                "UPDATE jobs SET status = 'queued', steps = NULL, not_before = 0, attempts = 0,
                     queue_seq = {NEXT_QUEUE_SEQ}, publish_ino = NULL, publish_size = NULL,
                     publish_mtime_ns = NULL, delivered_ino = NULL, delivered_size = NULL,
                     delivered_mtime_ns = NULL
                 WHERE id = ?1 AND status IN ('failed', 'cancelled')"
            ))?;
            for id in targets {
                if !requeued.contains(&id) && stmt.execute([id])? == 1 {
                    requeued.push(id);
                }
            }
        }
        tx.commit()?;
        Ok(requeued)
    }

    fn notify(&mut self, paths: &[std::path::PathBuf]) -> Result<Vec<bool>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rooted = paths
            .iter()
            .map(|path| SqliteStore::rooted(&tx, path))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let taken: Vec<bool> = rooted.iter().map(|at| !at.root.is_empty()).collect();
        if taken.iter().all(|t| *t) {
            for at in &rooted {
                tx.prepare_cached("INSERT INTO notices (root, rel, at) VALUES (?1, ?2, ?3)")?
                    .execute(params![at.root, blob(&at.rel), now_ms()])?;
            }
            tx.commit()?;
        }
        Ok(taken)
    }

    fn cancel(&mut self, ids: &[JobId]) -> Result<Vec<(JobId, Option<RunHandle>)>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut cancelled = Vec::new();
        {
            let mut stmt = tx.prepare(concat!(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?2,
                     exit_status = 'cancelled by a user'
                 WHERE id = ?1 AND ",
                active!(),
                " RETURNING pgid, leader_start, boot_id, run_remote"
            ))?;
            for &id in ids {
                let group = stmt
                    .query_row(params![id, now_ms()], |r| {
                        Ok(RunHandle::from_columns(
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                        ))
                    })
                    .optional()?;
                if let Some(group) = group {
                    cancelled.push((id, group));
                }
            }
        }
        tx.commit()?;
        Ok(cancelled)
    }

    fn rerun(&mut self, rule: &str, since_ms: Option<i64>) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // A new generation of the file's latest version: the unique index then holds it beside
        // the jobs that ran before. No steps: the engine plans it with the current rules.
        let inserted = tx.execute(
            &format!(
                "INSERT INTO jobs (rule, rule_hash, file_id, ino, size, mtime_ns, generation,
                     status, created_at, queue_seq)
                 SELECT ?1, 'rerun', f.id, f.ino, f.size, f.mtime_ns,
                     coalesce((SELECT max(g.generation) + 1 FROM jobs g WHERE g.file_id = f.id
                         AND g.rule = ?1 AND g.ino = f.ino AND g.size = f.size
                         AND g.mtime_ns = f.mtime_ns), 0),
                     'queued', ?3, {NEXT_QUEUE_SEQ}
                 FROM files f
                 WHERE f.id IN (SELECT file_id FROM jobs WHERE rule = ?1
                         AND (?2 IS NULL OR created_at >= ?2))
                     AND NOT EXISTS (SELECT 1 FROM jobs q WHERE q.file_id = f.id AND q.rule = ?1
                         AND {active})",
                active = active!("q.")
            ),
            params![rule, since_ms, now_ms()],
        )?;
        tx.commit()?;
        Ok(inserted)
    }

    fn lineage(
        &self,
        path: &Path,
        direction: Direction,
        depth: u32,
    ) -> Result<LineageReport, StoreError> {
        super::lineage_query::lineage(&self.conn, path, direction, depth)
    }

    fn stale(&self) -> Result<Vec<StaleProduct>, StoreError> {
        super::lineage_query::stale(&self.conn)
    }

    fn rerun_stale(&mut self, rule: &str) -> Result<usize, StoreError> {
        super::lineage_query::rerun_stale(&mut self.conn, rule)
    }
    fn bump(
        &mut self,
        ids: &[JobId],
        to: crate::store::control::Bump,
    ) -> Result<Vec<(JobId, i32)>, StoreError> {
        self.bump_jobs(ids, to)
    }

    fn set_paused(
        &mut self,
        target: &crate::store::control::PauseTarget,
        paused: bool,
    ) -> Result<bool, StoreError> {
        self.set_paused_to(target, paused)
    }

    fn run_now(&mut self, ids: &[JobId]) -> Result<Vec<JobId>, StoreError> {
        self.run_now_of(ids)
    }
}
