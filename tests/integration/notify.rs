//! `notify:` against real listeners: a local HTTP server (a TcpListener thread) receives the
//! webhooks' JSON POSTs from a real daemon, a failing webhook is tried again, a command gets
//! the JSON body on its stdin, and a webhook that accepts and never answers delays no job.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::env::{Env, stderr, wait_until};

/// A local HTTP server that answers the first `fail_first` requests with 500, then 200, and
/// keeps every request body.
pub struct Hook {
    pub url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

impl Hook {
    pub fn start(fail_first: usize) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let (b, s) = (bodies.clone(), statuses.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let served = s.lock().expect("lock").len();
                let status = if served < fail_first { 500 } else { 200 };
                if let Some(body) = serve(stream, status) {
                    s.lock().expect("lock").push(status);
                    if status == 200 {
                        b.lock().expect("lock").push(body);
                    }
                }
            }
        });
        Hook {
            url,
            bodies,
            statuses,
        }
    }

    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().expect("lock").clone()
    }
}

/// Reads one POST (headers, then Content-Length bytes) and answers `status`.
fn serve(stream: TcpStream, status: u16) -> Option<serde_json::Value> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    assert!(request_line.starts_with("POST /hook "), "{request_line}");
    let mut json = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        json |= lower == "content-type: application/json";
    }
    assert!(json, "the body is sent as JSON");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let reason = if status == 200 {
        "OK"
    } else {
        "Internal Server Error"
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    serde_json::from_slice(&body).ok()
}

#[test]
fn webhooks_and_commands_are_told_of_done_and_failed_jobs_and_failures_are_retried() {
    let env = Env::new();
    let hook = Hook::start(1);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write("shots/a.ok", "x");
    env.write("shots/b.bad", "x");
    let received = env.path("received.jsonl");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nnotify:\n  - on: [done, failed]\n    webhook: \"{url}\"\nrules:\n  - name: ok\n    match: \"*.ok\"\n    run: [\"true\"]\n  - name: bad\n    match: \"*.bad\"\n    run: [\"false\"]\n    retries: 1\n    backoff: 10ms\n    notify:\n      - on: [failed]\n        webhook: \"{url}\"\n        command: [sh, -c, 'cat >> \"$1\"; echo >> \"$1\"', sh, \"{received}\"]\n",
            url = hook.url,
            received = received.display()
        ),
    );
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    wait_until("both webhooks", Duration::from_secs(10), || {
        hook.bodies().len() == 2
    });
    let mut bodies = hook.bodies();
    bodies.sort_by_key(|b| b["rule"].as_str().unwrap_or_default().to_string());
    assert_eq!(bodies[0]["event"], "failed");
    assert_eq!(bodies[0]["rule"], "bad");
    assert_eq!(bodies[0]["attempt"], 2, "after the last retry only");
    assert_eq!(bodies[0]["reason"], "step 1 exited with status 1");
    assert!(
        bodies[0]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("shots/b.bad"))
    );
    assert!(bodies[0]["duration_ms"].is_u64() && bodies[0]["at_ms"].is_i64());
    assert!(bodies[0]["node"].as_str().is_some_and(|n| !n.is_empty()));
    assert_eq!(bodies[1]["event"], "done");
    assert_eq!(bodies[1]["rule"], "ok");
    assert_eq!(bodies[1]["reason"], serde_json::Value::Null);
    assert!(
        hook.statuses.lock().expect("lock").contains(&500),
        "the first POST failed and was tried again"
    );
    assert!(
        stderr(&out).contains("notification failed; trying again"),
        "{}",
        stderr(&out)
    );
    let lines = std::fs::read_to_string(&received).expect("the command ran");
    let from_command: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON on stdin"))
        .collect();
    assert_eq!(from_command.len(), 1, "{lines}");
    assert_eq!(from_command[0]["event"], "failed");
    assert_eq!(from_command[0]["path_b64"], bodies[0]["path_b64"]);
}

#[test]
fn a_webhook_that_never_answers_delays_no_job_and_no_stop() {
    let env = Env::new();
    // Accepts connections and never reads or answers them.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().expect("lock").push(stream);
        }
    });
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\njobs: 2\nnotify: {{on: [done], webhook: \"{url}\"}}\nrules:\n  - name: ok\n    match: \"*.ok\"\n    run: [\"true\"]\n"
        ),
    );
    let daemon = Daemon::start(&env, &[], &[]);
    let started = Instant::now();
    for i in 0..20 {
        std::fs::write(env.path(format!("shots/{i}.ok")), b"x").expect("file");
    }
    daemon.wait_idle_with(20, Duration::from_secs(30));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "20 trivial jobs took {took:?} with a webhook that hangs 10 s per try"
    );
    assert!(
        !held.lock().expect("lock").is_empty(),
        "the webhook was tried"
    );
    let stopping = Instant::now();
    assert_eq!(daemon.stop(), Some(0));
    assert!(
        stopping.elapsed() < Duration::from_secs(6),
        "the stop took {:?}",
        stopping.elapsed()
    );
}

#[test]
fn a_job_queued_longer_than_stuck_after_is_reported_once() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write("shots/a.slow", "x");
    env.write("shots/b.slow", "x");
    let received = env.path("stuck.jsonl");
    // One worker, 1.5 s jobs: the second waits about 1.5 s, past its 300 ms limit.
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\njobs: 1\nrules:\n  - name: slow\n    match: \"*.slow\"\n    run: [sleep, \"1.5\"]\n    notify: {{on: [stuck], stuck_after: 300ms, command: [sh, -c, 'cat >> \"$1\"; echo >> \"$1\"', sh, \"{}\"]}}\n",
            received.display()
        ),
    );
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = std::fs::read_to_string(&received).expect("the command ran");
    let notices: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON on stdin"))
        .collect();
    assert_eq!(notices.len(), 1, "one job waited, told once: {lines}");
    assert_eq!(notices[0]["event"], "stuck");
    assert!(
        notices[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("queued for ")),
        "{lines}"
    );
}

#[test]
fn a_product_failing_verification_is_counted_and_notified_for_each_attempt() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write("shots/a.txt", "not a movie");
    let received = env.path("verify.jsonl");
    // `cp` writes a text file where a ProRes movie is expected: ffprobe refuses it.
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nrules:\n  - name: review\n    match: \"*.txt\"\n    output: \"{{dir}}/{{stem}}.mov\"\n    run: [cp, \"{{path}}\", \"{{out}}\"]\n    verify: {{codec: prores}}\n    retries: 1\n    backoff: 10ms\n    notify: {{on: [verify_failed], command: [sh, -c, 'cat >> \"$1\"; echo >> \"$1\"', sh, \"{}\"]}}\n",
            received.display()
        ),
    );
    let out = env.run(&["watch", "--once", "--metrics-file", "m.prom", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = std::fs::read_to_string(&received).expect("the command ran");
    let notices: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON on stdin"))
        .collect();
    let attempts: Vec<u64> = notices
        .iter()
        .filter_map(|n| n["attempt"].as_u64())
        .collect();
    assert_eq!(attempts, [1, 2], "each attempt: {lines}");
    assert!(
        notices.iter().all(|n| n["event"] == "verify_failed"
            && n["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("verification failed"))),
        "{lines}"
    );
    let metrics = std::fs::read_to_string(env.path("m.prom")).expect("metrics");
    assert!(
        metrics.contains("\nshotrouter_verify_failures_total 2\n"),
        "{metrics}"
    );
}
