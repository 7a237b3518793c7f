//! The server's errors: [`HttpError`] when it cannot start, [`ApiError`] when a request
//! cannot be answered. Every [`ApiError`] reaches the client as a 4xx or 5xx with a JSON body
//! `{"error": "...", "status": N}`; nothing a client sends makes a handler panic.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address is taken or not ours.
    #[error("cannot listen on `{addr}`: {source}; choose another --http address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The token file cannot be read.
    #[error("cannot read the token file `{}`: {source}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token file holds no token.
    #[error("the token file `{}` is empty; write a long random token into it (e.g. `openssl rand -hex 32`)", .0.display())]
    EmptyToken(PathBuf),
    /// The runtime or its thread cannot start.
    #[error("cannot start the http server: {0}")]
    Runtime(std::io::Error),
}

/// Why a request is refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (a bad id, filter or parameter).
    #[error("{0}")]
    BadRequest(String),
    /// No such job, rule, file or page.
    #[error("{0}")]
    NotFound(String),
    /// The action does not apply to the job in its current state.
    #[error("{0}")]
    Conflict(String),
    /// No token file was given: the server is read-only.
    #[error(
        "this server is read-only: start it with `--http-token-file FILE` to allow retry, cancel and rerun"
    )]
    ReadOnly,
    /// A POST came from another site's page.
    #[error("cross-site request refused: origin `{0}` is not this server's")]
    CrossSite(String),
    /// The bearer token is missing or wrong.
    #[error(
        "missing or wrong token: send `Authorization: Bearer TOKEN` with the token of `--http-token-file`"
    )]
    Unauthorized,
    /// The store cannot be opened or read (not created yet, upgraded meanwhile...).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed while answering.
    #[error("the job store failed: {0}")]
    Store(#[from] StoreError),
    /// Something in the server itself failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The status code it is sent with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::ReadOnly | ApiError::CrossSite(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!("http: {self}");
        }
        let body = serde_json::json!({ "error": self.to_string(), "status": status.as_u16() });
        let mut response = (status, Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"shotrouter\""),
            );
        }
        response
    }
}

/// Any path no route serves.
pub(crate) async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no such page `{}`; the API is under `/api/v1/` (see `/api/v1/openapi.json`)",
        request.uri().path()
    ))
}

/// A known path asked with the wrong method.
pub(crate) async fn method_not_allowed(request: Request) -> Response {
    let body = serde_json::json!({
        "error": format!("method `{}` is not allowed on `{}`", request.method(), request.uri().path()),
        "status": 405,
    });
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// Headers on every response: no sniffing a JSON body into HTML, no framing, no referrer.
pub(crate) async fn common_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A URL path axum could not decode (bad percent-encoding, not UTF-8), as a JSON 400.
pub(crate) fn bad_path(rejection: PathRejection) -> ApiError {
    ApiError::BadRequest(format!("bad path: {}", rejection.body_text()))
}

/// A query string axum could not parse, as a JSON 400.
pub(crate) fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("bad query string: {}", rejection.body_text()))
}
