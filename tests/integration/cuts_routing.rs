//! Routing that knows the cut (issue 22), through a real `shotrouter watch` daemon and a cut
//! imported with `shotrouter cut import`: a rule's `frames:` runs only the frames it allows,
//! records the others as skipped with the reason (`jobs --status skipped`), a shot with no cut
//! yet runs as `all`, `{cut.*}` reach the command, `explain` says where a frame falls, `cut
//! waste --json` counts what is outside and missing, and a sequence rule's movie (real ffmpeg,
//! read back with ffprobe) covers only the cut with its timecode following. A shot named
//! `<script>'$(x)"` stays text in reasons and reports.

use std::time::Duration;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::env::{Env, stderr, stdout, wait_until};
use crate::helpers::require::require_program;
use crate::media::{decoded_frames, deliver, frames_in, probe, render_tiffs, timecode};

const LIMIT: Duration = Duration::from_secs(120);

/// A hostile shot name: HTML, quotes and a command substitution, all plain text to shotrouter.
const HOSTILE: &str = "x<script>'$(x)\"";

/// Two shots: `sh010`, 48 frames (cut 1009-1056, handles 1001-1064), and [`HOSTILE`], 24
/// frames (cut 1009-1032, handles 1001-1040).
fn edl() -> String {
    format!(
        "TITLE: reel1\nFCM: NON-DROP FRAME\n\n\
         001  AX       V     C        01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n\
         * FROM CLIP NAME: sh010_anim\n\
         002  AX       V     C        02:00:00:00 02:00:01:00 01:00:02:00 01:00:03:00\n\
         * FROM CLIP NAME: {HOSTILE}_anim\n"
    )
}

const CUTS: &str = "cuts:\n  shot: \"^(?P<shot>.+)_anim$\"\n  handles: 8\n  fps: 24\n";

/// `shotrouter ARGS --rules rules.yaml`, which must succeed.
fn ok(env: &Env, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--rules", "rules.yaml"]);
    let out = env.run(&all);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Every job (newest first) as JSON.
fn jobs(env: &Env) -> Vec<Value> {
    let text = ok(env, &["jobs", "--json", "--limit", "1000"]);
    serde_json::from_str::<Value>(&text)
        .expect("JSON")
        .as_array()
        .expect("an array")
        .clone()
}

/// (rule, path under `shots/`, status, result) of each job, sorted.
fn outcomes(env: &Env) -> Vec<(String, String, String, String)> {
    let mut rows: Vec<_> = jobs(env)
        .iter()
        .map(|j| {
            let path = j["path"].as_str().expect("path");
            (
                j["rule"].as_str().expect("rule").to_string(),
                path.rsplit_once("/shots/")
                    .map_or(path, |(_, rel)| rel)
                    .to_string(),
                j["status"].as_str().expect("status").to_string(),
                j["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// A watcher on `rules` with a cut imported, after it said it routes by it.
fn watcher_with_cut(env: &Env, rules: &str) -> Daemon {
    env.write("rules.yaml", rules);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(env, &[], &[]);
    env.write("reel1.edl", edl());
    ok(env, &["cut", "import", "reel1.edl", "--name", "reel1"]);
    wait_until("the watcher to read the cut", LIMIT, || {
        daemon.log_text().contains("routing by the latest cuts")
    });
    daemon
}

#[test]
fn frames_outside_the_cut_are_skipped_and_recorded_with_the_reason() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("ran")).expect("ran");
    let rules = format!(
        r#"version: 1
watch: [shots]
{CUTS}rules:
  - name: incut
    regex: '^(?P<shot>[^/]+)/plates/p\.[0-9]+\.exr$'
    frames: in_cut
    run: [cp, "{{path}}", "{{root}}/../ran/incut.{{frame}}"]
  - name: handles
    regex: '^(?P<shot>[^/]+)/plates/p\.[0-9]+\.exr$'
    frames: with_handles
    run: [cp, "{{path}}", "{{root}}/../ran/handles.{{frame}}"]
  - name: vars
    regex: '^(?P<shot>sh010)/plates/p\.1010\.exr$'
    run: [cp, "{{path}}", "{{root}}/../ran/vars.{{cut.name}}.{{cut.revision}}.{{cut.head_in}}.{{cut.in}}.{{cut.out}}.{{cut.tail_out}}"]
"#
    );
    let daemon = watcher_with_cut(&env, &rules);
    for frame in ["1000", "1003", "1010", "1060", "1070"] {
        env.write(format!("shots/sh010/plates/p.{frame}.exr"), frame);
    }
    // One frame of the hostile shot (a handle for `incut`), one of a shot no cut shows.
    env.write(format!("shots/{HOSTILE}/plates/p.1003.exr"), "h");
    env.write("shots/sh999/plates/p.0990.exr", "n");
    wait_until("8 jobs done and 7 skipped", LIMIT, || {
        let all = jobs(&env);
        let count = |s: &str| all.iter().filter(|j| j["status"] == s).count();
        count("done") == 8 && count("skipped") == 7
    });
    let skipped: Vec<(String, String, String)> = outcomes(&env)
        .into_iter()
        .filter(|o| o.2 == "skipped")
        .map(|o| (o.0, o.1, o.3))
        .collect();
    let row = |rule: &str, file: &str, reason: &str| {
        (rule.to_string(), file.to_string(), reason.to_string())
    };
    let mut expected = vec![
        row(
            "handles",
            "sh010/plates/p.1000.exr",
            "frame 1000 of `sh010` is outside the cut (cut 1009-1056, handles 1001-1064, cut `reel1` rev 1)",
        ),
        row(
            "handles",
            "sh010/plates/p.1070.exr",
            "frame 1070 of `sh010` is outside the cut (cut 1009-1056, handles 1001-1064, cut `reel1` rev 1)",
        ),
        row(
            "incut",
            "sh010/plates/p.1000.exr",
            "frame 1000 of `sh010` is outside the cut (cut 1009-1056, handles 1001-1064, cut `reel1` rev 1)",
        ),
        row(
            "incut",
            "sh010/plates/p.1003.exr",
            "frame 1003 of `sh010` is a handle (cut 1009-1056, handles 1001-1064, cut `reel1` rev 1)",
        ),
        row(
            "incut",
            &format!("{HOSTILE}/plates/p.1003.exr"),
            &format!(
                "frame 1003 of `{HOSTILE}` is a handle (cut 1009-1032, handles 1001-1040, cut `reel1` rev 1)"
            ),
        ),
        row(
            "incut",
            "sh010/plates/p.1060.exr",
            "frame 1060 of `sh010` is a handle (cut 1009-1056, handles 1001-1064, cut `reel1` rev 1)",
        ),
        row(
            "incut",
            "sh010/plates/p.1070.exr",
            "frame 1070 of `sh010` is outside the cut (cut 1009-1056, handles 1001-1064, cut `reel1` rev 1)",
        ),
    ];
    expected.sort();
    assert_eq!(skipped, expected);
    // What ran: in the cut for `incut`, within the handles for `handles`, everything of the
    // shot with no cut, and the cut's values in `vars`'s argv.
    let mut ran: Vec<String> = std::fs::read_dir(env.path("ran"))
        .expect("ran")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        [
            "handles.0990",
            "handles.1003",
            "handles.1010",
            "handles.1060",
            "incut.0990",
            "incut.1010",
            "vars.reel1.1.1001.1009.1056.1064",
        ]
    );
    // `explain` says where a frame falls, by which cut, and what each rule does with it.
    let out = env.run(&[
        "explain",
        "rules.yaml",
        "shots/sh010/plates/p.1003.exr",
        "shots/sh999/plates/p.0990.exr",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cut_lines: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| l.starts_with("    cut: "))
        .map(|l| l.trim().to_string())
        .collect();
    let handle =
        "frame 1003 of `sh010` is a handle (cut 1009-1056, handles 1001-1064, cut `reel1` rev 1)";
    let none = "cut: none; no cut shows `sh999` yet: processed as `all`";
    assert_eq!(
        cut_lines,
        [
            format!("cut: handle; {handle}; skipped (`frames: in_cut`)"),
            format!("cut: handle; {handle}; runs (`frames: with_handles`)"),
            none.to_string(),
            none.to_string(),
        ]
    );
    // The hostile shot in `explain --json`: the same text, not markup nor a command.
    let hostile = env.path(format!("shots/{HOSTILE}/plates/p.1020.exr"));
    let out = env.run(&[
        "explain",
        "--json",
        "rules.yaml",
        hostile.to_str().expect("utf-8"),
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let cut = &report[0]["matches"][0]["cut"];
    assert_eq!(
        (
            cut["shot"].as_str(),
            cut["class"].as_str(),
            cut["runs"].as_bool()
        ),
        (Some(HOSTILE), Some("in"), Some(true)),
        "{report}"
    );
    // `--status skipped` finds them; a skipped job is not retried as a failure.
    let listed = ok(&env, &["jobs", "--status", "skipped", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&listed)
            .expect("JSON")
            .as_array()
            .expect("array")
            .len(),
        7
    );
    let status = ok(&env, &["status"]);
    assert!(status.contains("7 frames skipped by `frames:`"), "{status}");
    let retried = ok(&env, &["retry", "--failed", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&retried).expect("JSON")["queued"],
        serde_json::json!([]),
        "{retried}"
    );
    // `cut waste`: per shot, files outside head_in..tail_out and frames missing in the cut.
    let waste: Value =
        serde_json::from_str(&ok(&env, &["cut", "waste", "reel1", "--json"])).expect("JSON");
    let per_shot: Vec<(String, u64, u64, u64, String)> = waste["shots"]
        .as_array()
        .expect("shots")
        .iter()
        .map(|s| {
            let n = |k: &str| s[k].as_u64().expect(k);
            (
                s["shot"].as_str().expect("shot").to_string(),
                n("outside_frames"),
                n("outside_bytes"),
                n("missing_frames"),
                s["missing"].as_str().expect("missing").to_string(),
            )
        })
        .collect();
    assert_eq!(
        per_shot,
        [
            ("sh010".to_string(), 2, 8, 47, "1009,1011-1056".to_string()),
            (HOSTILE.to_string(), 0, 0, 24, "1009-1032".to_string()),
        ]
    );
    assert_eq!(
        (
            &waste["outside_frames"],
            &waste["outside_bytes"],
            &waste["missing_frames"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(8),
            &serde_json::json!(71)
        )
    );
    let text = ok(&env, &["cut", "waste"]);
    assert!(text.contains("show: outside 2 (8 B), missing 71"), "{text}");
    daemon.stop();
}

#[test]
fn a_sequence_rules_movie_covers_only_the_cut() {
    if !require_program("ffmpeg", "ffmpeg") || !require_program("ffprobe", "ffmpeg") {
        return;
    }
    let env = Env::new();
    let rules = format!(
        r#"version: 1
watch: [shots]
timecode: {{fps: 24, start: "01:00:00:00", at_frame: 1001}}
{CUTS}rules:
  - name: review
    regex: '^(?P<shot>sh[0-9]+)/comp/[^/]+\.tif$'
    sequence: true
    settle: 1s
    frames: in_cut
    output: "{{dir}}/../review/{{seq.name}}.{{seq.first}}-{{seq.last}}.{{cut.name}}.mov"
    run: [ffmpeg, -nostdin, -v, error, -y, -framerate, "24", -start_number, "{{seq.start}}",
          -i, "{{seq.pattern}}", -c:v, mpeg4, -q:v, "5", -timecode, "{{timecode}}", "{{out}}"]
    verify: {{frames: "{{seq.count}}", timecode: "{{timecode}}"}}
"#
    );
    let daemon = watcher_with_cut(&env, &rules);
    // 76 frames, 995-1070: handles and frames outside on both sides of the cut 1009-1056.
    render_tiffs(
        &env.path("stage"),
        "sh010_comp_v001",
        995,
        76,
        "64x36",
        "testsrc2",
    );
    deliver(
        &frames_in(&env.path("stage")),
        &env.path("shots/sh010/comp"),
    );
    daemon.wait_idle_with(1, LIMIT);
    let movie = probe(&env.path("shots/sh010/review/sh010_comp_v001.1009-1056.reel1.mov"));
    assert_eq!(decoded_frames(&movie), 48);
    assert_eq!(timecode(&movie), "01:00:00:08");
    daemon.stop();
}
