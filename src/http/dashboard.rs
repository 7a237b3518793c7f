//! The dashboard at `/`: one HTML page, a stylesheet and a script, embedded in the binary (no
//! build step). The server renders the first view into the page, every file name escaped, so
//! it shows something before the script runs; the script then keeps it live from
//! `/api/v1/events` and inserts every value with `textContent`, never as HTML. A strict
//! Content-Security-Policy forbids inline scripts besides.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State as Extract;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::store::JobRow;

use super::State;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// What the page may load: only its own script, style and API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes.
pub(crate) fn routes() -> Router<State> {
    Router::new()
        .route("/", get(page))
        .route("/dashboard.js", get(script))
        .route("/dashboard.css", get(style))
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Table rows of the newest jobs, escaped: the page's content until the first event.
fn rows(jobs: &[JobRow]) -> String {
    let mut out = String::new();
    for job in jobs {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"st-{status}\">{status}</td><td>{}</td><td class=\"path\">{}</td><td>{}</td><td class=\"pic\"></td></tr>",
            job.id,
            escape(&job.rule),
            escape(&job.path),
            escape(job.result.as_deref().unwrap_or("")),
            status = escape(&job.status),
        );
    }
    if out.is_empty() {
        out.push_str("<tr><td colspan=\"6\">no jobs yet</td></tr>");
    }
    out
}

fn with_headers(content_type: &'static str, body: String) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn page(Extract(state): Extract<State>) -> Response {
    let live = super::live::fresh(&state).await;
    let html = PAGE.replace("<!--RECENT-->", &rows(&live.view.recent));
    with_headers("text/html; charset=utf-8", html)
}

async fn script() -> Response {
    with_headers("text/javascript; charset=utf-8", SCRIPT.to_string())
}

async fn style() -> Response {
    with_headers("text/css; charset=utf-8", STYLE.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_escaped_in_the_first_render() {
        let job = JobRow {
            id: 7,
            rule: "review".into(),
            path: "/shots/<img src=x onerror=alert(1)>\"'&.tif".into(),
            status: "failed".into(),
            attempts: 1,
            result: Some("exit 1 <b>".into()),
            created_at: 0,
            started_at: None,
            finished_at: None,
            output: None,
            node: None,
            progress: None,
            priority: 0,
        };
        let html = rows(&[job]);
        assert!(
            html.contains("/shots/&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;.tif"),
            "{html}"
        );
        assert!(html.contains("exit 1 &lt;b&gt;"), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }
}
