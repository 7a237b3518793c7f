//! The HTTP API against a real daemon with real jobs: status codes, cursor pages, filters,
//! the token and the Origin check, escaping of hostile and non-UTF-8 file names, and raw
//! malformed requests the server must survive.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::env::{Env, stderr, wait_until};

/// A response: status, headers (lowercase names), body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends raw bytes and reads the whole answer (the server closes after `Connection: close`).
pub fn raw(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(request).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// One HTTP/1.1 request with extra header lines.
pub fn request(port: u16, method: &str, path: &str, headers: &[&str]) -> Reply {
    let mut text =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    let answer = raw(port, text.as_bytes());
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// `GET path`.
pub fn get(port: u16, path: &str) -> Reply {
    request(port, "GET", path, &[])
}

/// The port a daemon's or server's log says it listens on.
pub fn port_in(log: &str) -> u16 {
    log.lines()
        .find_map(|l| l.split("listening on 127.0.0.1:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no `listening on` line in {log}"))
}

/// Every job's id and status through the API, newest first.
fn statuses(port: u16) -> Vec<(i64, String)> {
    let reply = get(port, "/api/v1/jobs?limit=500");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["id"].as_i64().expect("id"),
                j["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

const HOSTILE: &str = "<script>alert('x') \"q\" &amp;.dat";

/// A daemon with a token, whose store holds done jobs, one failed job with a hostile name and
/// one of a non-UTF-8 name: `ok` (true) on every `.dat`, `check` (fails until `ok` exists)
/// on `checked/`, `slow` (sleeps) on `slow/`.
pub fn daemon_with_jobs(env: &Env) -> (Daemon, u16) {
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nrules:\n  - name: ok\n    match: \"**/*.dat\"\n    run: [\"true\"]\n  - name: check\n    match: \"**/checked/*.dat\"\n    run: [test, -e, \"{}\"]\n  - name: slow\n    match: \"**/slow/*.dat\"\n    run: [sleep, \"60\"]\n",
            env.path("ok").display()
        ),
    );
    env.write("token", "s3cret-token\n");
    std::fs::create_dir_all(env.path("shots/sh010/checked")).expect("root");
    let daemon = Daemon::start(
        env,
        &["--http", "127.0.0.1:0", "--http-token-file", "token"],
        &[],
    );
    let port = port_in(&daemon.log_text());
    for i in 0..5 {
        env.write(format!("shots/sh010/plate_{i}.dat"), "x");
    }
    env.write(format!("shots/sh010/checked/{HOSTILE}"), "x");
    let odd = std::ffi::OsStr::from_bytes(b"odd\xff\xfe.dat");
    std::fs::write(env.path("shots/sh010").join(odd), "x").expect("non-UTF-8 name");
    wait_until("8 jobs to end", Duration::from_secs(30), || {
        let all = statuses(port);
        all.len() == 8 && all.iter().all(|(_, s)| s == "done" || s == "failed")
    });
    (daemon, port)
}

#[test]
fn issue_13_jobs_page_by_cursor_filter_and_escape_file_names() {
    let env = Env::new();
    let (daemon, port) = daemon_with_jobs(&env);
    let all = statuses(port);
    // Pages of 3 by the cursor: every job once, in order.
    let mut paged = Vec::new();
    let mut path = "/api/v1/jobs?limit=3".to_string();
    loop {
        let page = get(port, &path).json();
        let jobs = page["jobs"].as_array().expect("jobs");
        assert!(jobs.len() <= 3);
        paged.extend(jobs.iter().map(|j| j["id"].as_i64().expect("id")));
        match page["next_before"].as_i64() {
            Some(next) => path = format!("/api/v1/jobs?limit=3&before={next}"),
            None => break,
        }
    }
    assert_eq!(paged, all.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    // Filters.
    let failed = get(port, "/api/v1/jobs?status=failed").json();
    let failed = failed["jobs"].as_array().expect("jobs");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["rule"], "check");
    assert!(failed[0]["path"].as_str().expect("path").ends_with(HOSTILE));
    let of_rule = get(port, "/api/v1/jobs?rule=check&since=1h").json();
    assert_eq!(of_rule["jobs"].as_array().expect("jobs").len(), 1);
    let none = get(port, "/api/v1/jobs?rule=nosuch").json();
    assert_eq!(none["jobs"], serde_json::json!([]));
    for (query, needle) in [
        ("status=bogus", "unknown status `bogus`"),
        ("limit=0", "bad `limit` `0`"),
        ("limit=501", "give 1 to 500"),
        ("before=abc", "`abc` is not a job id"),
        ("since=5", "add a unit"),
    ] {
        let reply = get(port, &format!("/api/v1/jobs?{query}"));
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let error = reply.json();
        assert!(
            error["error"].as_str().expect("error").contains(needle),
            "{query}: {error}"
        );
    }
    // One job: argv, log tail from the state folder, 404 and 400.
    let id = failed[0]["id"].as_i64().expect("id");
    let job = get(port, &format!("/api/v1/jobs/{id}")).json();
    assert_eq!(job["steps"][0][0], "test");
    let tail = job["log_tail"].as_array().expect("log tail");
    assert!(
        tail.iter().any(|l| l
            .as_str()
            .is_some_and(|l| l.contains("exited with status 1"))),
        "{tail:?}"
    );
    assert_eq!(get(port, "/api/v1/jobs/999999").status, 404);
    assert_eq!(get(port, "/api/v1/jobs/abc").status, 400);
    assert_eq!(get(port, "/api/v1/jobs/%FF").status, 400);
    // A non-UTF-8 name is looked up by its bytes.
    let mut odd = env.path("shots/sh010").as_os_str().as_bytes().to_vec();
    odd.extend_from_slice(b"/odd\xff\xfe.dat");
    let encoded: String = odd
        .iter()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'_' | b'-' => (*b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect();
    let file = get(port, &format!("/api/v1/files?path={encoded}"));
    assert_eq!(file.status, 200, "{}", file.body);
    assert_eq!(file.json()["record"]["jobs"][0]["status"], "done");
    assert!(
        file.json()["path"]
            .as_str()
            .expect("path")
            .contains("odd\u{fffd}\u{fffd}.dat")
    );
    assert_eq!(get(port, "/api/v1/files?path=relative/a.dat").status, 400);
    assert_eq!(get(port, "/api/v1/files?path=/nowhere/a.dat").status, 404);
    assert_eq!(get(port, "/api/v1/files").status, 400);
    // Lineage and staleness: the same bytes, the same checks.
    let walk = get(
        port,
        &format!("/api/v1/lineage?path={encoded}&direction=down&depth=3"),
    );
    assert_eq!(walk.status, 200, "{}", walk.body);
    let walk = walk.json();
    assert_eq!(walk["direction"], "down");
    assert!(
        walk["edges"].is_array() && walk["truncated"] == false,
        "{walk}"
    );
    for (query, needle) in [
        ("", "?path="),
        ("path=relative/a.dat", "must be absolute"),
        ("path=/a&direction=sideways", "bad `direction` `sideways`"),
        ("path=/a&depth=0", "bad `depth` `0`"),
    ] {
        let reply = get(port, &format!("/api/v1/lineage?{query}"));
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        let error = reply.json();
        assert!(
            error["error"].as_str().expect("error").contains(needle),
            "{query}: {error}"
        );
    }
    let stale = get(port, "/api/v1/stale");
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert_eq!(stale.json()["stale"], serde_json::json!([]));
    // The page escapes the name once the live view has it; JSON carries it as a string.
    wait_until(
        "the page to list the hostile name",
        Duration::from_secs(10),
        || {
            get(port, "/")
                .body
                .contains("&lt;script&gt;alert(&#39;x&#39;) &quot;q&quot; &amp;amp;.dat")
        },
    );
    let page = get(port, "/");
    assert!(
        !page.body.contains("<script>alert"),
        "unescaped on the page"
    );
    assert!(
        page.header("content-security-policy")
            .is_some_and(|c| c.contains("script-src 'self'")),
        "{:?}",
        page.headers
    );
    // Server-sent events: the view is one `data:` line of JSON.
    let events = raw_until(
        port,
        b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"\n\n",
    );
    let data = events
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no data line in {events}"));
    let view: Value = serde_json::from_str(data).expect("one JSON line");
    assert!(view["recent"].as_array().expect("recent").len() >= 8);
    for path in [
        "/healthz",
        "/api/v1/status",
        "/api/v1/rules",
        "/api/v1/nodes",
        "/api/v1/openapi.json",
    ] {
        let reply = get(port, path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let _ = reply.json();
    }
    assert_eq!(get(port, "/api/v1/status").json()["store"]["failed_24h"], 1);
    assert_eq!(get(port, "/nope").status, 404);
    assert_eq!(request(port, "DELETE", "/api/v1/status", &[]).status, 405);
    assert_eq!(daemon.stop(), Some(0));
}

/// Reads a streamed answer until `end` appears in its body (after the head).
fn raw_until(port: u16, request: &[u8], end: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("send");
    let mut seen = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let n = stream.read(&mut buf).expect("the stream goes on");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n")
            && seen[at + 4..].windows(end.len()).any(|w| w == end)
        {
            return String::from_utf8_lossy(&seen).into_owned();
        }
    }
}

#[test]
fn issue_13_actions_need_the_token_and_the_servers_own_origin() {
    let env = Env::new();
    let (daemon, port) = daemon_with_jobs(&env);
    let failed = get(port, "/api/v1/jobs?status=failed").json()["jobs"][0]["id"]
        .as_i64()
        .expect("a failed job");
    let retry = format!("/api/v1/jobs/{failed}/retry");
    let good = "Authorization: Bearer s3cret-token";
    for (headers, status) in [
        (&[][..], 401),
        (&["Authorization: Bearer wrong"][..], 401),
        (&["Authorization: s3cret-token"][..], 401),
        (&[good, "Origin: http://evil.example"][..], 403),
    ] {
        let reply = request(port, "POST", &retry, headers);
        assert_eq!(reply.status, status, "{headers:?}: {}", reply.body);
        let _ = reply.json();
    }
    assert_eq!(
        statuses(port).iter().filter(|(_, s)| s == "failed").count(),
        1,
        "nothing changed"
    );
    env.write("ok", "");
    let own_origin = format!("Origin: http://127.0.0.1:{port}");
    let reply = request(port, "POST", &retry, &[good, &own_origin]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["queued"], serde_json::json!([failed]));
    wait_until(
        "the retried job to be done",
        Duration::from_secs(10),
        || {
            statuses(port)
                .iter()
                .any(|(id, s)| *id == failed && s == "done")
        },
    );
    let again = request(port, "POST", &retry, &[good]);
    assert_eq!(again.status, 409, "{}", again.body);
    // Cancel stops the running job's process group.
    std::fs::create_dir_all(env.path("shots/sh010/slow")).expect("dir");
    env.write("shots/sh010/slow/long.dat", "x");
    let slow = || get(port, "/api/v1/jobs?rule=slow").json()["jobs"][0].clone();
    wait_until("the slow job to run", Duration::from_secs(10), || {
        slow()["status"] == "running"
    });
    let id = slow()["id"].as_i64().expect("id");
    let reply = request(port, "POST", &format!("/api/v1/jobs/{id}/cancel"), &[good]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.json()["stopped_processes"].as_u64().expect("count") >= 1);
    assert_eq!(slow()["status"], "cancelled");
    assert_eq!(
        request(port, "POST", "/api/v1/jobs/999999/cancel", &[good]).status,
        404
    );
    // Rerun.
    let reply = request(port, "POST", "/api/v1/rules/check/rerun", &[good]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["queued"], 1);
    assert_eq!(
        request(port, "POST", "/api/v1/rules/nosuch/rerun", &[good]).status,
        404
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn issue_13_serve_is_read_only_without_a_token_and_survives_bad_http() {
    let env = Env::new();
    let (daemon, _) = daemon_with_jobs(&env);
    assert_eq!(daemon.stop(), Some(0));
    let state = env.path(".shotrouter");
    let state = state.to_str().expect("utf-8 temp path");
    let missing = env.run(&["serve", "--state", "nowhere", "--http", "127.0.0.1:0"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("no shotrouter state at `nowhere`"),
        "{}",
        stderr(&missing)
    );
    let log = env.path("serve.log");
    let mut server = env
        .command(&["serve", "--state", state, "--http", "127.0.0.1:0"])
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("serve starts");
    let read_log =
        || String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    wait_until("the server to listen", Duration::from_secs(10), || {
        read_log().contains("listening on")
    });
    let port = port_in(&read_log());
    let reply = request(
        port,
        "POST",
        "/api/v1/jobs/1/retry",
        &["Authorization: Bearer x"],
    );
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply.json()["error"]
            .as_str()
            .expect("error")
            .contains("--http-token-file")
    );
    // Without a watcher there are no rules to read shots with, and no thumbnail was drawn.
    let shots = get(port, "/api/v1/shots");
    assert_eq!(shots.status, 503, "{}", shots.body);
    assert!(
        shots.json()["error"]
            .as_str()
            .expect("error")
            .contains("watch --http")
    );
    assert_eq!(get(port, "/api/v1/jobs/1/thumbnail").status, 404);
    assert_eq!(get(port, "/api/v1/jobs/x/thumbnail").status, 400);
    let chart = get(port, "/api/v1/charts/done.svg");
    assert_eq!(chart.status, 200, "{}", chart.body);
    assert!(chart.body.contains("<polyline"), "{}", chart.body);
    // A slow client holding a connection open does not stop others.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .expect("half a request");
    assert_eq!(get(port, "/healthz").status, 200);
    // Malformed requests get a 4xx, and the server goes on.
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    for bad in [
        huge.as_bytes(),
        b"GARBAGE\x00\xff\r\n\r\n",
        b"GET /api/v1/status HTTP/9.9\r\n\r\n",
        b"GET /api/v1/jobs?limit=%ZZ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"POST /api/v1/jobs/1/retry HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\n",
    ] {
        let answer = raw(port, bad);
        let head = String::from_utf8_lossy(&answer[..answer.len().min(40)]).into_owned();
        assert!(
            head.starts_with("HTTP/1.1 4"),
            "{:?} -> {head:?}",
            String::from_utf8_lossy(&bad[..bad.len().min(40)])
        );
    }
    assert_eq!(get(port, "/healthz").status, 200, "still serving");
    assert_eq!(get(port, "/api/v1/status").json()["engine"], Value::Null);
    drop(slow);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    let status = server.wait().expect("exits");
    assert_eq!(status.code(), Some(0), "{}", read_log());
}

#[test]
fn issue_13_metrics_are_served_beside_the_api_with_the_stores_counts() {
    let env = Env::new();
    let (_daemon, port) = daemon_with_jobs(&env);
    let reply = get(port, "/metrics");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        reply.headers
    );
    let line = |rule: &str, state: &str| {
        reply
            .body
            .lines()
            .find(|l| {
                l.starts_with("shotrouter_jobs{")
                    && l.contains(&format!("rule=\"{rule}\""))
                    && l.contains(&format!("state=\"{state}\""))
            })
            .unwrap_or_else(|| panic!("no {rule}/{state} series in:\n{}", reply.body))
            .to_string()
    };
    // Five plates, the hostile name and the non-UTF-8 one: `ok` matches every `.dat`.
    assert!(line("ok", "done").ends_with(" 7"), "{}", line("ok", "done"));
    assert!(
        line("check", "failed").ends_with(" 1"),
        "{}",
        line("check", "failed")
    );
    assert!(
        !reply.body.contains("odd") && !reply.body.contains("<img"),
        "no file name in a label"
    );
}
