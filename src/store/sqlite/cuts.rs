//! [`CutStore`] for SQLite: a revision is one `cuts` row and its shots' `cut_shots` rows,
//! written in one `BEGIN IMMEDIATE` transaction that first checks the revision is the next.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::super::StoreError;
use super::super::cuts::{CutRevision, CutStore, CutSummary, ShotFrames, from_json, to_json};
use super::SqliteStore;

/// The columns [`revision`] reads.
const REVISION_SQL: &str =
    "SELECT name, revision, imported_at, source, hash, fps, shots, unmatched FROM cuts";

/// A `cuts` row; its JSON is read by the caller, which can report a bad one by name.
type RawRevision = (String, i64, i64, String, String, String, String, String);

fn raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRevision> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn revision(raw: RawRevision) -> Result<CutRevision, StoreError> {
    let (name, revision, imported_at, source, hash, fps, shots, unmatched) = raw;
    Ok(CutRevision {
        shots: from_json(&name, revision, &shots)?,
        unmatched: from_json(&name, revision, &unmatched)?,
        name,
        revision,
        imported_at,
        source,
        hash,
        fps,
    })
}

impl CutStore for SqliteStore {
    fn cuts(&self) -> Result<Vec<CutSummary>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.name, c.revision, c.imported_at, c.source,
                (SELECT count(*) FROM cut_shots s WHERE s.cut = c.name AND s.revision = c.revision)
             FROM cuts c
             WHERE c.revision = (SELECT max(revision) FROM cuts l WHERE l.name = c.name)
             ORDER BY c.name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(CutSummary {
                    name: r.get(0)?,
                    revision: r.get(1)?,
                    imported_at: r.get(2)?,
                    source: r.get(3)?,
                    shots: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn cut_revisions(&self, name: &str) -> Result<Vec<CutRevision>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{REVISION_SQL} WHERE name = ?1 ORDER BY revision"))?;
        let rows: Vec<RawRevision> = stmt.query_map([name], raw)?.collect::<Result<_, _>>()?;
        rows.into_iter().map(revision).collect()
    }

    fn cut_revision(
        &self,
        name: &str,
        number: Option<i64>,
    ) -> Result<Option<CutRevision>, StoreError> {
        let found = match number {
            Some(n) => self
                .conn
                .prepare_cached(&format!("{REVISION_SQL} WHERE name = ?1 AND revision = ?2"))?
                .query_row(params![name, n], raw)
                .optional()?,
            None => self
                .conn
                .prepare_cached(&format!(
                    "{REVISION_SQL} WHERE name = ?1 ORDER BY revision DESC LIMIT 1"
                ))?
                .query_row([name], raw)
                .optional()?,
        };
        found.map(revision).transpose()
    }

    fn add_cut_revision(&mut self, cut: &CutRevision) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let latest: i64 = tx.query_row(
            "SELECT coalesce(max(revision), 0) FROM cuts WHERE name = ?1",
            [&cut.name],
            |r| r.get(0),
        )?;
        if latest != cut.revision - 1 {
            return Err(StoreError::CutRevision {
                name: cut.name.clone(),
                revision: cut.revision,
            });
        }
        tx.execute(
            "INSERT INTO cuts (name, revision, imported_at, source, hash, fps, shots, unmatched)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                cut.name,
                cut.revision,
                cut.imported_at,
                cut.source,
                cut.hash,
                cut.fps,
                to_json(&cut.shots),
                to_json(&cut.unmatched)
            ],
        )?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO cut_shots (cut, revision, shot, head_in, cut_in, cut_out, tail_out)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for s in cut.present() {
                insert.execute(params![
                    cut.name,
                    cut.revision,
                    s.shot,
                    s.head_in,
                    s.cut_in,
                    s.cut_out,
                    s.tail_out
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn shot_frames(&self, shot: &str) -> Result<Vec<ShotFrames>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.cut, s.revision, s.shot, s.head_in, s.cut_in, s.cut_out, s.tail_out
             FROM cut_shots s
             WHERE s.shot = ?1
                AND s.revision = (SELECT max(revision) FROM cuts c WHERE c.name = s.cut)
             ORDER BY s.cut",
        )?;
        let rows = stmt
            .query_map([shot], |r| {
                Ok(ShotFrames {
                    cut: r.get(0)?,
                    revision: r.get(1)?,
                    shot: r.get(2)?,
                    head_in: r.get(3)?,
                    cut_in: r.get(4)?,
                    cut_out: r.get(5)?,
                    tail_out: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn cut_revision_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT count(*) FROM cuts")?
            .query_row([], |r| r.get(0))?)
    }
}
