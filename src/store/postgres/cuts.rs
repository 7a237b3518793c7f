//! [`CutStore`] for PostgreSQL: a revision is one `cuts` row and its shots' `cut_shots` rows,
//! in one transaction. The insert states the revision it follows, so two imports racing for
//! one number store one and refuse the other (the primary key settles it).

use postgres::Row;

use super::super::StoreError;
use super::super::cuts::{CutRevision, CutStore, CutSummary, ShotFrames, from_json, to_json};
use super::PgStore;

/// The columns [`revision`] reads.
const REVISION_SQL: &str =
    "SELECT name, revision, imported_at, source, hash, fps, shots, unmatched FROM cuts";

fn revision(r: &Row) -> Result<CutRevision, StoreError> {
    let name: String = r.get(0);
    let number: i64 = r.get(1);
    Ok(CutRevision {
        shots: from_json(&name, number, r.get(6))?,
        unmatched: from_json(&name, number, r.get(7))?,
        revision: number,
        imported_at: r.get(2),
        source: r.get(3),
        hash: r.get(4),
        fps: r.get(5),
        name,
    })
}

impl CutStore for PgStore {
    fn cuts(&self) -> Result<Vec<CutSummary>, StoreError> {
        let mut client = self.client()?;
        let rows = client.query(
            "SELECT c.name, c.revision, c.imported_at, c.source,
                (SELECT count(*) FROM cut_shots s WHERE s.cut = c.name AND s.revision = c.revision)
             FROM cuts c
             WHERE c.revision = (SELECT max(revision) FROM cuts l WHERE l.name = c.name)
             ORDER BY c.name",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| CutSummary {
                name: r.get(0),
                revision: r.get(1),
                imported_at: r.get(2),
                source: r.get(3),
                shots: r.get(4),
            })
            .collect())
    }

    fn cut_revisions(&self, name: &str) -> Result<Vec<CutRevision>, StoreError> {
        let mut client = self.client()?;
        let rows = client.query(
            &format!("{REVISION_SQL} WHERE name = $1 ORDER BY revision"),
            &[&name],
        )?;
        rows.iter().map(revision).collect()
    }

    fn cut_revision(
        &self,
        name: &str,
        number: Option<i64>,
    ) -> Result<Option<CutRevision>, StoreError> {
        let mut client = self.client()?;
        let row = match number {
            Some(n) => client.query_opt(
                &format!("{REVISION_SQL} WHERE name = $1 AND revision = $2"),
                &[&name, &n],
            )?,
            None => client.query_opt(
                &format!("{REVISION_SQL} WHERE name = $1 ORDER BY revision DESC LIMIT 1"),
                &[&name],
            )?,
        };
        row.as_ref().map(revision).transpose()
    }

    fn add_cut_revision(&mut self, cut: &CutRevision) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let refused = || StoreError::CutRevision {
            name: cut.name.clone(),
            revision: cut.revision,
        };
        let follows = cut.revision - 1;
        let inserted = tx.execute(
            "INSERT INTO cuts (name, revision, imported_at, source, hash, fps, shots, unmatched)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8
             WHERE (SELECT coalesce(max(revision), 0) FROM cuts WHERE name = $1) = $9
             ON CONFLICT DO NOTHING",
            &[
                &cut.name,
                &cut.revision,
                &cut.imported_at,
                &cut.source,
                &cut.hash,
                &cut.fps,
                &to_json(&cut.shots),
                &to_json(&cut.unmatched),
                &follows,
            ],
        )?;
        if inserted != 1 {
            return Err(refused());
        }
        let insert = tx.prepare(
            "INSERT INTO cut_shots (cut, revision, shot, head_in, cut_in, cut_out, tail_out)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )?;
        for s in cut.present() {
            tx.execute(
                &insert,
                &[
                    &cut.name,
                    &cut.revision,
                    &s.shot,
                    &s.head_in,
                    &s.cut_in,
                    &s.cut_out,
                    &s.tail_out,
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn shot_frames(&self, shot: &str) -> Result<Vec<ShotFrames>, StoreError> {
        let mut client = self.client()?;
        let rows = client.query(
            "SELECT s.cut, s.revision, s.shot, s.head_in, s.cut_in, s.cut_out, s.tail_out
             FROM cut_shots s
             WHERE s.shot = $1
                AND s.revision = (SELECT max(revision) FROM cuts c WHERE c.name = s.cut)
             ORDER BY s.cut",
            &[&shot],
        )?;
        Ok(rows
            .iter()
            .map(|r| ShotFrames {
                cut: r.get(0),
                revision: r.get(1),
                shot: r.get(2),
                head_in: r.get(3),
                cut_in: r.get(4),
                cut_out: r.get(5),
                tail_out: r.get(6),
            })
            .collect())
    }

    fn cut_revision_count(&self) -> Result<i64, StoreError> {
        let mut client = self.client()?;
        Ok(client.query_one("SELECT count(*) FROM cuts", &[])?.get(0))
    }
}
