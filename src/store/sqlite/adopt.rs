//! Adopting the rows the previous release (schema v1) stored under absolute paths
//! (`root = ''`) when a root is registered (`register_roots` in `queue.rs`): the files below
//! the root, their jobs and the products recorded there are re-keyed under it. A legacy row's
//! version is upgraded to the presented inode later, when its file is met (`upgrade_legacy` in
//! `enqueue.rs`).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::super::JobId;

/// Re-keys rows a previous release stored under absolute paths below `path` to root `name`.
/// A file already known under its rooted key keeps that row; the legacy row's jobs join it
/// (taking the next generation when the same version has a job there).
pub(super) fn adopt(tx: &Connection, name: &str, path: &Path) -> rusqlite::Result<()> {
    let mut prefix = path.as_os_str().as_bytes().to_vec();
    if prefix.last() != Some(&b'/') {
        prefix.push(b'/');
    }
    let len = prefix.len() as i64;
    let legacy: Vec<(i64, Vec<u8>, bool)> = tx
        .prepare(
            "SELECT id, substr(rel, ?2 + 1), baseline FROM files
             WHERE root = '' AND substr(rel, 1, ?2) = ?1",
        )?
        .query_map(params![prefix, len], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    for (id, rel, baseline) in legacy {
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM files WHERE root = ?1 AND rel = ?2",
                params![name, rel],
                |r| r.get(0),
            )
            .optional()?;
        let Some(keep) = existing else {
            tx.execute(
                "UPDATE files SET root = ?2, rel = ?3 WHERE id = ?1",
                params![id, name, rel],
            )?;
            continue;
        };
        let jobs: Vec<JobId> = tx
            .prepare("SELECT id FROM jobs WHERE file_id = ?1 ORDER BY id")?
            .query_map([id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for job in jobs {
            tx.execute(
                "UPDATE jobs SET file_id = ?2, generation = coalesce(
                     (SELECT max(k.generation) + 1 FROM jobs k WHERE k.file_id = ?2
                         AND k.rule = jobs.rule AND k.ino = jobs.ino AND k.size = jobs.size
                         AND k.mtime_ns = jobs.mtime_ns),
                     generation)
                 WHERE id = ?1",
                params![job, keep],
            )?;
        }
        tx.execute(
            "UPDATE files SET baseline = max(baseline, ?2) WHERE id = ?1",
            params![keep, baseline],
        )?;
        tx.execute("DELETE FROM files WHERE id = ?1", [id])?;
    }
    // Outputs carry no jobs: a rooted row recorded by this release wins over its legacy twin.
    tx.execute(
        "UPDATE OR IGNORE outputs SET root = ?3, rel = substr(rel, ?2 + 1)
         WHERE root = '' AND substr(rel, 1, ?2) = ?1",
        params![prefix, len, name],
    )?;
    tx.execute(
        "DELETE FROM outputs WHERE root = '' AND substr(rel, 1, ?2) = ?1",
        params![prefix, len],
    )?;
    Ok(())
}
