//! OpenLineage run events (issue 23) from a real daemon to a real receiver on 127.0.0.1 (the
//! notify tests' listener thread, its first POST answered 500 so the retry is exercised), every
//! event validated against the official JSON schemas by jsonschema in a child process
//! (tests/tools/validate_openlineage.py, from the venv `scripts/deps test` makes). A worker, which
//! has no rules file, sends the events of the jobs it runs from what their plans carry.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::Worker;
use crate::daemon::Daemon;
use crate::env::{Env, stderr, wait_until};
use crate::helpers::require::{DEPS, cannot_run};
use crate::notify::Hook;

/// The venv's python, with jsonschema and openlineage-python; `None` (only with
/// `SHOTROUTER_ALLOW_SKIP=1`) when there is none.
fn validator_python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/openlineage-venv/bin/python3");
    if python.exists() {
        return Some(python);
    }
    cannot_run(
        &format!("no OpenLineage schema venv at {}", python.display()),
        DEPS,
    );
    None
}

/// Writes each event to a file and has the validator check them all; panics with its report.
fn assert_valid(python: &Path, env: &Env, events: &[Value]) {
    let dir = env.path("events");
    std::fs::create_dir_all(&dir).expect("events folder");
    let files: Vec<PathBuf> = events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let file = dir.join(format!("{i}.json"));
            std::fs::write(&file, serde_json::to_vec_pretty(event).expect("json")).expect("write");
            file
        })
        .collect();
    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/validate_openlineage.py"))
        .args(&files)
        .output()
        .expect("the validator runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "events do not validate against the OpenLineage schema:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report.lines().count(), events.len(), "{report}");
}

/// The events of one run (by `runId`), in event time order.
fn runs(events: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut runs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for event in events {
        let id = event["run"]["runId"].as_str().expect("a runId").to_string();
        runs.entry(id).or_default().push(event.clone());
    }
    for run in runs.values_mut() {
        // RFC 3339 in UTC with the same layout: text order is time order, except for the
        // fraction's length; compare as instants.
        run.sort_by_key(|e| instant(e["eventTime"].as_str().expect("eventTime")));
    }
    runs
}

fn instant(text: &str) -> (String, u64) {
    let (seconds, fraction) = text
        .trim_end_matches('Z')
        .split_once('.')
        .unwrap_or((text.trim_end_matches('Z'), "0"));
    let nanos = format!("{fraction:0<9}").parse().expect("digits");
    (seconds.to_string(), nanos)
}

/// The run whose input 0 (the matched file) is `path`.
fn run_of<'a>(runs: &'a BTreeMap<String, Vec<Value>>, path: &Path) -> &'a Vec<Value> {
    let name = path.to_str().expect("UTF-8 in the test");
    runs.values()
        .find(|events| events[0]["inputs"][0]["name"] == name)
        .unwrap_or_else(|| panic!("no run of {name:?}: {runs:#?}"))
}

fn dataset<'a>(datasets: &'a Value, path: &Path) -> &'a Value {
    let name = path.to_str().expect("UTF-8 in the test");
    datasets
        .as_array()
        .and_then(|all| all.iter().find(|d| d["name"] == name))
        .unwrap_or_else(|| panic!("no dataset {name:?} in {datasets:#}"))
}

/// The facet says the file's own inode, size and mtime.
fn assert_version(dataset: &Value, path: &Path) {
    let meta = std::fs::metadata(path).expect("the file is there");
    let facet = &dataset["facets"]["shotrouter_version"];
    assert_eq!(facet["inode"].as_u64(), Some(meta.ino()), "{dataset:#}");
    assert_eq!(facet["size"].as_u64(), Some(meta.size()), "{dataset:#}");
    let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    assert_eq!(facet["mtime_ns"].as_i64(), Some(mtime_ns), "{dataset:#}");
}

#[test]
fn issue_23_openlineage_run_events_validate_against_the_official_schema() {
    let Some(python) = validator_python() else {
        return;
    };
    let env = Env::new();
    let hook = Hook::start(1);
    let lut = env.write("shots/luts/show.cube", "lut v1");
    let plate = env.write("shots/a.exr", "frame");
    let hostile = env
        .path("shots")
        .join(OsStr::from_bytes(b"x y'\"$(x)\n.exr"));
    std::fs::write(&hostile, "frame").expect("hostile name");
    let bad = env.write("shots/b.bad", "x");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nvars:\n  show: bigshow\nlineage:\n  openlineage: \"{url}\"\nrules:\n  - name: review\n    match: \"*.exr\"\n    inputs: [\"luts/show.cube\"]\n    output: \"{{dir}}/{{stem}}.mov\"\n    run: [cp, \"{{path}}\", \"{{out}}\"]\n  - name: broken\n    match: \"*.bad\"\n    run: [\"false\"]\n",
            url = hook.url
        ),
    );
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one job fails: {}",
        stderr(&out)
    );
    wait_until("six events", Duration::from_secs(10), || {
        hook.bodies().len() >= 6
    });
    let events = hook.bodies();
    assert_eq!(events.len(), 6, "{events:#?}");
    assert!(
        stderr(&out).contains("lineage event failed; trying again"),
        "the first POST was answered 500 and tried again: {}",
        stderr(&out)
    );
    assert_valid(&python, &env, &events);

    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let files = format!("file://{}", host.trim());
    for event in &events {
        assert_eq!(event["job"]["namespace"], "shotrouter://bigshow");
        for d in event["inputs"].as_array().into_iter().flatten() {
            assert_eq!(d["namespace"], files.as_str());
        }
    }
    let runs = runs(&events);
    assert_eq!(runs.len(), 3, "one run per attempt: {runs:#?}");
    assert_start_then_end(&runs);

    // The job with a declared input: both files read, each with its version; the product made.
    let review = run_of(&runs, &plate);
    assert_eq!(review[0]["job"]["name"], "review");
    for event in review {
        assert_version(dataset(&event["inputs"], &plate), &plate);
        assert_version(dataset(&event["inputs"], &lut), &lut);
    }
    assert_eq!(review[0]["outputs"], serde_json::json!([]));
    let product = env.path("shots/a.mov");
    assert_version(dataset(&review[1]["outputs"], &product), &product);

    // Any name a file can have comes back as its dataset's name, the product's too.
    let odd = run_of(&runs, &hostile);
    assert_eq!(odd[1]["eventType"], "COMPLETE");
    let odd_product = env
        .path("shots")
        .join(OsStr::from_bytes(b"x y'\"$(x)\n.mov"));
    assert_version(dataset(&odd[1]["outputs"], &odd_product), &odd_product);

    // The failing job: its reason in the spec's errorMessage facet, nothing made.
    let broken = run_of(&runs, &bad);
    assert_eq!(broken[0]["job"]["name"], "broken");
    let error = &broken[1]["run"]["facets"]["errorMessage"];
    assert_eq!(error["message"], "step 1 exited with status 1", "{error:#}");
    assert_eq!(broken[1]["outputs"], serde_json::json!([]));
}

/// Every run's events: a START, then a COMPLETE or a FAIL.
fn assert_start_then_end(runs: &BTreeMap<String, Vec<Value>>) {
    for events in runs.values() {
        let kinds: Vec<&str> = events
            .iter()
            .filter_map(|e| e["eventType"].as_str())
            .collect();
        assert!(
            kinds == ["START", "COMPLETE"] || kinds == ["START", "FAIL"],
            "{events:#?}"
        );
    }
}

#[test]
fn issue_23_a_worker_sends_the_events_of_the_jobs_it_runs() {
    let Some(python) = validator_python() else {
        return;
    };
    let env = Env::new();
    let hook = Hook::start(0);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    // No `show` in `vars:`: the namespace is the rules file's stem.
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nlineage:\n  openlineage: \"{url}\"\nrules:\n  - name: ok\n    match: \"*.ok\"\n    run: [\"true\"]\n  - name: bad\n    match: \"*.bad\"\n    run: [\"false\"]\n",
            url = hook.url
        ),
    );
    let watcher = Daemon::start(&env, &["--no-run"], &[]);
    let store = env.path(".shotrouter").display().to_string();
    let worker = Worker::start(&env, &store, "w1", &[]);
    let ok = env.write("shots/a b.ok", "x");
    let bad = env.write("shots/c $(d).bad", "x");
    wait_until("four events", Duration::from_secs(30), || {
        hook.bodies().len() >= 4
    });
    assert_eq!(worker.stop(), Some(0));
    drop(watcher);
    let events = hook.bodies();
    assert_eq!(events.len(), 4, "{events:#?}");
    assert_valid(&python, &env, &events);
    assert!(
        events
            .iter()
            .all(|e| e["job"]["namespace"] == "shotrouter://rules"),
        "{events:#?}"
    );
    let runs = runs(&events);
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_start_then_end(&runs);
    assert_eq!(run_of(&runs, &ok)[1]["eventType"], "COMPLETE");
    let failed = run_of(&runs, &bad);
    assert_eq!(failed[1]["job"]["name"], "bad");
    assert_eq!(
        failed[1]["run"]["facets"]["errorMessage"]["message"],
        "step 1 exited with status 1"
    );
}
