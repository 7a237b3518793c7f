//! `GET /api/v1/jobs/{id}/thumbnail`: the poster frame a `thumbnail: true` rule's job made of
//! its product (`deliver::thumbnail`), read from this node's state folder only.
//!
//! The id is checked before any file is named, and the file name is built from the number
//! alone, so a request can read nothing but a thumbnail. A job whose node is a worker keeps its
//! thumbnail there, like its log: this server answers 404 for it.

use std::path::{Path, PathBuf};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path as UrlPath, State as Extract};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::deliver::thumbnail::{THUMBS_DIR, path_in};
use crate::store::JobId;

use super::State;
use super::error::{ApiError, bad_path};
use super::params::job_id;

/// The largest thumbnail served: a 320-pixel-wide JPEG is a few tens of KiB; anything much
/// larger is not one of ours.
const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The JPEG of job `id`, or 404 when it has none here.
pub(crate) async fn thumbnail(
    Extract(state): Extract<State>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let UrlPath(id) = id.map_err(bad_path)?;
    let id = job_id(&id)?;
    let path = path_in(&state.state_dir, &id.to_string())
        .ok_or_else(|| ApiError::BadRequest(format!("`{id}` is not a job id")))?;
    let bytes = tokio::task::spawn_blocking(move || read_small(&path))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} has no thumbnail on this node")))?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    // A retry of the job draws it again under the same URL.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The file's bytes when it is a regular file of at most [`MAX_BYTES`].
fn read_small(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    (meta.is_file() && meta.len() <= MAX_BYTES)
        .then(|| std::fs::read(path).ok())
        .flatten()
}

/// The ids among `ids` whose thumbnail is in `state_dir`: what the page shows pictures for,
/// so that it never asks for one that is not there.
pub(crate) fn present(state_dir: &Path, ids: impl Iterator<Item = JobId>) -> Vec<JobId> {
    let dir: PathBuf = state_dir.join(THUMBS_DIR);
    if !dir.is_dir() {
        return Vec::new();
    }
    ids.filter(|id| dir.join(format!("{id}.jpg")).is_file())
        .collect()
}
