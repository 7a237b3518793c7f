//! `GET /api/v1/cuts`, `/api/v1/cuts/{name}` (`?revision=N`), `/api/v1/cuts/{name}/ranges`
//! and `/api/v1/cuts/{name}/waste`: editorial's cuts as `shotrouter cut show --json`, `cut
//! ranges --json` and `cut waste --json` print them. The waste comes from the watcher this
//! server runs beside (it walks the tree with the rules; a server alone has neither).

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State as Extract};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::telemetry::WasteReport;
use crate::engine::waste::{CutWaste, ShotWaste};
use crate::store::cuts::{CutRanges, CutRevision, CutStore};

use super::State;
use super::error::ApiError;
use super::error::{bad_path, bad_query};

/// `cuts/{name}` parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct RevisionQuery {
    revision: Option<String>,
}

/// Every cut with its latest revision.
pub(crate) async fn cuts(Extract(state): Extract<State>) -> Result<Json<Value>, ApiError> {
    let cuts = state.pool.run_cuts(|c| Ok(c.cuts()?)).await?;
    Ok(Json(json!({ "cuts": cuts })))
}

/// One revision of a cut, the latest unless `revision` says.
pub(crate) async fn cut(
    Extract(state): Extract<State>,
    name: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<RevisionQuery>, QueryRejection>,
) -> Result<Json<CutRevision>, ApiError> {
    let UrlPath(name) = name.map_err(bad_path)?;
    let Query(q) = query.map_err(bad_query)?;
    let revision = match q.revision.as_deref() {
        Some(text) => Some(text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "bad `revision` `{text}`: give a revision number (1, 2, ...)"
            ))
        })?),
        None => None,
    };
    let found = state
        .pool
        .run_cuts(move |c| found(c, &name, revision))
        .await?;
    Ok(Json(found))
}

/// The frames to render per shot, from the latest revision.
pub(crate) async fn ranges(
    Extract(state): Extract<State>,
    name: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<CutRanges>, ApiError> {
    let UrlPath(name) = name.map_err(bad_path)?;
    let found = state.pool.run_cuts(move |c| found(c, &name, None)).await?;
    Ok(Json(CutRanges::of(&found)))
}

/// A cut's waste, and when the watcher worked it out.
#[derive(Debug, Serialize)]
pub(crate) struct WasteAnswer {
    #[serde(flatten)]
    waste: CutWaste,
    /// When it was worked out, unix ms.
    computed_at_ms: i64,
    /// How long the walk of the tree took, ms.
    took_ms: u64,
}

/// Per shot of the latest revision the watcher has seen: frames outside `head_in..tail_out`
/// and frames missing inside `cut_in..cut_out`.
pub(crate) async fn waste(
    Extract(state): Extract<State>,
    name: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<WasteAnswer>, ApiError> {
    let UrlPath(name) = name.map_err(bad_path)?;
    let Some(telemetry) = state.telemetry.as_ref() else {
        return Err(ApiError::Unavailable(
            "the waste is worked out by a watcher, with its rules: ask the server of `shotrouter watch --http`, or run `shotrouter cut waste --rules rules.yaml`".into(),
        ));
    };
    let report = telemetry.waste();
    if let Some(report) = &report
        && let Some(waste) = report.cuts.iter().find(|c| c.cut == name)
    {
        return Ok(Json(WasteAnswer {
            waste: waste.clone(),
            computed_at_ms: report.computed_at_ms,
            took_ms: report.took_ms,
        }));
    }
    // Not worked out: no such cut (404), or one the watcher has not walked the tree for yet.
    let latest = state.pool.run_cuts(move |c| found(c, &name, None)).await?;
    Err(ApiError::Unavailable(format!(
        "the watcher has not worked out the waste of cut `{}` revision {} yet (it walks the shot tree when a revision arrives); ask again in a moment",
        latest.name, latest.revision
    )))
}

/// A cut's waste as the dashboard shows it: the show's sums and the worst shots only, so a
/// cut of 500 shots costs the live view no more than one of ten.
#[derive(Debug, Clone, Serialize)]
pub struct WasteSummary {
    /// The cut.
    pub cut: String,
    /// The revision the waste is of.
    pub revision: i64,
    /// Files outside `head_in..tail_out`, all shots.
    pub outside_frames: u64,
    /// Their bytes.
    pub outside_bytes: u64,
    /// Frame numbers missing inside `cut_in..cut_out`, all shots.
    pub missing_frames: u64,
    /// How many shots have frames outside or missing.
    pub shots_off: usize,
    /// Those with the most bytes outside, then the most frames missing; at most `rows`.
    pub worst: Vec<ShotWaste>,
    /// When the watcher walked the tree, unix ms.
    pub computed_at_ms: i64,
}

/// Each cut's [`WasteSummary`] from the watcher's report.
pub fn summaries(report: &WasteReport, rows: usize) -> Vec<WasteSummary> {
    report
        .cuts
        .iter()
        .map(|cut| {
            let mut off: Vec<&ShotWaste> = cut
                .shots
                .iter()
                .filter(|s| s.outside_frames > 0 || s.missing_frames > 0)
                .collect();
            off.sort_by(|a, b| {
                (b.outside_bytes, b.missing_frames, &a.shot).cmp(&(
                    a.outside_bytes,
                    a.missing_frames,
                    &b.shot,
                ))
            });
            WasteSummary {
                cut: cut.cut.clone(),
                revision: cut.revision,
                outside_frames: cut.outside_frames,
                outside_bytes: cut.outside_bytes,
                missing_frames: cut.missing_frames,
                shots_off: off.len(),
                worst: off.into_iter().take(rows).cloned().collect(),
                computed_at_ms: report.computed_at_ms,
            }
        })
        .collect()
}

/// The revision asked for, or a 404 saying what there is.
fn found(store: &dyn CutStore, name: &str, revision: Option<i64>) -> Result<CutRevision, ApiError> {
    if let Some(found) = store.cut_revision(name, revision)? {
        return Ok(found);
    }
    Err(ApiError::NotFound(
        match (revision, store.cut_revision(name, None)?) {
            (Some(n), Some(latest)) => format!(
                "cut `{name}` has no revision {n}; its revisions are 1 to {}",
                latest.revision
            ),
            _ => format!("no cut `{name}` in the store"),
        },
    ))
}
