//! The API's control of when queued jobs start: bump (a job's priority), run-now (past its
//! rule's window), pause and resume (a node or a rule), as the CLI does them, behind the same [`auth::check`] (token and same-site
//! origin) as the other actions.

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
use super::params::job_id;
use crate::rules::PRIORITY_RANGE;
use crate::store::control::{Bump, PauseTarget};

/// The control routes.
pub(crate) fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/jobs/{id}/bump", post(bump))
        .route("/api/v1/jobs/{id}/run-now", post(run_now))
        .route("/api/v1/nodes/{name}/pause", post(pause_node))
        .route("/api/v1/nodes/{name}/resume", post(resume_node))
        .route("/api/v1/rules/{name}/pause", post(pause_rule))
        .route("/api/v1/rules/{name}/resume", post(resume_rule))
}

/// `bump` parameters: exactly one of them.
#[derive(Debug, Deserialize)]
pub(crate) struct BumpQuery {
    priority: Option<i32>,
    top: Option<bool>,
}

impl BumpQuery {
    fn to(&self) -> Result<Bump, ApiError> {
        match (self.priority, self.top) {
            (Some(p), None | Some(false)) if PRIORITY_RANGE.contains(&p) => Ok(Bump::To(p)),
            (Some(p), None | Some(false)) => Err(ApiError::BadRequest(format!(
                "priority {p} is out of range ({} to {})",
                PRIORITY_RANGE.start(),
                PRIORITY_RANGE.end()
            ))),
            (None, Some(true)) => Ok(Bump::Top),
            _ => Err(ApiError::BadRequest(
                "give `priority=N` or `top=true`, not both".into(),
            )),
        }
    }
}

async fn bump(
    Extract(state): Extract<State>,
    headers: HeaderMap,
    id: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<BumpQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    auth::check(&headers, state.token.as_deref())?;
    let UrlPath(id) = id.map_err(bad_path)?;
    let id = job_id(&id)?;
    let Query(q) = query.map_err(bad_query)?;
    let to = q.to()?;
    let priority = state
        .pool
        .run(move |h| {
            let job = h
                .job(id)?
                .ok_or_else(|| ApiError::NotFound(format!("no job {id} in the store")))?;
            match h.bump(&[id], to)?.first() {
                Some((_, priority)) => Ok(*priority),
                None => Err(ApiError::Conflict(format!(
                    "job {id} is {}: only queued jobs are bumped",
                    job.row.status
                ))),
            }
        })
        .await?;
    tracing::info!(job = id, priority, "http: bump");
    Ok(Json(json!({ "id": id, "priority": priority })))
}

/// Pauses or resumes what the URL names.
async fn set_paused(
    state: State,
    headers: HeaderMap,
    name: Result<UrlPath<String>, PathRejection>,
    target: fn(String) -> PauseTarget,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    auth::check(&headers, state.token.as_deref())?;
    let UrlPath(name) = name.map_err(bad_path)?;
    if name.is_empty() {
        return Err(ApiError::BadRequest("name a node or a rule".into()));
    }
    let target = target(name);
    let asked = target.clone();
    let changed = state
        .pool
        .run(move |h| Ok(h.set_paused(&asked, paused)?))
        .await?;
    tracing::info!(%target, paused, changed, "http: pause");
    Ok(Json(json!({
        "kind": target.kind(),
        "name": target.name(),
        "paused": paused,
        "changed": changed,
    })))
}

async fn pause_node(
    Extract(state): Extract<State>,
    headers: HeaderMap,
    name: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    set_paused(state, headers, name, PauseTarget::Node, true).await
}

async fn resume_node(
    Extract(state): Extract<State>,
    headers: HeaderMap,
    name: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    set_paused(state, headers, name, PauseTarget::Node, false).await
}

async fn pause_rule(
    Extract(state): Extract<State>,
    headers: HeaderMap,
    name: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    set_paused(state, headers, name, PauseTarget::Rule, true).await
}

async fn resume_rule(
    Extract(state): Extract<State>,
    headers: HeaderMap,
    name: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    set_paused(state, headers, name, PauseTarget::Rule, false).await
}

async fn run_now(
    Extract(state): Extract<State>,
    headers: HeaderMap,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    auth::check(&headers, state.token.as_deref())?;
    let UrlPath(id) = id.map_err(bad_path)?;
    let id = job_id(&id)?;
    state
        .pool
        .run(move |h| {
            let job = h
                .job(id)?
                .ok_or_else(|| ApiError::NotFound(format!("no job {id} in the store")))?;
            if h.run_now(&[id])?.is_empty() {
                return Err(ApiError::Conflict(format!(
                    "job {id} is {}: only queued jobs wait for a window",
                    job.row.status
                )));
            }
            Ok(())
        })
        .await?;
    tracing::info!(job = id, "http: run-now");
    Ok(Json(json!({ "run_now": id })))
}
