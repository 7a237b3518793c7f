//! The read side of the JSON API: status, jobs (filtered, paged by id), one job with its log
//! tail, rules, nodes, cuts (`cuts.rs`), `/healthz`. Each handler validates its parameters first (400 with a
//! JSON error), then asks the store on a blocking thread.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use axum::Json;
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::store::history::JobFilter;
use crate::store::{JobId, Status};

use super::State;
use super::error::{ApiError, bad_path, bad_query};
use super::params::{job_id, since_ms};

/// Jobs per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;

/// The most jobs one page holds.
pub const MAX_LIMIT: usize = 500;

/// Lines of a job's log in `jobs/{id}`.
const LOG_LINES: usize = 50;

/// Bytes read from the end of a job's log for its tail.
const LOG_BYTES: u64 = 64 * 1024;

/// The read-only routes.
pub(crate) fn routes() -> Router<State> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/status", get(status))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/jobs/{id}", get(job))
        .route(
            "/api/v1/jobs/{id}/thumbnail",
            get(super::thumbnail::thumbnail),
        )
        .route("/api/v1/files", get(super::files::files))
        .route("/api/v1/lineage", get(super::lineage::lineage))
        .route("/api/v1/stale", get(super::lineage::stale))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/shots", get(super::shots::shots))
        .route("/api/v1/charts/done.svg", get(super::charts::done))
        .route("/api/v1/charts/queued.svg", get(super::charts::queued))
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/cuts", get(super::cuts::cuts))
        .route("/api/v1/cuts/{name}", get(super::cuts::cut))
        .route("/api/v1/cuts/{name}/ranges", get(super::cuts::ranges))
        .route("/api/v1/cuts/{name}/waste", get(super::cuts::waste))
        .route("/api/v1/events", get(super::live::events))
        .route("/api/v1/openapi.json", get(super::openapi::document))
        .route("/metrics", get(metrics))
}

/// The Prometheus exposition (OpenMetrics text) of the store's counts and this node's engine.
async fn metrics(Extract(state): Extract<State>) -> Result<Response, ApiError> {
    let telemetry = state.telemetry.as_ref().map(|t| t.snapshot());
    let text = state
        .pool
        .run(move |h| {
            super::metrics::render(telemetry.as_ref(), h)
                .map_err(|e| ApiError::Unavailable(e.to_string()))
        })
        .await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            super::metrics::CONTENT_TYPE,
        )],
        text,
    )
        .into_response())
}

async fn healthz(Extract(state): Extract<State>) -> Response {
    let node = state.telemetry.as_ref().map(|t| t.snapshot().node);
    let live = super::live::fresh(&state).await;
    match (&live.view.status, &live.view.error) {
        (Some(_), _) => Json(json!({ "ok": true, "node": node })).into_response(),
        (None, error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "ok": false,
                "error": error.as_deref().unwrap_or("the job store has not answered yet"),
                "node": node,
            })),
        )
            .into_response(),
    }
}

/// The store's counts from the live view (at most two seconds old), the engine's now.
async fn status(Extract(state): Extract<State>) -> Result<Json<Value>, ApiError> {
    let live = super::live::fresh(&state).await;
    let Some(report) = &live.view.status else {
        return Err(unavailable(&live));
    };
    let engine = state.telemetry.as_ref().map(|t| t.snapshot());
    Ok(Json(json!({ "store": report, "engine": engine })))
}

/// The 503 of a view the store could not give.
fn unavailable(live: &super::live::Live) -> ApiError {
    ApiError::Unavailable(
        live.view
            .error
            .clone()
            .unwrap_or_else(|| "the job store has not answered yet".into()),
    )
}

/// `jobs` parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct JobsQuery {
    status: Option<String>,
    rule: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    before: Option<String>,
}

async fn jobs(
    Extract(state): Extract<State>,
    query: Result<Query<JobsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let status = match q.status.as_deref() {
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown status `{text}`; use queued, claimed, running, done, failed, cancelled or skipped"
            ))
        })?),
        None => None,
    };
    let limit = match q.limit.as_deref() {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("bad `limit` `{text}`: give 1 to {MAX_LIMIT}"))
            })?,
        None => DEFAULT_LIMIT,
    };
    let before = q.before.as_deref().map(job_id).transpose()?;
    let since_ms = since_ms(q.since.as_deref())?;
    let rule = q.rule;
    let mut rows = state
        .pool
        .run(move |h| {
            // One more than asked: whether another page follows.
            Ok(h.jobs(&JobFilter {
                status,
                rule: rule.as_deref(),
                since_ms,
                limit: limit + 1,
                before,
            })?)
        })
        .await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_before = more.then(|| rows.last().map(|r| r.id)).flatten();
    Ok(Json(json!({ "jobs": rows, "next_before": next_before })))
}

async fn job(
    Extract(state): Extract<State>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let UrlPath(id) = id.map_err(bad_path)?;
    let id = job_id(&id)?;
    let detail = state
        .pool
        .run(move |h| Ok(h.job(id)?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id} in the store")))?;
    let logs = state.state_dir.join("logs");
    let rule = detail.row.rule.clone();
    let tail = tokio::task::spawn_blocking(move || log_tail(&logs, &rule, id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let progress = state.telemetry.as_ref().and_then(|t| {
        t.snapshot()
            .active
            .get(&id.to_string())
            .and_then(|a| a.progress)
            .map(super::live::stored_form)
    });
    let progress = progress.or(detail.row.progress);
    let mut value = serde_json::to_value(&detail).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Value::Object(map) = &mut value {
        map.insert("log_tail".into(), json!(tail));
        map.insert("progress".into(), json!(progress));
    }
    Ok(Json(value))
}

/// The log of job `id` of `rule`: `LOGS/<rule>/<id>.log`, and nothing else. A rule name that
/// is not one plain path component (which rules.yaml never allows) reads nothing.
pub(crate) fn log_path(logs: &Path, rule: &str, id: JobId) -> Option<PathBuf> {
    let mut parts = Path::new(rule).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) => Some(logs.join(rule).join(format!("{id}.log"))),
        _ => None,
    }
}

/// The last [`LOG_LINES`] lines of a job's log (lossy UTF-8); empty when it has none.
fn log_tail(logs: &Path, rule: &str, id: JobId) -> Vec<String> {
    let Some(path) = log_path(logs, rule, id) else {
        return Vec::new();
    };
    let Ok(mut file) = std::fs::File::open(&path) else {
        return Vec::new();
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = size.saturating_sub(LOG_BYTES);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.take(LOG_BYTES).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    // A tail that starts mid-file starts mid-line: drop the partial first line.
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    lines[lines.len().saturating_sub(LOG_LINES)..]
        .iter()
        .map(|l| (*l).to_string())
        .collect()
}

async fn rules(Extract(state): Extract<State>) -> Result<Json<Value>, ApiError> {
    let rules = state.pool.run(|h| Ok(super::live::rule_stats(h)?)).await?;
    Ok(Json(
        json!({ "rules": rules, "count_cap": super::live::COUNT_CAP }),
    ))
}

async fn nodes(Extract(state): Extract<State>) -> Result<Json<Value>, ApiError> {
    let report = state.pool.run(|h| Ok(h.status()?)).await?;
    let this = state.telemetry.as_ref().map(|t| t.snapshot().node);
    Ok(Json(json!({ "nodes": report.nodes, "this_node": this })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_path_never_leaves_the_logs_folder() {
        let logs = Path::new("/state/logs");
        assert_eq!(
            log_path(logs, "review", 7),
            Some(PathBuf::from("/state/logs/review/7.log"))
        );
        for rule in ["..", "../etc", "/etc/passwd", "a/b", "", "."] {
            assert_eq!(log_path(logs, rule, 7), None, "{rule:?}");
        }
    }
}
