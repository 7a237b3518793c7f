//! The Prometheus metrics of a real daemon run (`watch --metrics-file`), read back with a real
//! text-format parser: values match what happened, odd rule names are escaped, no file path
//! becomes a label.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use crate::env::{Env, stderr};

/// A rule name that must survive as one escaped label value.
const ODD: &str = "ok \"<script>\" \\ x\ny";

/// One sample as Prometheus's own Python parser reads it.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses `text` with `prometheus_client.parser` (the Python client's text-format parser,
/// Debian's `python3-prometheus-client`, which `scripts/deps test` installs).
fn parse(text: &str) -> Vec<Sample> {
    const SCRIPT: &str = "import json, sys\nfrom prometheus_client.parser import text_string_to_metric_families\nfor family in text_string_to_metric_families(sys.stdin.read()):\n    for s in family.samples:\n        print(json.dumps([s.name, s.labels, s.value]))\n";
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let mut child = std::process::Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("text sent");
    let out = child.wait_with_output().expect("parser ends");
    assert!(
        out.status.success(),
        "the Prometheus parser rejects the page: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("json")
        .lines()
        .map(|line| {
            let (name, labels, value): (String, HashMap<String, String>, f64) =
                serde_json::from_str(line).expect("a sample");
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in {samples:?}"))
        .value
}

#[test]
fn metrics_of_a_real_run_match_what_happened_and_escape_odd_rule_names() {
    let env = Env::new();
    // YAML double-quoted: `\"` and `\\` and `\n` become the characters themselves.
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\njobs: 2\nrules:\n  - name: \"ok \\\"<script>\\\" \\\\ x\\ny\"\n    match: \"**/*.ok\"\n    run: [\"true\"]\n  - name: broken\n    match: \"**/*.bad\"\n    run: [\"false\"]\n    retries: 1\n    backoff: 10ms\n",
    );
    for i in 0..5 {
        env.write(format!("shots/sh010/f{i}.ok"), "x");
    }
    for i in 0..3 {
        env.write(format!("shots/sh010/f{i}.bad"), "x");
    }
    // A file whose name is not UTF-8 and holds markup: paths never reach a label.
    let odd = std::ffi::OsStr::from_bytes(b"shots/sh010/<img src=x>\xff.ok");
    env.write(odd, "x");
    let out = env.run(&[
        "watch",
        "--once",
        "--metrics-file",
        "metrics.prom",
        "rules.yaml",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "three jobs fail: {}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(env.path("metrics.prom")).expect("metrics written at exit");
    assert!(!text.contains("<img"), "no path in the metrics:\n{text}");
    let scrape = parse(&text);
    let jobs = |rule: &str, state: &str| {
        value(
            &scrape,
            "shotrouter_jobs",
            &[("rule", rule), ("state", state)],
        )
    };
    assert_eq!(
        jobs(ODD, "done"),
        6.0,
        "escaped rule name read back whole:\n{text}"
    );
    assert_eq!(jobs(ODD, "failed"), 0.0, "every state has a series");
    assert_eq!(jobs("broken", "failed"), 3.0);
    assert_eq!(jobs("broken", "done"), 0.0);
    assert_eq!(value(&scrape, "shotrouter_queue_depth", &[]), 0.0);
    assert_eq!(
        value(&scrape, "shotrouter_attempts_succeeded_total", &[]),
        6.0
    );
    assert_eq!(
        value(&scrape, "shotrouter_attempts_retried_total", &[]),
        3.0
    );
    assert_eq!(value(&scrape, "shotrouter_jobs_failed_total", &[]), 3.0);
    assert_eq!(value(&scrape, "shotrouter_verify_failures_total", &[]), 0.0);
    assert!(value(&scrape, "shotrouter_watcher_events_total", &[]) >= 9.0);
    // One observation per attempt: 6 successes, 3 failures each tried twice.
    let count = |rule: &str| {
        value(
            &scrape,
            "shotrouter_job_duration_seconds_count",
            &[("rule", rule)],
        )
    };
    assert_eq!(count(ODD), 6.0);
    assert_eq!(count("broken"), 6.0);
    let inf = |rule: &str| {
        value(
            &scrape,
            "shotrouter_job_duration_seconds_bucket",
            &[("rule", rule), ("le", "+Inf")],
        )
    };
    assert_eq!(inf("broken"), 6.0, "buckets are cumulative up to +Inf");
    assert!(
        text.contains("shotrouter_store_commit_duration_seconds_count"),
        "commit latency present:\n{text}"
    );
}
