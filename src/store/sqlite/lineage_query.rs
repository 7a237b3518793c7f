//! The lineage and staleness queries for SQLite (`lineage`, `stale`, `rerun --stale`): the
//! look-ups the walk of `store::lineage_walk` asks for, each one prepared statement on the
//! indexes `outputs_by_job`, `job_inputs_by_file` and `jobs_by_version`.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::super::lineage::{Direction, LineageReport, StaleProduct};
use super::super::lineage_walk::{self, Key, RawEdge, RawStale, Source, Version};
use super::super::queue::RootedPath;
use super::super::{JobId, StoreError, now_ms};
use super::SqliteStore;

/// The edges into a product (`?1`, `?2`): its job's matched file, then its declared inputs.
const UP_SQL: &str = "SELECT j.id, j.rule, j.node, j.run_remote, j.finished_at, 0,
        j.ino, j.size, j.mtime_ns, f.root, f.rel, f.id, f.ino, f.size, f.mtime_ns
    FROM outputs o JOIN jobs j ON j.id = o.job_id JOIN files f ON f.id = j.file_id
    WHERE o.root = ?1 AND o.rel = ?2
    UNION ALL
    SELECT j.id, j.rule, j.node, j.run_remote, j.finished_at, 1,
        i.ino, i.size, i.mtime_ns, f.root, f.rel, f.id, f.ino, f.size, f.mtime_ns
    FROM outputs o JOIN job_inputs i ON i.job_id = o.job_id JOIN jobs j ON j.id = o.job_id
        JOIN files f ON f.id = i.file_id
    WHERE o.root = ?1 AND o.rel = ?2";

/// The edges out of files (`?1`, their ids as a JSON array): the current products of the
/// jobs that matched them, then of those that read them as a declared input, each with its
/// own file row when it has one. `CROSS JOIN`: the ids come first, whatever the planner
/// guesses of `json_each` (with `ANALYZE`'s statistics it scanned `job_inputs` for each id).
const DOWN_SQL: &str = "SELECT j.id, j.rule, j.node, j.run_remote, j.finished_at, 0,
        j.ino, j.size, j.mtime_ns, o.root, o.rel, p.id, p.ino, p.size, p.mtime_ns, f.value
    FROM json_each(?1) f CROSS JOIN jobs j ON j.file_id = f.value JOIN outputs o ON o.job_id = j.id
        LEFT JOIN files p ON p.root = o.root AND p.rel = o.rel
    UNION ALL
    SELECT j.id, j.rule, j.node, j.run_remote, j.finished_at, 1,
        i.ino, i.size, i.mtime_ns, o.root, o.rel, p.id, p.ino, p.size, p.mtime_ns, f.value
    FROM json_each(?1) f CROSS JOIN job_inputs i ON i.file_id = f.value
        JOIN jobs j ON j.id = i.job_id JOIN outputs o ON o.job_id = i.job_id
        LEFT JOIN files p ON p.root = o.root AND p.rel = o.rel";

/// Current products whose job read another version of a declared input than its current one.
const CHANGED_INPUTS_SQL: &str = "SELECT o.root, o.rel, j.id, j.rule, f.root, f.rel,
        i.ino, i.size, i.mtime_ns, f.ino, f.size, f.mtime_ns
    FROM outputs o JOIN jobs j ON j.id = o.job_id JOIN job_inputs i ON i.job_id = o.job_id
        JOIN files f ON f.id = i.file_id
    WHERE NOT (i.ino = f.ino AND i.size = f.size AND i.mtime_ns = f.mtime_ns)";

/// Current products whose job ran under another work hash than its rule's current one.
const CHANGED_RULES_SQL: &str = "SELECT o.root, o.rel, j.id, j.rule
    FROM outputs o JOIN jobs j ON j.id = o.job_id JOIN rule_defs d ON d.name = j.rule
    WHERE j.work_hash IS NOT NULL AND j.work_hash <> d.work_hash";

/// How much of the file a walk maps.
const MMAP_BYTES: i64 = 1 << 30;

struct Walk<'c>(&'c Connection);

fn version(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Version> {
    Ok((r.get(at)?, r.get(at + 1)?, r.get(at + 2)?))
}

/// An edge row of [`UP_SQL`] or [`DOWN_SQL`]: the job, then the version read, then the other
/// end and its file row.
fn raw_edge(r: &rusqlite::Row<'_>, up: bool, this: &Key) -> rusqlite::Result<RawEdge> {
    let other: Key = (r.get(9)?, r.get(10)?);
    let file = match r.get::<_, Option<i64>>(11)? {
        Some(id) => Some((id, version(r, 12)?)),
        None => None,
    };
    let from = if up { 0 } else { r.get(15)? };
    let (input, input_now, product, product_file) = if up {
        (other, file, this.clone(), None)
    } else {
        (this.clone(), None, other, file)
    };
    Ok(RawEdge {
        job: r.get(0)?,
        rule: r.get(1)?,
        node: r.get(2)?,
        run_remote: r.get(3)?,
        finished_at: r.get(4)?,
        declared: r.get(5)?,
        used: version(r, 6)?,
        input,
        from,
        input_now,
        product,
        product_file,
    })
}

impl Source for Walk<'_> {
    type Error = rusqlite::Error;

    fn rooted(&mut self, path: &Path) -> rusqlite::Result<RootedPath> {
        SqliteStore::rooted(self.0, path)
    }

    fn roots(&mut self) -> rusqlite::Result<HashMap<String, Vec<u8>>> {
        let mut stmt = self.0.prepare_cached("SELECT name, path FROM roots")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }

    fn file(&mut self, (root, rel): &Key) -> rusqlite::Result<Option<(i64, Version)>> {
        self.0
            .prepare_cached(
                "SELECT id, ino, size, mtime_ns FROM files WHERE root = ?1 AND rel = ?2",
            )?
            .query_row(params![root, rel], |r| Ok((r.get(0)?, version(r, 1)?)))
            .optional()
    }

    fn is_product(&mut self, (root, rel): &Key) -> rusqlite::Result<bool> {
        self.0
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM outputs WHERE root = ?1 AND rel = ?2)")?
            .query_row(params![root, rel], |r| r.get(0))
    }

    fn up(&mut self, product: &Key, out: &mut Vec<RawEdge>) -> rusqlite::Result<()> {
        let mut stmt = self.0.prepare_cached(UP_SQL)?;
        let mut rows = stmt.query(params![product.0, product.1])?;
        while let Some(r) = rows.next()? {
            out.push(raw_edge(r, true, product)?);
        }
        Ok(())
    }

    fn down(&mut self, file_ids: &[i64], out: &mut Vec<RawEdge>) -> rusqlite::Result<()> {
        let mut ids = String::with_capacity(file_ids.len() * 8 + 2);
        ids.push('[');
        for (n, id) in file_ids.iter().enumerate() {
            if n > 0 {
                ids.push(',');
            }
            ids.push_str(&id.to_string());
        }
        ids.push(']');
        let mut stmt = self.0.prepare_cached(DOWN_SQL)?;
        let mut rows = stmt.query([ids])?;
        // The files walked from are the caller's: their keys are not read for every edge.
        let this: Key = (String::new(), Vec::new());
        while let Some(r) = rows.next()? {
            out.push(raw_edge(r, false, &this)?);
        }
        Ok(())
    }
}

/// See [`JobHistory::lineage`](super::super::history::JobHistory::lineage).
pub(super) fn lineage(
    conn: &Connection,
    path: &Path,
    direction: Direction,
    depth: u32,
) -> Result<LineageReport, StoreError> {
    // A walk down a big tree seeks all over the file: mapped, its pages are read without a
    // system call and a copy each (the default page cache holds 2 MB of them).
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    Ok(lineage_walk::lineage(
        &mut Walk(conn),
        path,
        direction,
        depth,
    )?)
}

fn stale_rows(conn: &Connection) -> rusqlite::Result<Vec<RawStale>> {
    let mut rows = Vec::new();
    let mut stmt = conn.prepare_cached(CHANGED_INPUTS_SQL)?;
    let found = stmt.query_map([], |r| {
        Ok(RawStale {
            product: (r.get(0)?, r.get(1)?),
            job: r.get(2)?,
            rule: r.get(3)?,
            input: Some(((r.get(4)?, r.get(5)?), version(r, 6)?, version(r, 9)?)),
            rule_changed: false,
        })
    })?;
    for row in found {
        rows.push(row?);
    }
    let mut stmt = conn.prepare_cached(CHANGED_RULES_SQL)?;
    let found = stmt.query_map([], |r| {
        Ok(RawStale {
            product: (r.get(0)?, r.get(1)?),
            job: r.get(2)?,
            rule: r.get(3)?,
            input: None,
            rule_changed: true,
        })
    })?;
    for row in found {
        rows.push(row?);
    }
    Ok(rows)
}

/// See [`JobHistory::stale`](super::super::history::JobHistory::stale).
pub(super) fn stale(conn: &Connection) -> Result<Vec<StaleProduct>, StoreError> {
    let roots = Walk(conn).roots()?;
    Ok(lineage_walk::stale(roots, stale_rows(conn)?))
}

/// See [`JobHistory::rerun_stale`](super::super::history::JobHistory::rerun_stale).
pub(super) fn rerun_stale(conn: &mut Connection, rule: &str) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ids: Vec<JobId> = stale_rows(&tx)?
        .into_iter()
        .filter(|row| row.rule == rule)
        .map(|row| row.job)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let queued = super::lineage::rerun_jobs(&tx, &ids, now_ms())?;
    tx.commit()?;
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each level of a walk down is one search per id and per edge, never a scan of a table
    /// per id: also with `ANALYZE`'s statistics, which once led SQLite to scan `job_inputs`
    /// and look each row up in the ids (minutes for 50,000 of each).
    #[test]
    fn a_walk_down_searches_and_never_scans() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        super::super::schema::migrate(&mut conn, 7).expect("migrates");
        // The bench's shape, smaller: one LUT read by every job, a job and a product per
        // plate.
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO files (id, root, rel, ino, size, mtime_ns, seen_at)
                 SELECT i, 's', CAST('f' || i AS BLOB), i, 1, 1, 1 FROM n;
             INSERT INTO jobs (id, rule, rule_hash, file_id, ino, size, mtime_ns, status,
                     created_at)
                 SELECT id, 'r', 'h', id, id, 1, 1, 'done', 1 FROM files WHERE id > 1;
             INSERT INTO job_inputs (job_id, file_id, ino, size, mtime_ns)
                 SELECT id, 1, 1, 1, 1 FROM jobs;
             INSERT INTO outputs (root, rel, job_id, rule, ino, size, mtime_ns)
                 SELECT 's', CAST('o' || id AS BLOB), id, 'r', 1, 1, 1 FROM jobs;",
        )
        .expect("rows");
        for analyzed in [false, true] {
            if analyzed {
                conn.execute_batch("ANALYZE").expect("analyze");
            }
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {DOWN_SQL}"))
                .expect("explain")
                .query_map(["[1, 2]"], |r| r.get::<_, String>(3))
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("read");
            let scans: Vec<&String> = plan
                .iter()
                .filter(|p| p.starts_with("SCAN") && !p.starts_with("SCAN f"))
                .collect();
            assert!(scans.is_empty(), "analyzed: {analyzed}: {plan:?}");
        }
    }
}
