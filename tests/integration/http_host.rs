//! DNS rebinding (issue 19): a request whose `Host` names another server gets 421 and no data
//! on every route, sent as raw bytes to a real daemon; loopback names, the bound address and
//! the names of `--http-host` are answered.

use std::time::Duration;

use crate::daemon::Daemon;
use crate::env::{Env, wait_until};
use crate::http_api::{port_in, raw};

/// The status code and the text of a raw answer.
fn send(port: u16, request: &str) -> (u16, String) {
    let answer = String::from_utf8_lossy(&raw(port, request.as_bytes())).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, answer)
}

/// `METHOD path` with the given `Host` line (none when `host` is `None`).
fn with_host(port: u16, method: &str, path: &str, host: Option<&str>) -> (u16, String) {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    send(
        port,
        &format!("{method} {path} HTTP/1.1\r\n{host}Connection: close\r\n\r\n"),
    )
}

#[test]
fn issue_19_a_foreign_host_name_gets_421_and_no_data_on_every_route() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: ok\n    match: \"**/*.dat\"\n    run: [\"true\"]\n",
    );
    std::fs::create_dir_all(env.path("shots/sh010")).expect("root");
    let daemon = Daemon::start(
        &env,
        &["--http", "127.0.0.1:0", "--http-host", "Shots.Studio.LAN"],
        &[],
    );
    let port = port_in(&daemon.log_text());
    env.write("shots/sh010/secret_plate.dat", "x");
    wait_until("the job to be listed", Duration::from_secs(30), || {
        with_host(port, "GET", "/api/v1/jobs", Some("localhost"))
            .1
            .contains("secret_plate")
    });

    let routes = [
        ("GET", "/"),
        ("GET", "/dashboard.js"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs/1"),
        ("GET", "/api/v1/files?path=shots/sh010/secret_plate.dat"),
        ("GET", "/api/v1/rules"),
        ("GET", "/api/v1/nodes"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/jobs/1/retry"),
        ("GET", "/no/such/page"),
    ];
    for (method, path) in routes {
        for host in [
            "evil.example",
            "evil.example:80",
            &format!("evil.example:{port}"),
        ] {
            let (status, answer) = with_host(port, method, path, Some(host));
            assert_eq!(status, 421, "{method} {path} Host: {host}\n{answer}");
            let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            assert!(body.contains("--http-host evil.example"), "{body}");
            assert!(!body.contains("secret_plate"), "{body}");
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains("content-type: text/plain"),
                "{answer}"
            );
        }
    }
    // The name in an absolute request line counts too, whatever `Host` says.
    let (status, _) = send(
        port,
        "GET http://evil.example/api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 421);
    // So does any one of two `Host` lines.
    let (status, _) = send(
        port,
        "GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert!(status == 421 || status == 400, "{status}");

    for host in [
        "localhost".to_string(),
        format!("LocalHost:{port}"),
        "127.0.0.1".to_string(),
        format!("127.0.0.1:{port}"),
        format!("127.1.2.3:{port}"),
        "[::1]".to_string(),
        format!("[::1]:{port}"),
        "shots.studio.lan".to_string(),
        format!("shots.studio.lan:{port}"),
    ] {
        let (status, answer) = with_host(port, "GET", "/api/v1/jobs", Some(&host));
        assert_eq!(status, 200, "Host: {host}\n{answer}");
        assert!(answer.contains("secret_plate"), "{answer}");
        assert_eq!(
            with_host(port, "GET", "/healthz", Some(&host)).0,
            200,
            "{host}"
        );
    }
    // HTTP/1.0 without `Host`: browsers always send one, health checkers often do not.
    let (status, answer) = send(port, "GET /api/v1/jobs HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("secret_plate"), "{answer}");
    assert_eq!(daemon.stop(), Some(0));
}

/// A `serve` process, killed if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn issue_19_serve_answers_its_http_host_and_refuses_others() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: ok\n    match: \"**/*.dat\"\n    run: [\"true\"]\n",
    );
    env.write("shots/sh010/secret_plate.dat", "x");
    let once = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(once.status.code(), Some(0), "{}", crate::env::stderr(&once));
    let state = env.path(".shotrouter");
    let log = env.path("serve.log");
    let mut server = KillOnDrop(
        env.command(&[
            "serve",
            "--state",
            state.to_str().expect("utf-8 temp path"),
            "--http",
            "127.0.0.1:0",
            "--http-host",
            "review.studio.lan",
        ])
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("serve starts"),
    );
    let read_log =
        || String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    wait_until("the server to listen", Duration::from_secs(10), || {
        read_log().contains("listening on")
    });
    let port = port_in(&read_log());
    let (status, answer) = with_host(port, "GET", "/api/v1/jobs", Some("review.studio.lan:8470"));
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("secret_plate"), "{answer}");
    let (status, answer) = with_host(port, "GET", "/api/v1/jobs", Some("rebind.evil.example"));
    assert_eq!(status, 421, "{answer}");
    assert!(!answer.contains("secret_plate"), "{answer}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    assert_eq!(
        server.0.wait().expect("exits").code(),
        Some(0),
        "{}",
        read_log()
    );
    for command in ["watch", "worker", "serve"] {
        let help = env.run(&[command, "--help"]);
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("--http-host <NAME>"),
            "{command}"
        );
    }
}
