//! The dashboard in a real browser: Debian's headless Chromium, driven by playwright-core
//! (`tests/browser/`, installed by `scripts/deps test`), against a real daemon. With
//! `SHOTROUTER_SCREENSHOT=1` it also saves `docs/dashboard.png`. The page shows an imported
//! cut's waste as the watcher works it out, the jobs waiting for their declared inputs, and the
//! poster frame ffmpeg draws of a `thumbnail: true` rule's product; its control panel pauses
//! and resumes a rule and the node, and bumps and runs now queued jobs (issue 24).

use std::path::Path;
use std::process::Command;

use crate::daemon::Daemon;
use crate::env::{Env, stderr};
use crate::http_api::port_in;

/// A shot name that is an HTML payload (no `/`: it is a folder too).
const EVIL_SHOT: &str = "<img src=y onerror=alert(2)>";

#[test]
fn issue_13_the_dashboard_goes_live_shows_failures_as_text_and_retries() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\ncuts:\n  shot: \"^(?P<shot>.+)_anim$\"\n  fps: 24\nrules:\n  - name: review\n    match: \"**/*.tif\"\n    run: [sleep, \"2\"]\n  - name: check\n    match: \"**/checked/*.tif\"\n    run: [test, -e, \"{}\"]\n  - name: plates\n    regex: '^(?P<shot>[^/]+)/plates/p\\.[0-9]+\\.exr$'\n    run: [\"true\"]\n  - name: graded\n    regex: '^(?P<shot>[^/]+)/plates/p\\.[0-9]+\\.exr$'\n    inputs: [\"{{root}}/{{shot}}/grade.cube\"]\n    run: [\"true\"]\n  - name: poster\n    match: \"**/*.poster\"\n    output: \"{{dir}}/{{stem}}.mp4\"\n    thumbnail: true\n    run: [ffmpeg, -nostdin, -v, error, -f, lavfi, -i, \"testsrc=size=640x360:rate=24:duration=2\", -pix_fmt, yuv420p, -f, mp4, \"{{out}}\"]\n  - name: hold\n    match: \"**/*.hold\"\n    run: [sleep, \"60\"]\n  - name: night\n    match: \"**/*.night\"\n    window: \"19:00-07:00\"\n    run: [\"true\"]\n  - name: preview\n    regex: '^(?P<shot>[^/]+)/[^/]+\\.preview$'\n    output: \"{{dir}}/{{stem}}.mp4\"\n    thumbnail: true\n    run: [ffmpeg, -nostdin, -v, error, -f, lavfi, -i, \"testsrc=size=640x360:rate=24:duration=1\", -pix_fmt, yuv420p, -f, mp4, \"{{out}}\"]\n  - name: qc\n    regex: '^(?P<shot>[^/]+)/[^/]+\\.qc$'\n    run: [\"false\"]\n",
            env.path("ok").display()
        ),
    );
    env.write("token", "browser-token\n");
    std::fs::create_dir_all(env.path("shots/sh010/checked")).expect("root");
    // Noon for the rules' windows: the `night` rule's jobs wait, until run now.
    let daemon = Daemon::start(
        &env,
        &["--http", "127.0.0.1:0", "--http-token-file", "token"],
        &[("SHOTROUTER_FAKE_NOW", "12:00")],
    );
    let port = port_in(&daemon.log_text());
    // A cut whose second shot is named like an HTML payload, and frames of both: the waste
    // panel shows sh010's frame outside and the frames missing, all as text.
    for frame in ["1000", "1010"] {
        env.write(format!("shots/sh010/plates/p.{frame}.exr"), frame);
    }
    env.write(format!("shots/{EVIL_SHOT}/plates/p.1009.exr"), "e");
    env.write(
        "reel1.edl",
        format!(
            "TITLE: reel1\nFCM: NON-DROP FRAME\n\n\
             001  AX       V     C        01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n\
             * FROM CLIP NAME: sh010_anim\n\
             002  AX       V     C        02:00:00:00 02:00:01:00 01:00:02:00 01:00:03:00\n\
             * FROM CLIP NAME: {EVIL_SHOT}_anim\n"
        ),
    );
    let imported = env.run(&["cut", "import", "reel1.edl", "--rules", "rules.yaml"]);
    assert_eq!(imported.status.code(), Some(0), "{}", stderr(&imported));
    if !crate::helpers::require::require_program("ffmpeg", "ffmpeg") {
        return;
    }
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
        .env("OK", env.path("ok"))
        .env("EVIL_SHOT", EVIL_SHOT);
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
