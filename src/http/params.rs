//! The API's path and query parameters that several routes share, parsed with an answer that
//! says what was wrong (a `400`, never a `500`).

use super::error::ApiError;
use crate::store::{JobId, now_ms};

/// Parses a job id from the URL.
pub(crate) fn job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse::<JobId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::BadRequest(format!("`{text}` is not a job id (a positive integer)"))
        })
}

/// Parses `since` (`2h`, `30m`) into unix ms.
pub(crate) fn since_ms(since: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(text) = since else {
        return Ok(None);
    };
    let duration = crate::rules::parse_duration(text)
        .map_err(|e| ApiError::BadRequest(format!("bad `since` `{text}`: {e}")))?;
    let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    Ok(Some(now_ms().saturating_sub(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_limits_are_checked() {
        assert_eq!(job_id("12").expect("id"), 12);
        for bad in ["0", "-1", "x", "1e3", "", "99999999999999999999"] {
            assert!(job_id(bad).is_err(), "{bad:?}");
        }
        assert!(since_ms(Some("2h")).expect("since").is_some());
        assert!(since_ms(Some("5")).is_err(), "a unit is needed");
    }
}
