//! `check` and `explain` through the real binary.

use crate::env::{Env, stderr, stdout};

const RULES: &str = r#"version: 1
watch: [shots]
vars: {show: demo}
rules:
  - name: review
    match: "**/*.tif"
    regex: '^(?P<shot>sh\d{3})/'
    output: "{root}/{shot}/review/{stem}.mov"
    run: [ffmpeg, -i, "{path}", "{out}"]
  - name: archive
    match: "**"
    run: [cp, "{path}", "/archive/{show}/"]
"#;

#[test]
fn check_accepts_a_valid_file_with_a_summary() {
    let env = Env::new();
    env.write("rules.yaml", RULES);
    let out = env.run(&["check", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shots = env.path("shots");
    let text = stdout(&out);
    let want = format!(
        "rules.yaml: ok, 2 rules, watching {}\n  root shots: {} (fs=",
        shots.display(),
        shots.display()
    );
    // The root is missing, so it is named by the temp folder's file system (local: inotify).
    assert!(text.starts_with(&want), "{text}");
    assert!(
        text.ends_with(" source=inotify (auto, root missing))\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn check_prints_every_error_and_exits_2() {
    let env = Env::new();
    env.write("rules.yaml", "version: 1\nwatch: [shots]\nrules:\n  - name: a\n    match: \"[\"\n    run: [x, \"{stme}\"]\n");
    let out = env.run(&["check", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("error: invalid glob `[`"), "{err}");
    assert!(err.contains(" --> rules.yaml:5:12\n"), "{err}");
    assert!(err.contains(" --> rules.yaml:6:15\n"), "{err}");
    assert!(err.contains("= help: did you mean `{stem}`?"), "{err}");
    assert!(err.ends_with("2 errors in rules.yaml\n"), "{err}");
}

#[test]
fn check_of_a_missing_file_exits_2_naming_it() {
    let env = Env::new();
    let out = env.run(&["check", "nope.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read rules file `nope.yaml`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn explain_shows_rules_vars_and_quoted_argv() {
    let env = Env::new();
    env.write("rules.yaml", RULES);
    let out = env.run(&["explain", "rules.yaml", "shots/sh010/comp/it's a.1001.tif"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let root = env.path("shots");
    let root = root.display();
    assert!(text.contains("  match review (rules.yaml:5)\n"), "{text}");
    assert!(text.contains("  match archive (rules.yaml:10)\n"), "{text}");
    assert!(
        text.contains(&format!(
            "    output: '{root}/sh010/review/it'\\''s a.1001.mov'\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("    run: ffmpeg -i '{root}/sh010/comp/it'\\''s a.1001.tif' '{root}/sh010/review/.it'\\''s a.1001.JOB.mov'\n")),
        "{text}"
    );
    assert!(text.contains(" frame=1001 "), "{text}");
}

#[test]
fn explain_json_is_one_array_with_argv_lists() {
    let env = Env::new();
    env.write("rules.yaml", RULES);
    let out = env.run(&[
        "explain",
        "--json",
        "rules.yaml",
        "shots/sh010/a.tif",
        "shots/notes.txt",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let reports = value.as_array().expect("array");
    assert_eq!(reports.len(), 2);
    let first = &reports[0];
    assert_eq!(
        first["path"],
        env.path("shots/sh010/a.tif").display().to_string()
    );
    assert_eq!(first["matches"][0]["rule"], "review");
    assert_eq!(first["matches"][0]["vars"]["shot"], "sh010");
    assert_eq!(first["matches"][1]["steps"][0][0], "cp");
    assert_eq!(first["matches"][1]["steps"][0][2], "/archive/demo/");
    let second = &reports[1];
    let rules: Vec<&str> = second["matches"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["rule"].as_str().expect("name"))
        .collect();
    assert_eq!(rules, ["archive"]);
}

#[test]
fn explain_verbose_says_why_rules_do_not_match() {
    let env = Env::new();
    env.write("rules.yaml", RULES);
    let out = env.run(&[
        "explain",
        "-v",
        "rules.yaml",
        "shots/misc/a.tif",
        "shots/.hidden.tif",
        "/elsewhere/a.tif",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("  skip  review: regex `^(?P<shot>sh\\d{3})/` does not match `misc/a.tif`\n"),
        "{text}"
    );
    assert!(
        text.contains("  ignored: matches an `ignore` glob"),
        "{text}"
    );
    assert!(text.contains("  not under any watch root"), "{text}");
}

#[test]
fn every_subcommand_help_has_an_example() {
    let env = Env::new();
    for sub in ["check", "explain", "watch"] {
        let out = env.run(&[sub, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            stdout(&out).contains("Example"),
            "{sub} --help lacks an example"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    assert_eq!(env.run(&["explain", "rules.yaml"]).status.code(), Some(2));
    assert_eq!(env.run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn every_rules_file_shipped_in_rules_checks() {
    let env = Env::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("rules/").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = env.run(&["check", path.to_str().expect("utf-8 path")]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                stderr(&out)
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "rules/ holds the demo and an example show");
}

#[test]
fn explain_groups_given_frames_into_sequences_with_one_job_each() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\ntimecode: {fps: 24, start: \"01:00:00:00\", at_frame: 1001}\nrules:\n  - name: movie\n    match: \"**/*.tif\"\n    sequence: {on_gaps: hold}\n    output: \"{dir}/{seq.name}.mov\"\n    run: [ffmpeg, -start_number, \"{seq.start}\", -i, \"{seq.pattern}\", -timecode, \"{timecode}\", \"{out}\"]\n",
    );
    let mut args = vec!["explain".to_string(), "rules.yaml".to_string()];
    for frame in [1001, 1002, 1003, 1005] {
        args.push(format!("shots/sh010/a_v001.{frame}.tif"));
    }
    args.push("shots/sh010/a_v002.1001.tif".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("a_v001.####.tif' frames 1001-1003,1005 (4 given, missing 1004)"),
        "{text}"
    );
    assert!(
        text.contains("a_v002.####.tif' frames 1001 (1 given)"),
        "{text}"
    );
    // One job per sequence: v001's shown once (held over its gap, timecode of frame 1001).
    assert_eq!(text.matches("    run: ffmpeg").count(), 2, "{text}");
    assert_eq!(
        text.matches("one job for the whole sequence").count(),
        3,
        "{text}"
    );
    assert!(text.contains("-timecode 01:00:00:00"), "{text}");
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let env = Env::new();
    let out = env.run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "shotrouter {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(head) = head
        .as_ref()
        .map(|h| String::from_utf8_lossy(&h.stdout).trim().to_string())
        && !head.is_empty()
    {
        assert!(
            text.contains(&format!("(commit {head}")),
            "{text} (HEAD is {head})"
        );
    }
}

#[test]
fn watch_once_over_an_empty_tree_without_a_store_exits_at_once() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: r\n    match: \"**/*.dat\"\n    run: [\"true\"]\n",
    );
    let mut child = env
        .command(&["watch", "--once", "--no-store", "rules.yaml"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let mut status = None;
    crate::env::wait_until(
        "watch --once to exit",
        std::time::Duration::from_secs(10),
        || {
            status = child.try_wait().expect("wait");
            status.is_some()
        },
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}
