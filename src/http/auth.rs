//! Who may change things: every POST must come from this server's own pages or from a
//! script (an `Origin` naming another site is refused, so another site's page cannot act
//! through a user's browser), and carry `Authorization: Bearer TOKEN`. The token is compared
//! in constant time; without a token file the API is read-only.

use std::path::Path;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use super::error::{ApiError, HttpError};

/// Reads `--http-token-file`: its content, trimmed.
///
/// # Errors
/// The file cannot be read or is empty.
pub fn read_token(path: &Path) -> Result<String, HttpError> {
    let text = std::fs::read_to_string(path).map_err(|e| HttpError::TokenFile {
        path: path.to_path_buf(),
        source: e,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(HttpError::EmptyToken(path.to_path_buf()));
    }
    Ok(token.to_string())
}

/// Checks a mutating request: its origin first, then its token.
///
/// # Errors
/// [`ApiError::CrossSite`], [`ApiError::ReadOnly`] or [`ApiError::Unauthorized`].
pub fn check(headers: &HeaderMap, token: Option<&str>) -> Result<(), ApiError> {
    check_origin(headers)?;
    let Some(token) = token else {
        return Err(ApiError::ReadOnly);
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    if bool::from(given.trim_ascii().ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// An `Origin` header, when present, must be `http://HOST` with the request's own `Host`.
fn check_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin_text = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    let host = headers.get(header::HOST).map(|h| h.as_bytes());
    let same = host.is_some_and(|host| {
        origin.as_bytes().strip_prefix(b"http://") == Some(host)
            || origin.as_bytes().strip_prefix(b"https://") == Some(host)
    });
    if same {
        Ok(())
    } else {
        Err(ApiError::CrossSite(origin_text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    /// Request headers, the server's token, the refusal's status.
    type Case<'a> = (
        &'a [(header::HeaderName, &'a str)],
        Option<&'a str>,
        Option<u16>,
    );

    #[test]
    fn a_post_needs_the_token_and_its_own_origin() {
        let host = (header::HOST, "127.0.0.1:8470");
        let good = (header::AUTHORIZATION, "Bearer s3cret");
        let cases: [Case<'_>; 7] = [
            (&[host.clone(), good.clone()], Some("s3cret"), None),
            (
                &[
                    host.clone(),
                    good.clone(),
                    (header::ORIGIN, "http://127.0.0.1:8470"),
                ],
                Some("s3cret"),
                None,
            ),
            (
                &[
                    host.clone(),
                    good.clone(),
                    (header::ORIGIN, "http://evil.example"),
                ],
                Some("s3cret"),
                Some(403),
            ),
            (std::slice::from_ref(&host), Some("s3cret"), Some(401)),
            (
                &[host.clone(), (header::AUTHORIZATION, "Bearer s3cre")],
                Some("s3cret"),
                Some(401),
            ),
            (
                &[host.clone(), (header::AUTHORIZATION, "Basic s3cret")],
                Some("s3cret"),
                Some(401),
            ),
            (&[host.clone(), good.clone()], None, Some(403)),
        ];
        for (i, (pairs, token, want)) in cases.into_iter().enumerate() {
            let got = check(&headers(pairs), token)
                .err()
                .map(|e| e.status().as_u16());
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn an_empty_token_file_is_refused_with_a_fix() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "  \n").expect("write");
        let message = read_token(&path).expect_err("empty").to_string();
        assert!(
            message.contains("is empty; write a long random token"),
            "{message}"
        );
        std::fs::write(&path, "abc\n").expect("write");
        assert_eq!(read_token(&path).expect("token"), "abc");
    }
}
