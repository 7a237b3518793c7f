//! [`JobHistory`] for PostgreSQL: what the operations CLI reads and changes, from any machine.
//! Paths are shown as absolute paths of this node when it mounts their root (else another
//! node's mount), else as `root:rel`. `retry` and `rerun` give the jobs a fresh `queue_seq`
//! under the queue lock and notify the nodes listening; times are the database's.

use std::path::Path;

use postgres::Row;

use super::super::encoding::{blob, decode_steps, display_path, lossy};
use super::super::history::{JobFilter, JobHistory};
use super::super::lineage::{Direction, LineageReport, StaleProduct};
use super::super::{
    FileRecord, JobDetail, JobId, JobProgress, JobRow, NodeReport, RanSteps, Status, StatusReport,
    StoreError,
};
use super::wake::notify;
use super::{NEXT_QUEUE_SEQ, NOW_MS, PgStore, root_path_sql, rooted};
use crate::store::RunHandle;

/// The columns [`row`] reads; `$1` is this node's name.
fn row_sql() -> String {
    format!(
        "SELECT j.id, j.rule, f.root, f.rel, {}, j.status, j.attempts,
            j.exit_status, j.created_at, j.started_at, j.finished_at,
            CASE WHEN j.status = 'done' THEN j.output END, j.node,
            CASE WHEN j.status = 'running' THEN j.progress END, j.priority
        FROM jobs j JOIN files f ON f.id = j.file_id",
        root_path_sql("f.root", "$1")
    )
}

fn row(r: &Row) -> JobRow {
    let root: String = r.get(2);
    let rel: Vec<u8> = r.get(3);
    let root_path: Option<Vec<u8>> = r.get(4);
    JobRow {
        id: r.get(0),
        rule: r.get(1),
        path: display_path(&root, &rel, root_path.as_deref()),
        status: r.get(5),
        attempts: r.get::<_, i32>(6) as u32,
        result: r.get(7),
        created_at: r.get(8),
        started_at: r.get(9),
        finished_at: r.get(10),
        output: r.get::<_, Option<Vec<u8>>>(11).map(|b| lossy(&b)),
        node: r.get(12),
        progress: JobProgress::from_text(r.get::<_, Option<String>>(13).as_deref()),
        priority: r.get(14),
    }
}

impl JobHistory for PgStore {
    fn status(&self) -> Result<StatusReport, StoreError> {
        let mut client = self.client()?;
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
        let counts = client.query(
            "SELECT status, count(*) FROM jobs
             WHERE status IN ('waiting', 'queued', 'claimed', 'running') GROUP BY status",
            &[],
        )?;
        for count in counts {
            let n = count.get::<_, i64>(1) as u64;
            match Status::parse(count.get(0)) {
                Some(Status::Queued) => report.queued = n,
                Some(Status::Waiting) => report.waiting = n,
                Some(Status::Claimed) => report.claimed = n,
                Some(Status::Running) => report.running = n,
                _ => {}
            }
        }
        let totals = client.query_one(
            &format!(
                "SELECT
                     count(*) FILTER (WHERE status = 'failed' AND finished_at >= {NOW_MS} - 86400000),
                     count(*) FILTER (WHERE status = 'done' AND finished_at >= {NOW_MS} - 3600000),
                     count(*) FILTER (WHERE status = 'done' AND finished_at >= {NOW_MS} - 86400000),
                     count(*) FILTER (WHERE status = 'skipped')
                 FROM jobs WHERE finished_at >= {NOW_MS} - 86400000"
            ),
            &[],
        )?;
        report.on_farm = client
            .query_one(
                "SELECT count(*) FROM jobs WHERE status = 'running' AND run_remote IS NOT NULL",
                &[],
            )?
            .get::<_, i64>(0) as u64;
        report.failed_24h = totals.get::<_, i64>(0) as u64;
        report.done_1h = totals.get::<_, i64>(1) as u64;
        report.done_24h = totals.get::<_, i64>(2) as u64;
        report.skipped_24h = totals.get::<_, i64>(3) as u64;
        report.oldest_queued_s = client
            .query_one(
                &format!(
                    "SELECT ({NOW_MS} - min(created_at)) / 1000 FROM jobs WHERE status = 'queued'"
                ),
                &[],
            )?
            .get(0);
        report.files = client
            .query_one("SELECT count(*) FROM files", &[])?
            .get::<_, i64>(0) as u64;
        let nodes = client.query(
            "SELECT n.name, floor(extract(epoch from now() - n.heartbeat_at))::bigint, n.health,
                 n.role, (SELECT count(*) FROM jobs j
                     WHERE j.status IN ('claimed', 'running') AND j.node = n.name)
             FROM nodes n ORDER BY n.heartbeat_at DESC",
            &[],
        )?;
        report.nodes = nodes
            .into_iter()
            .map(|r| NodeReport {
                name: r.get(0),
                last_seen_s: r.get(1),
                health: r.get(2),
                role: r.get(3),
                running: r.get::<_, i64>(4) as u64,
                paused: false,
            })
            .collect();
        report.paused = super::control::pauses(&mut client)?;
        report.waiting_for_tags = super::control::waiting_for_tags(&mut client)?;
        report.waiting_for_window = super::control::waiting_for_window(&mut client)?;
        report.mark_paused_nodes();
        Ok(report)
    }

    fn jobs(&self, filter: &JobFilter<'_>) -> Result<Vec<JobRow>, StoreError> {
        let sql = format!(
            "{} WHERE ($2::text IS NULL OR j.status = $2::text)
                 AND ($3::text IS NULL OR j.rule = $3::text)
                 AND ($4::bigint IS NULL OR j.created_at >= $4::bigint)
                 AND j.id < coalesce($6::bigint, 9223372036854775807)
             ORDER BY j.id DESC LIMIT $5",
            row_sql()
        );
        let rows = self.client()?.query(
            &sql,
            &[
                &self.node,
                &filter.status.map(Status::as_str),
                &filter.rule,
                &filter.since_ms,
                &(filter.limit as i64),
                &filter.before,
            ],
        )?;
        let mut rows: Vec<JobRow> = rows.iter().map(row).collect();
        super::control::explain_waits(&mut *self.client()?, &mut rows)?;
        Ok(rows)
    }

    fn count_jobs(&self, filter: &JobFilter<'_>) -> Result<usize, StoreError> {
        let n: i64 = self
            .client()?
            .query_one(
                "SELECT count(*) FROM (SELECT 1 FROM jobs j
                 WHERE ($1::text IS NULL OR j.status = $1::text)
                     AND ($2::text IS NULL OR j.rule = $2::text)
                     AND ($3::bigint IS NULL OR j.created_at >= $3::bigint)
                     AND j.id < coalesce($5::bigint, 9223372036854775807)
                 LIMIT $4) AS listed",
                &[
                    &filter.status.map(Status::as_str),
                    &filter.rule,
                    &filter.since_ms,
                    &(filter.limit as i64),
                    &filter.before,
                ],
            )?
            .get(0);
        Ok(n as usize)
    }

    fn job(&self, id: JobId) -> Result<Option<JobDetail>, StoreError> {
        let mut client = self.client()?;
        let sql = format!("{} WHERE j.id = $2", row_sql());
        let Some(found) = client.query_opt(&sql, &[&self.node, &id])? else {
            return Ok(None);
        };
        let detail = client.query_one(
            "SELECT rule_hash, steps, ino, size, mtime_ns, ran_steps, ran_node,
                 ran_token = token, run_remote
             FROM jobs WHERE id = $1",
            &[&id],
        )?;
        let steps: Option<Vec<u8>> = detail.get(1);
        let raw_steps = steps.map(|s| decode_steps(&s)).unwrap_or_default();
        let ran = RanSteps::recorded(
            detail.get(5),
            detail.get(6),
            detail.get::<_, Option<bool>>(7).unwrap_or(false),
            &raw_steps,
        );
        let mut job_row = row(&found);
        super::control::explain_waits(&mut client, std::slice::from_mut(&mut job_row))?;
        Ok(Some(JobDetail {
            row: job_row,
            rule_hash: detail.get(0),
            // The device is no part of a version here; shown as 0.
            input: Some((
                0,
                detail.get::<_, i64>(2) as u64,
                detail.get::<_, i64>(3) as u64,
                detail.get(4),
            )),
            steps: raw_steps
                .iter()
                .map(|s| s.iter().map(|a| lossy(a)).collect())
                .collect(),
            raw_steps,
            ran,
            farm_run: crate::store::farm_run(detail.get(8)),
            used: super::lineage::run_record(&mut *client, &self.node, id)?,
        }))
    }

    fn file(&self, path: &Path) -> Result<Option<FileRecord>, StoreError> {
        let mut client = self.client()?;
        let at = rooted(&mut *client, &self.node, path)?;
        let rel = blob(&at.rel);
        let found = client.query_opt(
            "SELECT id, ino, size, mtime_ns, baseline FROM files WHERE root = $1 AND rel = $2",
            &[&at.root, &rel],
        )?;
        let produced_by: Option<(String, JobId)> = client
            .query_opt(
                "SELECT rule, job_id FROM outputs WHERE root = $1 AND rel = $2",
                &[&at.root, &rel],
            )?
            .map(|r| (r.get(0), r.get(1)));
        let shown = lossy(blob(path));
        let Some(found) = found else {
            return Ok(produced_by.map(|p| FileRecord {
                path: shown,
                version: None,
                baseline: false,
                jobs: Vec::new(),
                produced_by: Some(p),
            }));
        };
        let id: i64 = found.get(0);
        let sql = format!("{} WHERE j.file_id = $2 ORDER BY j.id DESC", row_sql());
        let jobs = client.query(&sql, &[&self.node, &id])?;
        Ok(Some(FileRecord {
            path: shown,
            version: Some((
                0,
                found.get::<_, i64>(1) as u64,
                found.get::<_, i64>(2) as u64,
                found.get(3),
            )),
            baseline: found.get(4),
            jobs: jobs.iter().map(row).collect(),
            produced_by,
        }))
    }

    fn rule_names(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client()?
            .query("SELECT DISTINCT rule FROM jobs ORDER BY rule", &[])?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    fn counts_by_rule_and_status(&self) -> Result<Vec<(String, Status, u64)>, StoreError> {
        let rows = self.client()?.query(
            "SELECT rule, status, count(*) FROM jobs GROUP BY rule, status",
            &[],
        )?;
        // A status this build does not know (a newer schema) is not a count it can name.
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let status = Status::parse(r.get(1))?;
                Some((r.get(0), status, r.get::<_, i64>(2) as u64))
            })
            .collect())
    }

    fn retry(
        &mut self,
        ids: &[JobId],
        failed_of_rule: Option<Option<&str>>,
    ) -> Result<Vec<JobId>, StoreError> {
        self.requeueing(|tx| {
            let mut targets: Vec<JobId> = ids.to_vec();
            if let Some(rule) = failed_of_rule {
                let found = tx.query(
                    "SELECT id FROM jobs WHERE status = 'failed'
                         AND ($1::text IS NULL OR rule = $1::text) ORDER BY id",
                    &[&rule],
                )?;
                targets.extend(found.iter().map(|r| r.get::<_, JobId>(0)));
            }
            // No steps: the engine plans it again with the current rules, so a fixed rule
            // takes effect; no published product, which the next attempt would only copy.
            let sql = format!(
                "UPDATE jobs SET status = 'queued', steps = NULL, not_before = 0,
                     due_at = '-infinity', attempts = 0, queue_seq = {NEXT_QUEUE_SEQ},
                     publish_ino = NULL, publish_size = NULL, publish_mtime_ns = NULL,
                     delivered_ino = NULL, delivered_size = NULL, delivered_mtime_ns = NULL
                 WHERE id = $1 AND status IN ('failed', 'cancelled')"
            );
            let mut requeued = Vec::new();
            for id in targets {
                if !requeued.contains(&id) && tx.execute(&sql, &[&id])? == 1 {
                    requeued.push(id);
                }
            }
            if !requeued.is_empty() {
                notify(tx)?;
            }
            Ok(requeued)
        })
    }

    fn notify(&mut self, paths: &[std::path::PathBuf]) -> Result<Vec<bool>, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let mut rooted_paths = Vec::with_capacity(paths.len());
        for path in paths {
            rooted_paths.push(rooted(&mut tx, &self.node, path)?);
        }
        let taken: Vec<bool> = rooted_paths.iter().map(|at| !at.root.is_empty()).collect();
        if taken.iter().all(|t| *t) {
            for at in &rooted_paths {
                tx.execute(
                    &format!("INSERT INTO notices (root, rel, at) VALUES ($1, $2, {NOW_MS})"),
                    &[&at.root, &blob(&at.rel)],
                )?;
            }
            tx.commit()?;
        }
        Ok(taken)
    }

    fn cancel(&mut self, ids: &[JobId]) -> Result<Vec<(JobId, Option<RunHandle>)>, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let mut cancelled = Vec::new();
        for &id in ids {
            let found = tx.query_opt(
                &format!(
                    "UPDATE jobs SET status = 'cancelled', finished_at = {NOW_MS},
                         exit_status = 'cancelled by a user'
                     WHERE id = $1 AND status IN ('waiting', 'queued', 'claimed', 'running')
                     RETURNING pgid, leader_start, boot_id, run_remote"
                ),
                &[&id],
            )?;
            if let Some(r) = found {
                cancelled.push((
                    id,
                    RunHandle::from_columns(r.get(0), r.get(1), r.get(2), r.get(3)),
                ));
            }
        }
        tx.commit()?;
        Ok(cancelled)
    }

    fn rerun(&mut self, rule: &str, since_ms: Option<i64>) -> Result<usize, StoreError> {
        self.requeueing(|tx| {
            // A new generation of the file's latest version: the unique index then holds it
            // beside the jobs that ran before. No steps: the engine plans it with the current
            // rules.
            let inserted = tx.execute(
                &format!(
                    "INSERT INTO jobs (rule, rule_hash, file_id, ino, size, mtime_ns, generation,
                         status, created_at, queue_seq)
                     SELECT $1::text, 'rerun', f.id, f.ino, f.size, f.mtime_ns,
                         coalesce((SELECT max(g.generation) + 1 FROM jobs g WHERE g.file_id = f.id
                             AND g.rule = $1::text AND g.ino = f.ino AND g.size = f.size
                             AND g.mtime_ns = f.mtime_ns), 0),
                         'queued', {NOW_MS}, {NEXT_QUEUE_SEQ}
                     FROM files f
                     WHERE f.id IN (SELECT file_id FROM jobs WHERE rule = $1::text
                             AND ($2::bigint IS NULL OR created_at >= $2::bigint))
                         AND NOT EXISTS (SELECT 1 FROM jobs q WHERE q.file_id = f.id
                             AND q.rule = $1::text AND q.status IN ('waiting', 'queued', 'claimed', 'running'))"
                ),
                &[&rule as &(dyn postgres::types::ToSql + Sync), &since_ms],
            )?;
            if inserted > 0 {
                notify(tx)?;
            }
            Ok(inserted as usize)
        })
    }

    fn lineage(
        &self,
        path: &Path,
        direction: Direction,
        depth: u32,
    ) -> Result<LineageReport, StoreError> {
        self.lineage_walk(path, direction, depth)
    }

    fn stale(&self) -> Result<Vec<StaleProduct>, StoreError> {
        self.stale_products()
    }

    fn rerun_stale(&mut self, rule: &str) -> Result<usize, StoreError> {
        self.rerun_stale_of(rule)
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
