//! The lineage and staleness queries for PostgreSQL (`lineage`, `stale`, `rerun --stale`), the
//! same as SQLite's (`sqlite/lineage_query.rs`): the look-ups the walk of
//! `store::lineage_walk` asks for, each statement prepared once per query.

use std::collections::HashMap;
use std::path::Path;

use postgres::{Client, Row, Statement, Transaction};

use super::super::lineage::{Direction, LineageReport, StaleProduct};
use super::super::lineage_walk::{self, Key, RawEdge, RawStale, Source, Version};
use super::super::queue::RootedPath;
use super::super::{JobId, StoreError};
use super::wake::notify;
use super::{PgStore, rooted};

/// The edges into a product (`$1`, `$2`): its job's matched file, then its declared inputs.
const UP_SQL: &str = "SELECT j.id, j.rule, j.node, j.run_remote, j.finished_at, false,
        j.ino, j.size, j.mtime_ns, f.root, f.rel, f.id, f.ino, f.size, f.mtime_ns
    FROM outputs o JOIN jobs j ON j.id = o.job_id JOIN files f ON f.id = j.file_id
    WHERE o.root = $1 AND o.rel = $2
    UNION ALL
    SELECT j.id, j.rule, j.node, j.run_remote, j.finished_at, true,
        i.ino, i.size, i.mtime_ns, f.root, f.rel, f.id, f.ino, f.size, f.mtime_ns
    FROM outputs o JOIN job_inputs i ON i.job_id = o.job_id JOIN jobs j ON j.id = o.job_id
        JOIN files f ON f.id = i.file_id
    WHERE o.root = $1 AND o.rel = $2";

/// The edges out of files (`$1`, their ids): the current products of the jobs that matched
/// them, then of those that read them as a declared input, each with its own file row when it
/// has one.
const DOWN_SQL: &str = "SELECT j.id, j.rule, j.node, j.run_remote, j.finished_at, false,
        j.ino, j.size, j.mtime_ns, o.root, o.rel, p.id, p.ino, p.size, p.mtime_ns, j.file_id
    FROM jobs j JOIN outputs o ON o.job_id = j.id
        LEFT JOIN files p ON p.root = o.root AND p.rel = o.rel
    WHERE j.file_id = ANY($1)
    UNION ALL
    SELECT j.id, j.rule, j.node, j.run_remote, j.finished_at, true,
        i.ino, i.size, i.mtime_ns, o.root, o.rel, p.id, p.ino, p.size, p.mtime_ns, i.file_id
    FROM job_inputs i JOIN jobs j ON j.id = i.job_id JOIN outputs o ON o.job_id = i.job_id
        LEFT JOIN files p ON p.root = o.root AND p.rel = o.rel
    WHERE i.file_id = ANY($1)";

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

/// Where each root is mounted, this node's mount first.
const ROOTS_SQL: &str = "SELECT DISTINCT ON (name) name, path FROM roots
    ORDER BY name, (node = $1) DESC, seen_at DESC NULLS LAST";

struct Walk<'c> {
    client: &'c mut Client,
    node: &'c str,
    up: Statement,
    down: Statement,
    file: Statement,
    product: Statement,
}

fn version(r: &Row, at: usize) -> Version {
    (r.get(at), r.get(at + 1), r.get(at + 2))
}

fn raw_edge(r: &Row, up: bool, this: &Key) -> RawEdge {
    let other: Key = (r.get(9), r.get(10));
    let file = r.get::<_, Option<i64>>(11).map(|id| (id, version(r, 12)));
    let from = if up { 0 } else { r.get(15) };
    let (input, input_now, product, product_file) = if up {
        (other, file, this.clone(), None)
    } else {
        (this.clone(), None, other, file)
    };
    RawEdge {
        job: r.get(0),
        rule: r.get(1),
        node: r.get(2),
        run_remote: r.get(3),
        finished_at: r.get(4),
        declared: r.get(5),
        used: version(r, 6),
        input,
        from,
        input_now,
        product,
        product_file,
    }
}

impl Source for Walk<'_> {
    type Error = postgres::Error;

    fn rooted(&mut self, path: &Path) -> Result<RootedPath, postgres::Error> {
        rooted(self.client, self.node, path)
    }

    fn roots(&mut self) -> Result<HashMap<String, Vec<u8>>, postgres::Error> {
        roots(self.client, self.node)
    }

    fn file(&mut self, (root, rel): &Key) -> Result<Option<(i64, Version)>, postgres::Error> {
        Ok(self
            .client
            .query_opt(&self.file, &[root, rel])?
            .map(|r| (r.get(0), version(&r, 1))))
    }

    fn is_product(&mut self, (root, rel): &Key) -> Result<bool, postgres::Error> {
        Ok(self
            .client
            .query_opt(&self.product, &[root, rel])?
            .is_some())
    }

    fn up(&mut self, product: &Key, out: &mut Vec<RawEdge>) -> Result<(), postgres::Error> {
        for r in self.client.query(&self.up, &[&product.0, &product.1])? {
            out.push(raw_edge(&r, true, product));
        }
        Ok(())
    }

    fn down(&mut self, file_ids: &[i64], out: &mut Vec<RawEdge>) -> Result<(), postgres::Error> {
        let this: Key = (String::new(), Vec::new());
        for r in self.client.query(&self.down, &[&file_ids])? {
            out.push(raw_edge(&r, false, &this));
        }
        Ok(())
    }
}

fn roots(
    client: &mut impl postgres::GenericClient,
    node: &str,
) -> Result<HashMap<String, Vec<u8>>, postgres::Error> {
    Ok(client
        .query(ROOTS_SQL, &[&node])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

impl PgStore {
    /// See [`JobHistory::lineage`](super::super::history::JobHistory::lineage).
    pub(super) fn lineage_walk(
        &self,
        path: &Path,
        direction: Direction,
        depth: u32,
    ) -> Result<LineageReport, StoreError> {
        let mut client = self.client()?;
        let up = client.prepare(UP_SQL)?;
        let down = client.prepare(DOWN_SQL)?;
        let file = client
            .prepare("SELECT id, ino, size, mtime_ns FROM files WHERE root = $1 AND rel = $2")?;
        let product = client.prepare("SELECT 1 FROM outputs WHERE root = $1 AND rel = $2")?;
        let mut walk = Walk {
            client: &mut client,
            node: &self.node,
            up,
            down,
            file,
            product,
        };
        Ok(lineage_walk::lineage(&mut walk, path, direction, depth)?)
    }

    /// See [`JobHistory::stale`](super::super::history::JobHistory::stale).
    pub(super) fn stale_products(&self) -> Result<Vec<StaleProduct>, StoreError> {
        let mut client = self.client()?;
        let roots = roots(&mut *client, &self.node)?;
        let rows = stale_rows(&mut *client)?;
        Ok(lineage_walk::stale(roots, rows))
    }

    /// See [`JobHistory::rerun_stale`](super::super::history::JobHistory::rerun_stale).
    pub(super) fn rerun_stale_of(&mut self, rule: &str) -> Result<usize, StoreError> {
        self.requeueing(|tx: &mut Transaction<'_>| {
            let mut ids: Vec<JobId> = stale_rows(tx)?
                .into_iter()
                .filter(|row| row.rule == rule)
                .map(|row| row.job)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let sql = super::lineage::rerun_sql();
            let mut queued = 0;
            for id in &ids {
                queued += tx.execute(&sql, &[id])? as usize;
            }
            if queued > 0 {
                notify(tx)?;
            }
            Ok(queued)
        })
    }
}

fn stale_rows(client: &mut impl postgres::GenericClient) -> Result<Vec<RawStale>, postgres::Error> {
    let mut rows: Vec<RawStale> = client
        .query(CHANGED_INPUTS_SQL, &[])?
        .iter()
        .map(|r| RawStale {
            product: (r.get(0), r.get(1)),
            job: r.get(2),
            rule: r.get(3),
            input: Some(((r.get(4), r.get(5)), version(r, 6), version(r, 9))),
            rule_changed: false,
        })
        .collect();
    rows.extend(
        client
            .query(CHANGED_RULES_SQL, &[])?
            .iter()
            .map(|r| RawStale {
                product: (r.get(0), r.get(1)),
                job: r.get(2),
                rule: r.get(3),
                input: None,
                rule_changed: true,
            }),
    );
    Ok(rows)
}
