//! `GET /api/v1/openapi.json`: the API's OpenAPI 3 document, written by hand beside the
//! handlers (`openapi.json`) and checked against them by the schemathesis pass in the tests.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub(crate) async fn document() -> Response {
    let mut response = DOCUMENT.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json_and_names_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.0.3");
        for path in [
            "/healthz",
            "/metrics",
            "/api/v1/status",
            "/api/v1/jobs",
            "/api/v1/jobs/{id}",
            "/api/v1/jobs/{id}/retry",
            "/api/v1/jobs/{id}/cancel",
            "/api/v1/jobs/{id}/bump",
            "/api/v1/jobs/{id}/run-now",
            "/api/v1/nodes/{name}/pause",
            "/api/v1/nodes/{name}/resume",
            "/api/v1/rules/{name}/pause",
            "/api/v1/rules/{name}/resume",
            "/api/v1/rules/{name}/rerun",
            "/api/v1/files",
            "/api/v1/lineage",
            "/api/v1/stale",
            "/api/v1/rules",
            "/api/v1/nodes",
            "/api/v1/cuts",
            "/api/v1/cuts/{name}",
            "/api/v1/cuts/{name}/ranges",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is documented");
        }
    }
}
