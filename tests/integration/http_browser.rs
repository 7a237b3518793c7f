//! The dashboard in a real browser: Debian's headless Chromium, driven by playwright-core
//! (`tests/browser/`, installed by `scripts/deps test`), against a real daemon. With
//! `SHOTROUTER_SCREENSHOT=1` it also saves `docs/dashboard.png`.

use std::path::Path;
use std::process::Command;

use crate::daemon::Daemon;
use crate::env::Env;
use crate::http_api::port_in;

#[test]
fn issue_13_the_dashboard_goes_live_shows_failures_as_text_and_retries() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nrules:\n  - name: review\n    match: \"**/*.tif\"\n    run: [sleep, \"2\"]\n  - name: check\n    match: \"**/checked/*.tif\"\n    run: [test, -e, \"{}\"]\n",
            env.path("ok").display()
        ),
    );
    env.write("token", "browser-token\n");
    std::fs::create_dir_all(env.path("shots/sh010/checked")).expect("root");
    let daemon = Daemon::start(
        &env,
        &["--http", "127.0.0.1:0", "--http-token-file", "token"],
        &[],
    );
    let port = port_in(&daemon.log_text());
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `bash scripts/deps test` (npm ci in tests/browser)"
    );
    let mut command = Command::new("node");
    command
        .arg(browser.join("dashboard.mjs"))
        .current_dir(&browser)
        .env("URL", format!("http://127.0.0.1:{port}/"))
        .env("TOKEN", "browser-token")
        .env("SHOTS", env.path("shots/sh010"))
        .env("OK", env.path("ok"));
    if std::env::var_os("SHOTROUTER_SCREENSHOT").is_some() {
        command.env(
            "SCREENSHOT",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png"),
        );
    }
    let out = command.output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\n--- daemon log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log_text()
    );
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    assert_eq!(daemon.stop(), Some(0));
}
