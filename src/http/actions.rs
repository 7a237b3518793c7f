//! The write side of the API: retry, cancel and rerun, as the operations CLI does them, each
//! behind [`auth::check`]. Cancel stops a running job's process group
//! here, as `shotrouter cancel` does: SIGTERM, then SIGKILL after the runner's grace.

use axum::Json;
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State as Extract};
use axum::http::HeaderMap;
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use super::State;
use super::auth;
use super::error::ApiError;
use super::error::{bad_path, bad_query};
use super::params::{job_id, since_ms};
use crate::store::history::JobHistory;
use crate::store::{JobDetail, JobId};

/// The mutating routes.
pub(crate) fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/jobs/{id}/retry", post(retry))
        .route("/api/v1/jobs/{id}/cancel", post(cancel))
        .route("/api/v1/rules/{name}/rerun", post(rerun))
}

/// The job an action's URL names, once the request has shown it may act.
fn acting_on(
    state: &State,
    headers: &HeaderMap,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<JobId, ApiError> {
    auth::check(headers, state.token.as_deref())?;
    let UrlPath(id) = id.map_err(bad_path)?;
    job_id(&id)
}

/// The job, or a 404.
fn existing(h: &mut dyn JobHistory, id: JobId) -> Result<JobDetail, ApiError> {
    h.job(id)?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id} in the store")))
}

async fn retry(
    Extract(state): Extract<State>,
    headers: HeaderMap,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = acting_on(&state, &headers, id)?;
    let queued = state
        .pool
        .run(move |h| {
            let job = existing(h, id)?;
            let queued = h.retry(&[id], None)?;
            if queued.is_empty() {
                return Err(ApiError::Conflict(format!(
                    "job {id} is {}: only failed or cancelled jobs are retried",
                    job.row.status
                )));
            }
            Ok(queued)
        })
        .await?;
    tracing::info!(job = id, "http: retry");
    Ok(Json(json!({ "queued": queued })))
}

async fn cancel(
    Extract(state): Extract<State>,
    headers: HeaderMap,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = acting_on(&state, &headers, id)?;
    let stopped = state
        .pool
        .run(move |h| {
            let job = existing(h, id)?;
            let cancelled = h.cancel(&[id])?;
            let Some((_, run)) = cancelled.into_iter().next() else {
                return Err(ApiError::Conflict(format!(
                    "job {id} is {}: only queued or running jobs are cancelled",
                    job.row.status
                )));
            };
            let Some(run) = run else { return Ok(0) };
            crate::exec::terminate::terminate(&run, crate::exec::runner::KILL_GRACE).map_err(|e| {
                ApiError::Conflict(format!("job {id} is cancelled in the store, but {e}"))
            })
        })
        .await?;
    tracing::info!(job = id, stopped, "http: cancel");
    Ok(Json(
        json!({ "cancelled": id, "stopped_processes": stopped }),
    ))
}

/// `rerun` parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct RerunQuery {
    since: Option<String>,
}

async fn rerun(
    Extract(state): Extract<State>,
    headers: HeaderMap,
    rule: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<RerunQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    auth::check(&headers, state.token.as_deref())?;
    let UrlPath(rule) = rule.map_err(bad_path)?;
    let Query(q) = query.map_err(bad_query)?;
    let since_ms = since_ms(q.since.as_deref())?;
    let name = rule.clone();
    let queued = state
        .pool
        .run(move |h| {
            if !h.rule_names()?.contains(&name) {
                return Err(ApiError::NotFound(format!(
                    "no job of rule `{name}` in the store"
                )));
            }
            Ok(h.rerun(&name, since_ms)?)
        })
        .await?;
    tracing::info!(rule = %rule, queued, "http: rerun");
    Ok(Json(json!({ "rule": rule, "queued": queued })))
}
