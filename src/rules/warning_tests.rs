//! Warnings (the file loads, something will likely fail or wait) and the wording of messages
//! people read: no Rust type names, the tab error at the tab, no stray "did you mean".

use std::path::Path;

use super::*;
use crate::rules::diag::{Diagnostic, Diagnostics, Severity};

/// A file watching `/` (which exists), so only the warning under test is raised.
fn parse_with_root(body: &str) -> Result<RuleFile, Diagnostics> {
    parse(
        Path::new("rules.yaml"),
        &format!("version: 1\nwatch: [\"/\"]\n{body}"),
        Path::new("/"),
    )
}

fn warnings(body: &str) -> Vec<Diagnostic> {
    parse_with_root(body).expect("loads").warnings.items
}

fn one_warning(body: &str) -> Diagnostic {
    let all = warnings(body);
    assert_eq!(all.len(), 1, "expected one warning, got {all:#?}");
    let d = all.into_iter().next().expect("one");
    assert_eq!(d.severity, Severity::Warning);
    d
}

fn errors(body: &str) -> Vec<Diagnostic> {
    parse_with_root(body)
        .expect_err("expected errors")
        .items
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

#[test]
fn a_clean_file_has_no_warnings() {
    let w = warnings("rules:\n  - name: r\n    match: \"**\"\n    run: [sh, -c, \"true\"]\n");
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn a_program_not_on_path_is_a_warning_at_its_name_with_the_rule() {
    let d = one_warning(
        "rules:\n  - name: r\n    match: \"**\"\n    run: [ffmpg-not-here, \"{path}\"]\n",
    );
    assert_eq!(d.message, "program `ffmpg-not-here` is not found on PATH");
    assert_eq!((d.span.line, d.span.column), (6, 11));
    assert_eq!(d.rule.as_deref(), Some("r"));
    assert!(d.hint.expect("hint").contains("PATH"));
}

#[test]
fn every_step_is_checked_and_an_absolute_program_must_exist() {
    let w = warnings(
        "rules:\n  - name: r\n    match: \"**\"\n    steps:\n      - [sh, -c, \"true\"]\n      - [/no/such/tool, x]\n",
    );
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(
        w[0].message,
        "program `/no/such/tool` is not an executable file"
    );
    assert_eq!(w[0].span.line, 8);
}

#[test]
fn a_program_built_from_a_template_or_relative_is_not_checked() {
    let w = warnings(
        "vars: {tools: /no/such}\nrules:\n  - name: r\n    match: \"**\"\n    steps:\n      - [\"{tools}/x\", a]\n      - [bin/x, a]\n",
    );
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn a_missing_watch_root_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text =
        "version: 1\nwatch: [here, gone]\nrules:\n  - name: r\n    match: \"**\"\n    run: [sh]\n";
    std::fs::create_dir(dir.path().join("here")).expect("mkdir");
    let file = parse(Path::new("rules.yaml"), text, dir.path()).expect("loads");
    let w = &file.warnings.items;
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].message.starts_with("watch root `") && w[0].message.ends_with("/gone` does not exist"),
        "{}",
        w[0].message
    );
    assert_eq!((w[0].span.line, w[0].span.column), (2, 15));
    assert!(w[0].hint.as_deref().expect("hint").contains("waits for it"));
}

#[test]
fn verify_without_output_is_a_warning() {
    let d = one_warning(
        "rules:\n  - name: r\n    match: \"**\"\n    verify: {codec: prores}\n    run: [sh]\n",
    );
    assert!(d.message.contains("no `output`"), "{}", d.message);
    assert_eq!(d.span.line, 6);
    let with_output = warnings(
        "rules:\n  - name: r\n    match: \"**\"\n    verify: {codec: prores}\n    output: \"/tmp/{name}\"\n    run: [sh, \"{out}\"]\n",
    );
    assert!(with_output.is_empty(), "{with_output:#?}");
}

#[test]
fn an_fps_that_is_no_known_rate_is_a_warning() {
    let d = one_warning(
        "timecode: {fps: 23, start: \"01:00:00:00\"}\nrules:\n  - name: r\n    match: \"**\"\n    run: [sh]\n",
    );
    assert_eq!(d.message, "`23` fps is not a known frame rate");
    assert_eq!((d.span.line, d.span.column), (3, 17));
    assert!(d.hint.expect("hint").contains("23.976, 24, 25"));
    for fps in ["24", "23.976", "30000/1001", "119.88", "12"] {
        let w = warnings(&format!(
            "timecode: {{fps: \"{fps}\", start: \"01:00:00:00\"}}\nrules:\n  - name: r\n    match: \"**\"\n    run: [sh]\n"
        ));
        assert!(w.is_empty(), "{fps}: {w:#?}");
    }
}

#[test]
fn a_verify_fps_that_cannot_match_is_a_warning() {
    let body = |fps: &str| {
        format!(
            "rules:\n  - name: r\n    match: \"**\"\n    verify: {{fps: \"{fps}\"}}\n    output: \"/tmp/{{name}}\"\n    run: [sh, \"{{out}}\"]\n"
        )
    };
    let d = one_warning(&body("2.997"));
    assert!(
        d.message.starts_with("unknown frame rate `2.997`"),
        "{}",
        d.message
    );
    assert_eq!(
        one_warning(&body("240")).message,
        "`240` fps is not a known frame rate"
    );
    assert!(warnings(&body("25")).is_empty());
}

#[test]
fn warnings_render_like_errors_and_are_counted_apart() {
    let file =
        parse_with_root("rules:\n  - name: r\n    match: \"**\"\n    run: [no-such-program-x]\n")
            .expect("loads");
    let text = file.warnings.to_string();
    assert!(
        text.starts_with(
            "warning: program `no-such-program-x` is not found on PATH\n --> rules.yaml:6:11\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  = note: in rules[0].run (rule `r`)\n"),
        "{text}"
    );
    assert!(text.ends_with("\n1 warning in rules.yaml"), "{text}");
    let mut both = file.warnings.clone();
    both.items.push(Diagnostic::new("bad", both.items[0].span));
    assert!(
        both.to_string()
            .ends_with("\n1 error and 1 warning in rules.yaml")
    );
    // A file with errors reports only its errors.
    let err =
        parse_with_root("rules:\n  - name: r\n    match: \"[\"\n    run: [no-such-program-x]\n")
            .expect_err("invalid glob");
    assert!(
        err.to_string().ends_with("\n1 error in rules.yaml"),
        "{err}"
    );
}

#[test]
fn the_tab_error_points_at_the_tab() {
    let errs = errors("rules:\n  - name: r\n\tmatch: \"**\"\n    run: [sh]\n");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!((errs[0].span.line, errs[0].span.column), (5, 1));
    assert!(errs[0].message.contains("tab"), "{}", errs[0].message);
    assert!(errs[0].hint.as_deref().expect("hint").contains("spaces"));
}

#[test]
fn a_bad_regex_is_reported_once_without_guesses_about_its_captures() {
    let errs = errors(
        "rules:\n  - name: r\n    regex: '^(?P<shot>sh\\d{3}/'\n    run: [sh, \"{shot}\"]\n",
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].message.starts_with("invalid regex"),
        "{}",
        errs[0].message
    );
    // With a regex that compiles, a typo is still reported, with its suggestion.
    let errs = errors(
        "rules:\n  - name: r\n    regex: '^(?P<shot>sh\\d{3})/'\n    run: [sh, \"{shto}\"]\n",
    );
    assert_eq!(errs[0].hint.as_deref(), Some("did you mean `{shot}`?"));
}

#[test]
fn type_errors_speak_of_values_not_rust_types() {
    let cases = [
        (
            "    retries: -1\n",
            "`retries`: invalid type: integer `-1`, expected a whole number ≥ 0",
        ),
        (
            "    concurrency: x\n",
            "`concurrency`: invalid type: string \"x\", expected a whole number ≥ 0",
        ),
        (
            "    stop: 3\n",
            "`stop`: invalid type: integer `3`, expected `true` or `false`",
        ),
    ];
    for (line, want) in cases {
        let errs = errors(&format!(
            "rules:\n  - name: r\n    match: \"**\"\n    run: [sh]\n{line}"
        ));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].message, want);
    }
    let errs = errors("vars: [a]\nrules:\n  - name: r\n    match: \"**\"\n    run: [sh]\n");
    assert_eq!(
        errs[0].message,
        "`vars`: invalid type: list, expected a mapping"
    );
    for d in errs {
        for rust in ["u32", "usize", "i64", "a sequence"] {
            assert!(!d.message.contains(rust), "{}", d.message);
        }
        assert!(!d.message.ends_with("a map"), "{}", d.message);
    }
}

#[test]
fn a_thumbnail_without_a_product_is_a_warning_and_leaves_the_hashes_alone() {
    let d = one_warning(
        "rules:\n  - name: r\n    match: \"**\"\n    thumbnail: true\n    run: [sh, -c, \"true\"]\n",
    );
    assert!(d.message.contains("no `output`"), "{}", d.message);
    // A picture of the product is not the product: turning it on marks nothing stale.
    let body = |extra: &str| {
        format!(
            "rules:\n  - name: r\n    match: \"**\"\n    output: \"/tmp/{{stem}}.mp4\"\n{extra}    run: [sh, -c, \"true {{out}}\"]\n"
        )
    };
    let plain = parse_with_root(&body("")).expect("loads");
    let with = parse_with_root(&body("    thumbnail: true\n")).expect("loads");
    assert!(with.rules[0].thumbnail && !plain.rules[0].thumbnail);
    assert_eq!(plain.rules[0].work_hash, with.rules[0].work_hash);
    assert_eq!(
        plain.rules[0].definition_hash,
        with.rules[0].definition_hash
    );
}
