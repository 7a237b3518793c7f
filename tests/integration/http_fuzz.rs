//! A bounded schemathesis pass over the API, driven by the OpenAPI document the server
//! serves: generated requests (valid and not) must never get a 5xx, and every answer must
//! match the document (status codes, content types, bodies). schemathesis comes from PyPI
//! into `target/schemathesis` (`scripts/deps test`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::env::Env;
use crate::http_api::daemon_with_jobs;

/// schemathesis from `scripts/deps test`'s virtualenv, else from PATH.
fn schemathesis() -> PathBuf {
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis/bin/schemathesis");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("schemathesis")
    }
}

#[test]
fn issue_13_schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let env = Env::new();
    let (daemon, port) = daemon_with_jobs(&env);
    // A cut in the store, so `/api/v1/cuts` answers with rows the document must describe.
    let edl = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/edit/rev3.edl");
    let import = env.run(&[
        "cut",
        "import",
        edl,
        "--name",
        "reel1",
        "--fps",
        "24",
        "--rules",
        "rules.yaml",
    ]);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let mut child = Command::new(schemathesis())
        .args([
            "run",
            &format!("http://127.0.0.1:{port}/api/v1/openapi.json"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "30",
            "--header",
            "Authorization: Bearer s3cret-token",
        ])
        .env("NO_COLOR", "1")
        // Its cache folder (`.schemathesis/`) goes to the test's temp folder, not the checkout.
        .current_dir(env.root())
        .stdout(std::fs::File::create(env.path("schemathesis.out")).expect("out"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("schemathesis runs (install it with `bash scripts/deps test`)");
    // Bounded: the examples cap keeps it near 15 s; a hang is a failure, not a stuck CI.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("schemathesis ran past 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let report = std::fs::read_to_string(env.path("schemathesis.out")).unwrap_or_default();
    assert!(
        status.success(),
        "{report}\n--- daemon log ---\n{}",
        daemon.log_text()
    );
    // A warning (an operation that only ever found 404s, say) ends the summary instead of
    // "No issues found"; failures would be listed under FAILURES.
    assert!(
        report.contains(" passed") && !report.contains("FAILURES"),
        "{report}"
    );
    drop(daemon);
}
