//! `GET /api/v1/shots`: the per-shot grid of the dashboard. Rows are shots, columns the rules
//! whose `regex` has a `shot` capture, each cell the latest job of that rule on that shot.
//!
//! The store keeps no captures, so the shot is read again from each job's input with the rules
//! the watcher routes by now (published in its telemetry): a server without a watcher
//! (`shotrouter serve`) has no rules and answers 503, as the cut waste does. The grid is made
//! from the newest [`SCAN`] jobs, so it costs the same on a store of a million; a shot whose
//! last job is older than that is not shown.

use std::collections::BTreeMap;
use std::path::Path;

use axum::Json;
use axum::extract::State as Extract;
use serde::Serialize;

use crate::route::matcher::RuleSet;
use crate::store::history::JobFilter;
use crate::store::{JobId, JobRow};

use super::State;
use super::error::ApiError;

/// How many of the newest jobs the grid is made from.
pub const SCAN: usize = 5000;

/// The latest job of one rule on one shot.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Cell {
    /// The job.
    pub id: JobId,
    /// Its state (`done`, `failed`, `running`...).
    pub status: String,
    /// Its input.
    pub path: String,
    /// Why it failed, or what it waits for.
    pub result: Option<String>,
    /// Whether this node has its thumbnail (`/api/v1/jobs/{id}/thumbnail`).
    pub thumbnail: bool,
}

/// One shot's row: per rule (by name), its latest job.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ShotRow {
    /// The shot, as the `shot` capture read it.
    pub shot: String,
    /// Per rule name.
    pub cells: BTreeMap<String, Cell>,
}

/// The grid.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Grid {
    /// The columns: rules with a `shot` capture, in file order.
    pub rules: Vec<String>,
    /// The rows, by shot name.
    pub shots: Vec<ShotRow>,
    /// How many jobs were read (at most [`SCAN`]).
    pub jobs_read: usize,
}

/// The grid of the watcher's rules over the newest jobs.
pub(crate) async fn shots(Extract(state): Extract<State>) -> Result<Json<Grid>, ApiError> {
    let set = state
        .telemetry
        .as_ref()
        .and_then(crate::engine::telemetry::TelemetryHandle::rules)
        .ok_or_else(|| {
            ApiError::Unavailable(
                "the shots are read with a watcher's rules: ask the server of `shotrouter watch --http` (this one has none)".into(),
            )
        })?;
    let state_dir = state.state_dir.clone();
    let grid = state
        .pool
        .run(move |h| {
            let rows = h.jobs(&JobFilter {
                limit: SCAN,
                ..JobFilter::default()
            })?;
            let mut grid = grid(&set, &rows);
            let ids = grid
                .shots
                .iter()
                .flat_map(|s| s.cells.values().map(|c| c.id));
            let with: std::collections::HashSet<JobId> = super::thumbnail::present(&state_dir, ids)
                .into_iter()
                .collect();
            for cell in grid.shots.iter_mut().flat_map(|s| s.cells.values_mut()) {
                cell.thumbnail = with.contains(&cell.id);
            }
            Ok(grid)
        })
        .await?;
    Ok(Json(grid))
}

/// The grid of `rows` (newest first): the first job seen of a rule on a shot is its latest.
pub fn grid(set: &RuleSet, rows: &[JobRow]) -> Grid {
    let columns: Vec<Option<usize>> = (0..set.file.rules.len())
        .map(|i| set.shot_group(i))
        .collect();
    let mut shots: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
    for row in rows {
        let Some(index) = set.index_of(&row.rule) else {
            continue;
        };
        let (Some(group), Some(regex)) = (columns[index], set.file.rules[index].regex.as_ref())
        else {
            continue;
        };
        let Some(shot) = shot_of(set, regex, group, Path::new(&row.path)) else {
            continue;
        };
        shots
            .entry(shot)
            .or_default()
            .entry(row.rule.clone())
            .or_insert_with(|| Cell {
                id: row.id,
                status: row.status.clone(),
                path: row.path.clone(),
                result: row.result.clone(),
                thumbnail: false,
            });
    }
    Grid {
        rules: set
            .file
            .rules
            .iter()
            .zip(&columns)
            .filter(|(_, group)| group.is_some())
            .map(|(rule, _)| rule.name.clone())
            .collect(),
        shots: shots
            .into_iter()
            .map(|(shot, cells)| ShotRow { shot, cells })
            .collect(),
        jobs_read: rows.len(),
    }
}

/// The `shot` capture of `path` (relative to its watch root). A sequence's job is stored under
/// its `####` path, which a frame-number regex does not match: its first frame's number is
/// tried in place of the `#`s (any digits do, the shot is elsewhere in the path).
fn shot_of(
    set: &RuleSet,
    regex: &regex::bytes::Regex,
    group: usize,
    path: &Path,
) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let (_, rel) = set.locate(path)?;
    let rel = rel.as_os_str().as_bytes();
    let read = |bytes: &[u8]| {
        regex
            .captures(bytes)
            .and_then(|c| c.get(group))
            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
    };
    read(rel).or_else(|| {
        rel.contains(&b'#')
            .then(|| {
                rel.iter()
                    .map(|&b| if b == b'#' { b'0' } else { b })
                    .collect::<Vec<u8>>()
            })
            .and_then(|digits| read(&digits))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: JobId, rule: &str, path: &str, status: &str) -> JobRow {
        JobRow {
            id,
            rule: rule.into(),
            path: path.into(),
            status: status.into(),
            attempts: 1,
            result: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
            output: None,
            node: None,
            progress: None,
            priority: 0,
        }
    }

    #[test]
    fn each_cell_is_the_latest_job_of_its_rule_on_its_shot() {
        let text = "version: 1\nwatch: [/show/shots]\nrules:\n  - name: plates\n    regex: '^(?P<shot>[^/]+)/plates/p\\.[0-9]+\\.exr$'\n    run: [\"true\"]\n  - name: review\n    match: \"**/*.mov\"\n    run: [\"true\"]\n  - name: seq\n    regex: '^(?P<shot>[^/]+)/comp/c\\.[0-9]+\\.exr$'\n    sequence: true\n    run: [\"true\"]\n";
        let set = RuleSet::compile(
            crate::rules::parse(Path::new("r.yaml"), text, Path::new("/")).expect("valid"),
        )
        .expect("compiles");
        let rows = [
            row(5, "plates", "/show/shots/sh020/plates/p.1002.exr", "failed"),
            row(4, "plates", "/show/shots/sh010/plates/p.1001.exr", "done"),
            row(3, "plates", "/show/shots/sh010/plates/p.1000.exr", "failed"),
            row(2, "review", "/show/shots/sh010/a.mov", "done"),
            row(
                1,
                "seq",
                "/show/shots/<i onclick=x>/comp/c.####.exr",
                "done",
            ),
            row(0, "gone", "/show/shots/sh010/plates/p.1.exr", "done"),
        ];
        let grid = grid(&set, &rows);
        assert_eq!(grid.rules, ["plates", "seq"]);
        let shots: Vec<&str> = grid.shots.iter().map(|s| s.shot.as_str()).collect();
        assert_eq!(shots, ["<i onclick=x>", "sh010", "sh020"]);
        assert_eq!(grid.shots[1].cells["plates"].id, 4, "the newest wins");
        assert_eq!(grid.shots[2].cells["plates"].status, "failed");
        assert_eq!(
            grid.shots[0].cells["seq"].id, 1,
            "a sequence's #### path is read"
        );
        assert_eq!(grid.jobs_read, 6);
    }
}
