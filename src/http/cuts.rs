//! `GET /api/v1/cuts`, `/api/v1/cuts/{name}` (`?revision=N`) and `/api/v1/cuts/{name}/ranges`:
//! editorial's cuts as `shotrouter cut show --json` and `cut ranges --json` print them.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State as Extract};
use serde::Deserialize;
use serde_json::{Value, json};

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
