//! Which `Host` names the server answers: a defence against DNS rebinding, where another site's
//! page re-points its own name at this address and reads the job list through the user's
//! browser. A browser always sends the name from its address bar, so answering only loopback
//! names, the bound address and the names given with `--http-host` leaves such a page with a 421
//! and no data. Runs before every route (API, SSE, `/metrics`, `/healthz`, the dashboard).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The names a request's `Host` may carry, ports aside.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// The address the server is bound to.
    bound: IpAddr,
    /// Names given with `--http-host`, lowercase, without port or brackets.
    names: Vec<String>,
}

impl AllowedHosts {
    /// Loopback names, `bound` and each of `names` (`--http-host`; a port or brackets in them
    /// are ignored, case too).
    pub fn new(bound: IpAddr, names: &[String]) -> AllowedHosts {
        AllowedHosts {
            bound,
            names: names
                .iter()
                .map(|n| name_of(n).to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether a `Host` value names this server.
    ///
    /// An IP literal is always safe when the server listens on every address (`0.0.0.0`,
    /// `[::]`): a rebinding attack needs a DNS name of its own, and the browser sends that name.
    pub fn allows(&self, host: &str) -> bool {
        let name = name_of(host);
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            return ip.is_loopback() || ip == self.bound || self.bound.is_unspecified();
        }
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// `example` of `example:8470`, `::1` of `[::1]:8470`, and a bare name or address as it is.
fn name_of(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address (no brackets) has several colons and no port.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The middleware: a request whose `Host` (or absolute URI) names another server gets 421.
///
/// A request with no `Host` at all (HTTP/1.0) is answered: browsers always send one, so it
/// cannot come from a rebinding page, and load-balancer health checks often send none.
pub(crate) async fn check(
    State(allowed): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let from_header = request
        .headers()
        .get_all(header::HOST)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let from_uri = request.uri().authority().map(|a| a.as_str().to_string());
    let refused = from_header
        .chain(from_uri)
        .find(|host| !allowed.allows(host));
    match refused {
        Some(host) => misdirected(&host),
        None => next.run(request).await,
    }
}

/// 421 with a short plain explanation and nothing else.
fn misdirected(host: &str) -> Response {
    tracing::debug!(host, "http: refused a request for another host name");
    let body = format!(
        "421 misdirected request: this server does not answer to the name `{}`; if that is its \
         name, start it with `--http-host {}` (loopback names and the bound address need none)\n",
        host.escape_debug(),
        name_of(host).escape_debug(),
    );
    let mut response = (StatusCode::MISDIRECTED_REQUEST, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_the_bound_address_and_named_hosts_are_answered() {
        let bound: IpAddr = "10.0.0.5".parse().expect("ip");
        let allowed = AllowedHosts::new(bound, &["Render-01.Studio.lan".into()]);
        let cases = [
            ("localhost", true),
            ("LOCALHOST:8470", true),
            ("127.0.0.1", true),
            ("127.8.9.10:80", true),
            ("[::1]", true),
            ("[::1]:8470", true),
            ("::1", true),
            ("10.0.0.5:8470", true),
            ("render-01.studio.lan:8470", true),
            ("evil.example", false),
            ("evil.example:8470", false),
            ("10.0.0.6", false),
            ("[::2]:8470", false),
            ("localhost.evil.example", false),
            ("127.0.0.1.evil.example", false),
            ("", false),
        ];
        for (host, want) in cases {
            assert_eq!(allowed.allows(host), want, "{host:?}");
        }
        let wildcard = AllowedHosts::new("0.0.0.0".parse().expect("ip"), &[]);
        assert!(wildcard.allows("10.0.0.6:8470"));
        assert!(!wildcard.allows("evil.example"));
    }
}
