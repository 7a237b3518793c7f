//! `GET /api/v1/files?path=ABS`: what the store knows of one file (an input, a product, a
//! sequence's `####` path), and of the sequence a frame belongs to. The path is percent-decoded
//! to raw bytes here, not through a UTF-8 string, so a non-UTF-8 name is looked up as it is.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{RawQuery, State as Extract};
use serde_json::{Value, json};

use crate::store::history::JobHistory;
use crate::store::{FileRecord, StoreError};

use super::State;
use super::error::ApiError;

/// Decodes `%XX` and `+` of a query value into bytes; `None` for a broken escape.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The `path` parameter of a raw query string, as bytes.
pub(super) fn path_param(query: Option<&str>) -> Result<PathBuf, ApiError> {
    let missing = || ApiError::BadRequest("give the file as `?path=/absolute/path`".into());
    let value = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("path="))
        .ok_or_else(missing)?;
    let bytes = percent_decode(value)
        .ok_or_else(|| ApiError::BadRequest("bad percent-encoding in `path`".into()))?;
    if bytes.is_empty() {
        return Err(missing());
    }
    if bytes.contains(&0) {
        return Err(ApiError::BadRequest("`path` holds a NUL byte".into()));
    }
    let path = PathBuf::from(OsString::from_vec(bytes));
    if !path.is_absolute() {
        return Err(ApiError::BadRequest(format!(
            "`path` must be absolute: `{}`",
            path.display()
        )));
    }
    Ok(path)
}

/// The sequence a frame belongs to, as the store knows it (as `shotrouter files` looks).
fn sequence_of(
    history: &dyn JobHistory,
    frame: &Path,
) -> Result<Option<(PathBuf, FileRecord)>, StoreError> {
    for path in crate::media::sequence::sequence_paths(frame) {
        if let Some(record) = history.file(&path)? {
            return Ok(Some((path, record)));
        }
    }
    Ok(None)
}

/// `GET /api/v1/files?path=`.
pub(crate) async fn files(
    Extract(state): Extract<State>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let path = path_param(query.as_deref())?;
    let shown = path.to_string_lossy().into_owned();
    let (record, sequence) = state
        .pool
        .run(move |h| {
            let record = h.file(&path)?;
            let sequence = sequence_of(h, &path)?;
            Ok((record, sequence))
        })
        .await?;
    if record.is_none() && sequence.is_none() {
        return Err(ApiError::NotFound(format!(
            "`{shown}` is not known to the store (no rule ran on it, or it arrived while nothing watched)"
        )));
    }
    let sequence = sequence.map(|(p, r)| json!({ "path": p.to_string_lossy(), "record": r }));
    Ok(Json(
        json!({ "path": shown, "record": record, "sequence": sequence }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_parameter_keeps_non_utf8_bytes() {
        let path = path_param(Some("x=1&path=/shots/a%20b%FF.tif")).expect("path");
        assert_eq!(path.as_os_str().as_encoded_bytes(), b"/shots/a b\xff.tif");
        for bad in [
            None,
            Some("path="),
            Some("path=rel/a"),
            Some("path=/a%2"),
            Some("path=/a%00"),
        ] {
            assert!(path_param(bad).is_err(), "{bad:?}");
        }
    }
}
