//! `check` warnings, `--strict` and `--json`, and `explain`'s exit codes and detail, through the
//! real binary on real temp folders.

use serde_json::Value;

use crate::env::{Env, stderr, stdout};

/// A valid file with one warning: a program that is not on `PATH`. The root exists.
const TYPO: &str = "version: 1\nwatch: [shots]\nrules:\n  - name: review\n    match: \"**/*.tif\"\n    run: [ffmpg-typo, -i, \"{path}\"]\n";

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

#[test]
fn check_warns_with_exit_0_and_strict_makes_warnings_exit_2() {
    let env = Env::new();
    std::fs::create_dir(env.path("shots")).expect("mkdir");
    env.write("rules.yaml", TYPO);
    let out = env.run(&["check", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: program `ffmpg-typo` is not found on PATH\n --> rules.yaml:6:11\n"),
        "{err}"
    );
    assert!(err.contains("1 warning in rules.yaml"), "{err}");
    assert!(stdout(&out).starts_with("rules.yaml: ok, 1 rule, watching "));

    let strict = env.run(&["check", "--strict", "rules.yaml"]);
    assert_eq!(strict.status.code(), Some(2));
    assert!(
        stderr(&strict).contains("rules.yaml: 1 warning with --strict: not ok"),
        "{}",
        stderr(&strict)
    );
    assert_eq!(stdout(&strict), "");

    env.write("rules.yaml", TYPO.replace("ffmpg-typo", "sh"));
    let clean = env.run(&["check", "--strict", "rules.yaml"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert_eq!(stderr(&clean), "");
}

#[test]
fn check_warns_about_a_missing_root_verify_without_output_and_an_odd_fps() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [not-yet]\ntimecode: {fps: 23, start: \"01:00:00:00\"}\nrules:\n  - name: v\n    match: \"**/*.mov\"\n    verify: {codec: prores}\n    run: [sh, -c, \"true\"]\n",
    );
    let out = env.run(&["check", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("/not-yet` does not exist\n --> rules.yaml:2:9\n"),
        "{err}"
    );
    assert!(
        err.contains("warning: `23` fps is not a known frame rate"),
        "{err}"
    );
    assert!(err.contains("declares no `output`"), "{err}");
    assert!(err.ends_with("3 warnings in rules.yaml\n"), "{err}");
    assert_eq!(
        env.run(&["check", "--strict", "rules.yaml"]).status.code(),
        Some(2)
    );
}

#[test]
fn check_json_is_one_object_with_positioned_warnings_and_roots() {
    let env = Env::new();
    std::fs::create_dir(env.path("shots")).expect("mkdir");
    env.write("rules.yaml", TYPO);
    let out = env.run(&["check", "--json", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["ok"], true);
    assert_eq!(report["rules"], 1);
    assert_eq!(report["errors"].as_array().expect("errors").len(), 0);
    let warnings = report["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{report:#}");
    let w = &warnings[0];
    assert_eq!(w["file"], "rules.yaml");
    assert_eq!(
        (w["line"].as_u64(), w["column"].as_u64()),
        (Some(6), Some(11))
    );
    assert_eq!(w["rule"], "review");
    assert_eq!(w["message"], "program `ffmpg-typo` is not found on PATH");
    assert!(w["hint"].as_str().expect("hint").contains("PATH"));
    let root = &report["roots"][0];
    assert_eq!(root["name"], "shots");
    assert_eq!(root["path"], env.path("shots").to_str().expect("utf-8"));
    assert!(!root["fs"].as_str().expect("fs").is_empty(), "{root}");
    assert!(
        ["inotify", "poll"].contains(&root["source"].as_str().expect("source")),
        "{root}"
    );
    assert_eq!(root["missing"], false);

    let strict = env.run(&["check", "--json", "--strict", "rules.yaml"]);
    assert_eq!(strict.status.code(), Some(2));
    assert_eq!(json(&strict)["ok"], false);
}

#[test]
fn check_json_reports_errors_and_unreadable_files_with_exit_2() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: a\n    match: \"**\"\n    retries: -1\n    run: [sh]\n",
    );
    let out = env.run(&["check", "--json", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out);
    assert_eq!(report["ok"], false);
    let e = &report["errors"][0];
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(6), Some(14))
    );
    assert_eq!(e["rule"], "a");
    assert_eq!(
        e["message"],
        "`retries`: invalid type: integer `-1`, expected a whole number ≥ 0"
    );
    assert_eq!(report["roots"].as_array().expect("roots").len(), 0);

    let missing = env.run(&["check", "--json", "nope.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    let report = json(&missing);
    assert_eq!(report["ok"], false);
    assert!(report["errors"][0]["line"].is_null());
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("cannot read rules file `nope.yaml`")
    );
}

#[test]
fn the_tab_error_points_at_the_tab_through_the_binary() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: a\n\tmatch: \"**\"\n    run: [sh]\n",
    );
    let out = env.run(&["check", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(" --> rules.yaml:5:1\n"),
        "{}",
        stderr(&out)
    );
}

const EXPLAIN_RULES: &str = "version: 1\nwatch: [shots]\nrules:\n  - name: movie\n    match: \"**/*.tif\"\n    sequence: true\n    settle: 3s\n    timeout: 10m\n    retries: 2\n    output: \"{dir}/{seq.name}.mov\"\n    verify: {frames: \"{seq.count}\", codec: prores}\n    run: [sh, -c, \"true\", \"{seq.pattern}\", \"{out}\"]\n  - name: numbered\n    match: \"**/*.exr\"\n    run: [sh, -c, \"true\", \"{frame}\"]\n  - name: probed\n    match: \"**/*.mxf\"\n    probe: true\n    run: [sh, -c, \"true\", \"{probe.codec}\"]\n";

#[test]
fn explain_exits_1_for_a_path_under_no_root_or_a_plan_that_fails() {
    let env = Env::new();
    env.write("rules.yaml", EXPLAIN_RULES);
    let ok = env.run(&["explain", "rules.yaml", "shots/a/x_v001.1001.tif"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    let outside = env.run(&["explain", "rules.yaml", "/elsewhere/x.tif"]);
    assert_eq!(outside.status.code(), Some(1));
    assert!(stdout(&outside).contains("not under any watch root"));
    let no_frame = env.run(&["explain", "rules.yaml", "shots/a/plate.exr"]);
    assert_eq!(no_frame.status.code(), Some(1), "{}", stdout(&no_frame));
    assert!(stdout(&no_frame).contains("error: variable `{frame}`"));
    // One failing path among good ones is enough for exit 1; JSON mode agrees.
    let mixed = env.run(&[
        "explain",
        "--json",
        "rules.yaml",
        "shots/a/x_v001.1001.tif",
        "/elsewhere/x.tif",
    ]);
    assert_eq!(mixed.status.code(), Some(1));
    assert_eq!(json(&mixed).as_array().expect("array").len(), 2);
    let no_rule = env.run(&["explain", "rules.yaml", "shots/a/notes.txt"]);
    assert_eq!(
        no_rule.status.code(),
        Some(0),
        "no rule matching is not a failure"
    );
}

#[test]
fn explain_of_one_frame_lists_its_folder_to_show_the_whole_sequence() {
    let env = Env::new();
    env.write("rules.yaml", EXPLAIN_RULES);
    for frame in [1001, 1002, 1003, 1005] {
        env.write(format!("shots/a/x_v001.{frame}.tif"), b"frame");
    }
    env.write("shots/a/other.1001.exr", b"not this rule's");
    let out = env.run(&["explain", "rules.yaml", "shots/a/x_v001.1002.tif"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "x_v001.####.tif' frames 1001-1003,1005 (1 given, 3 more in the folder, missing 1004)"
        ),
        "{text}"
    );
    assert!(
        text.contains("    verify: codec=prores frames=4\n"),
        "{text}"
    );
    assert!(
        text.contains("    settle: 3s, timeout: 10m, retries: 2\n"),
        "{text}"
    );

    let out = env.run(&["explain", "--json", "rules.yaml", "shots/a/x_v001.1002.tif"]);
    let m = &json(&out)[0]["matches"][0];
    assert_eq!(m["sequence"]["count"], 1);
    assert_eq!(m["sequence"]["found"], 3);
    assert_eq!(m["vars"]["seq.first"], "1001");
    assert_eq!(m["verify"]["frames"], "4");
    assert_eq!(
        (m["settle"].as_str(), m["timeout"].as_str()),
        (Some("3s"), Some("10m"))
    );
    assert_eq!(m["retries"], 2);
}

#[test]
fn explain_probe_errors_name_the_input() {
    let env = Env::new();
    env.write("rules.yaml", EXPLAIN_RULES);
    let input = env.write("shots/a/not video.mxf", b"not a video file");
    let out = env.run(&["explain", "rules.yaml", "shots/a/not video.mxf"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("error: probe:"))
        .unwrap_or_else(|| panic!("no probe error: {text}"));
    assert!(
        line.contains(&format!("the input `{}`", input.display())),
        "{line}"
    );
    assert!(!line.contains("the product"), "{line}");
}

#[test]
fn the_daemon_logs_each_warning_on_one_line_and_runs() {
    let env = Env::new();
    std::fs::create_dir(env.path("shots")).expect("mkdir");
    env.write("rules.yaml", TYPO);
    let out = env.run(&["watch", "--once", "--state", "state", "rules.yaml"]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("is not found on PATH"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("rules.yaml:6:11"), "{log}");
    assert!(
        lines[0].contains("WARN") || lines[0].contains("warn"),
        "{log}"
    );
}
