//! `GET /api/v1/lineage?path=ABS&direction=up|down&depth=N` and `GET /api/v1/stale`: what a
//! file was made from or what was made from it, and the stale products, as `shotrouter lineage
//! --json` and `shotrouter stale --json` print them. The path is read as raw bytes, as
//! `/api/v1/files` reads it.

use axum::Json;
use axum::extract::{RawQuery, State as Extract};
use serde_json::{Value, json};

use crate::store::lineage::{Direction, LineageReport};

use super::State;
use super::error::ApiError;
use super::files::path_param;

/// The deepest walk the API makes (the CLI's default is 10).
const MAX_DEPTH: u32 = 100;

/// The value of `name` in a raw query string, when given once or more (the first).
fn param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn direction(query: Option<&str>) -> Result<Direction, ApiError> {
    match param(query, "direction") {
        None | Some("up") => Ok(Direction::Up),
        Some("down") => Ok(Direction::Down),
        Some(other) => Err(ApiError::BadRequest(format!(
            "bad `direction` `{other}`: give `up` (what the file was made from) or `down` (what was made from it)"
        ))),
    }
}

fn depth(query: Option<&str>) -> Result<u32, ApiError> {
    let Some(text) = param(query, "depth") else {
        return Ok(crate::store::lineage::DEFAULT_DEPTH);
    };
    text.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_DEPTH).contains(n))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "bad `depth` `{text}`: give a number of jobs from 1 to {MAX_DEPTH}"
            ))
        })
}

/// `GET /api/v1/lineage`.
pub(crate) async fn lineage(
    Extract(state): Extract<State>,
    RawQuery(query): RawQuery,
) -> Result<Json<LineageReport>, ApiError> {
    let path = path_param(query.as_deref())?;
    let direction = direction(query.as_deref())?;
    let depth = depth(query.as_deref())?;
    let report = state
        .pool
        .run(move |h| Ok(h.lineage(&path, direction, depth)?))
        .await?;
    Ok(Json(report))
}

/// `GET /api/v1/stale`.
pub(crate) async fn stale(Extract(state): Extract<State>) -> Result<Json<Value>, ApiError> {
    let products = state.pool.run(|h| Ok(h.stale()?)).await?;
    Ok(Json(json!({ "stale": products })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_and_depth_are_checked() {
        assert_eq!(direction(Some("path=/a")).ok(), Some(Direction::Up));
        assert_eq!(
            direction(Some("path=/a&direction=down")).ok(),
            Some(Direction::Down)
        );
        assert!(direction(Some("direction=sideways")).is_err());
        assert!(direction(Some("direction=")).is_err());
        assert_eq!(depth(Some("path=/a")).ok(), Some(10));
        assert_eq!(depth(Some("depth=3&path=/a")).ok(), Some(3));
        for bad in ["depth=0", "depth=-1", "depth=x", "depth=101", "depth="] {
            assert!(depth(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(param(Some("depths=4&depth=2"), "depth"), Some("2"));
    }
}
