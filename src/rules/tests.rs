use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::media::keykode::FilmFormat;
use crate::media::sequence::OnGaps;
use crate::rules::diag::Diagnostics;

const HEAD: &str = "version: 1\nwatch: [shots]\n";

fn load_str(body: &str) -> Result<RuleFile, Diagnostics> {
    parse(
        Path::new("rules.yaml"),
        &format!("{HEAD}{body}"),
        Path::new("/show"),
    )
}

/// The (line, column, message) of each error, lines counted from the top of the whole file.
fn errors(body: &str) -> Vec<(usize, usize, String)> {
    load_str(body)
        .expect_err("expected errors")
        .items
        .into_iter()
        .filter(|d| d.severity == crate::rules::diag::Severity::Error)
        .map(|d| (d.span.line, d.span.column, d.message))
        .collect()
}

fn single_error(body: &str) -> (usize, usize, String) {
    let all = errors(body);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().expect("one")
}

#[test]
fn minimal_file_loads_with_defaults() {
    let file =
        load_str("rules:\n  - name: r\n    match: \"**/*.tif\"\n    run: [echo, \"{path}\"]\n")
            .expect("valid");
    assert_eq!(
        file.watch,
        vec![WatchRoot {
            name: "shots".into(),
            path: PathBuf::from("/show/shots"),
            recursive: true,
            source: SourceKind::Auto,
            poll: crate::rules::DEFAULT_POLL,
        }]
    );
    assert_eq!(file.ignore, DEFAULT_IGNORE);
    let rule = &file.rules[0];
    assert_eq!(rule.events, EventSet::READY);
    assert_eq!(
        (rule.retries, rule.stop, rule.settle, rule.timeout),
        (0, false, Duration::ZERO, None)
    );
    assert_eq!(rule.line, 4);
}

#[test]
fn full_rule_loads() {
    let file = load_str(
        "vars: {san: /mnt/san}\nrules:\n  - name: r\n    match: [\"**/*.tif\", \"**/*.tiff\"]\n    regex: '^(?P<shot>sh\\d+)/'\n    on: [close_write, moved_to, delete]\n    steps: [[mkdir, -p, \"{san}/{shot}\"], [cp, \"{path}\", \"{out}\"]]\n    output: \"{san}/{shot}/{name}\"\n    timeout: 10m\n    retries: 2\n    concurrency: 1\n    stop: true\n    settle: 1500ms\n",
    )
    .expect("valid");
    let rule = &file.rules[0];
    assert_eq!(rule.globs.len(), 2);
    assert!(rule.events.contains(EventKind::Delete) && !rule.events.contains(EventKind::Create));
    assert_eq!(rule.steps.len(), 2);
    assert_eq!(rule.timeout, Some(Duration::from_secs(600)));
    assert_eq!(rule.settle, Duration::from_millis(1500));
    assert_eq!(
        (rule.retries, rule.concurrency, rule.stop),
        (2, Some(1), true)
    );
}

#[test]
fn on_accepts_a_single_event() {
    let file =
        load_str("rules:\n  - name: r\n    match: \"**\"\n    on: moved_to\n    run: [echo]\n")
            .expect("valid");
    assert!(file.rules[0].events.contains(EventKind::MovedTo));
    assert!(!file.rules[0].events.contains(EventKind::CloseWrite));
}

#[test]
fn error_positions_point_at_the_offending_value() {
    // (rules body, line, column, message fragment); the body starts on line 3.
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "rules:\n  - name: r\n    mtach: x\n    run: [a]\n",
            5,
            5,
            "unknown key `mtach`",
        ),
        (
            "rules:\n  - name: r\n    match: \"[a\"\n    run: [a]\n",
            5,
            12,
            "invalid glob `[a`",
        ),
        (
            "rules:\n  - name: r\n    regex: '(?P<s>'\n    run: [a]\n",
            5,
            12,
            "invalid regex: unclosed group",
        ),
        (
            "rules:\n  - name: r\n    match: x\n    run: [a, \"x/{stme}\"]\n",
            6,
            17,
            "unknown template variable `{stme}`",
        ),
        (
            "rules:\n  - name: r\n    match: x\n    run:\n      - a\n      - x/{stme}\n",
            8,
            11,
            "unknown template variable `{stme}`",
        ),
        (
            "rules:\n  - name: r\n    match: x\n    run: []\n",
            6,
            10,
            "empty argv",
        ),
        (
            "rules:\n  - name: r\n    match: x\n    run: [a]\n    timeout: 10\n",
            7,
            14,
            "invalid duration `10`",
        ),
        (
            "rules:\n  - name: r\n    match: x\n    run: [a]\n    retries: -1\n",
            7,
            14,
            "invalid type",
        ),
        (
            "rules:\n  - name: r\n    match: x\n    run: [a]\n    on: [close]\n",
            7,
            10,
            "unknown variant `close`",
        ),
        ("rules:\n  - name: r\n    run: [a]\n", 4, 5, "needs `match`"),
        ("rules:\n  - name: r\n    match: x\n", 4, 5, "needs `run`"),
        (
            "rules:\n  - match: x\n    run: [a]\n",
            4,
            5,
            "needs a `name`",
        ),
        (
            "rules:\n  - name: r\n    match: x\n    run: a b c\n",
            6,
            10,
            "argv list, not a command line",
        ),
        (
            "rules:\n  - name: r\n    match: x\n    run: [a, \"{a\"]\n",
            6,
            15,
            "unclosed `{`",
        ),
        (
            "rules:\n  - name: r\n    match: x\n    run: [a, \"{out}\"]\n",
            6,
            15,
            "unknown template variable `{out}`",
        ),
        (
            "rules:\n  - name: r\n    match: x\n    run: [a]\n    output: \"{dir}/x\"\n",
            7,
            13,
            "no command writes `{out}`",
        ),
        (
            "rules:\n  - name: r\n    regex: '(?P<path>x)'\n    run: [a]\n",
            5,
            12,
            "capture `path` would hide",
        ),
        (
            "vars: {stem: x}\nrules: []\n",
            3,
            8,
            "variable `stem` would hide",
        ),
        ("jobs: 0\nrules: []\n", 3, 7, "`jobs` must be at least 1"),
        ("colour: red\nrules: []\n", 3, 1, "unknown key `colour`"),
        (
            "rules:\n  - name: r\n    match: x\n    run: [a, \"{env.SHOTROUTER_SURELY_UNSET}\"]\n",
            6,
            15,
            "environment variable `SHOTROUTER_SURELY_UNSET` is not set",
        ),
    ];
    for (body, line, column, fragment) in cases {
        let (l, c, message) = single_error(body);
        assert!(
            message.contains(fragment),
            "{body:?}: message {message:?} lacks {fragment:?}"
        );
        assert_eq!((l, c), (*line, *column), "{body:?}: {message}");
    }
}

#[test]
fn version_is_required_and_checked() {
    let err = parse(
        Path::new("r.yaml"),
        "watch: [a]\nrules: []\n",
        Path::new("/"),
    )
    .expect_err("no version");
    assert!(err.items[0].message.contains("missing `version: 1`"));
    let err = parse(
        Path::new("r.yaml"),
        "version: 3\nwatch: [a]\nrules: []\n",
        Path::new("/"),
    )
    .expect_err("v3");
    assert_eq!((err.items[0].span.line, err.items[0].span.column), (1, 10));
}

#[test]
fn every_error_in_the_file_is_reported() {
    let all = errors(
        "rules:\n  - name: a\n    match: \"[\"\n    run: [x, \"{nope}\"]\n  - name: a\n    match: x\n    run: [x]\n    retries: many\n",
    );
    let messages: Vec<&str> = all.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(all.len(), 4, "{messages:#?}");
    assert!(messages[0].contains("invalid glob"));
    assert!(messages[1].contains("{nope}"));
    assert!(messages[2].contains("duplicate rule name `a`"));
    assert!(messages[3].contains("invalid type"));
}

#[test]
fn unknown_variable_gets_a_suggestion() {
    let diags = load_str("rules:\n  - name: r\n    match: x\n    run: [a, \"{stme}\"]\n")
        .expect_err("typo");
    assert_eq!(
        diags.items[0].hint.as_deref(),
        Some("did you mean `{stem}`?")
    );
    assert_eq!(
        diags.items[0].context.as_deref(),
        Some("in rules[0].run (rule `r`)")
    );
}

#[test]
fn rendered_diagnostic_names_file_line_and_rule() {
    let diags = load_str("rules:\n  - name: plates\n    match: \"plate_[0-9.exr\"\n    run: [a]\n")
        .expect_err("bad glob");
    let text = diags.to_string();
    assert!(
        text.starts_with("error: invalid glob `plate_[0-9.exr`"),
        "{text}"
    );
    assert!(text.contains(" --> rules.yaml:5:12\n"), "{text}");
    assert!(
        text.contains("5 |     match: \"plate_[0-9.exr\"\n  |            ^\n"),
        "{text}"
    );
    assert!(
        text.contains("= note: in rules[0].match (rule `plates`)"),
        "{text}"
    );
}

#[test]
fn captures_and_vars_are_known_to_templates() {
    load_str("vars: {san: /s}\nrules:\n  - name: r\n    regex: '^(?P<shot>sh\\d+)/'\n    run: [a, \"{san}/{shot}/{frame}\"]\n")
        .expect("captures and vars are variables");
}

#[test]
fn syntax_errors_are_positioned() {
    let (line, _, message) = single_error("rules:\n  - name: [a\n");
    assert!(message.starts_with("invalid YAML"), "{message}");
    assert!(line >= 4, "{line}");
}

#[test]
fn anchors_and_merge_keys_share_settings() {
    let file = load_str(
        "rules:\n  - &base\n    name: a\n    match: \"**/*.tif\"\n    run: [a]\n    retries: 3\n  - <<: *base\n    name: b\n",
    )
    .expect("merged");
    assert_eq!(file.rules[1].retries, 3);
    assert_eq!(file.rules[1].name, "b");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    assert!(parse_duration("5").expect_err("no unit").contains("`5s`"));
    assert!(parse_duration("soon").is_err());
}

#[test]
fn sequence_timecode_keykode_and_verify_load() {
    let file = load_str(
        "timecode: {fps: 23.976, start: \"01:00:00:00\", at_frame: 1001}\nrules:\n  - name: movie\n    match: \"**/*.tif\"\n    sequence: {expect: \"1001-1048\", on_gaps: hold}\n    keykode: {start: \"KU 22 9012 1234+05\", format: 35mm-3perf}\n    verify: {frames: \"{seq.count}\", timecode: \"{timecode}\", width: 1920}\n    output: \"{dir}/{seq.name}.mov\"\n    run: [ffmpeg, -start_number, \"{seq.start}\", -i, \"{seq.pattern}\", -timecode, \"{timecode}\", -metadata, \"comment={keykode}\", \"{out}\"]\n  - name: still\n    match: \"**/*.tif\"\n    timecode: {fps: 30000/1001, start: \"00:59:59;28\"}\n    run: [echo, \"{timecode}\"]\n",
    )
    .expect("valid");
    let movie = &file.rules[0];
    let sequence = movie.sequence.as_ref().expect("sequence");
    assert_eq!(sequence.on_gaps, OnGaps::Hold);
    assert_eq!(movie.settle, DEFAULT_SEQUENCE_SETTLE);
    assert_eq!(
        movie.timecode.as_ref().expect("inherited").at(1001, 0),
        "01:00:00:00"
    );
    assert_eq!(
        movie.keykode.as_ref().expect("keykode").start.format,
        FilmFormat::Mm35Perf3
    );
    assert_eq!(movie.verify.as_ref().expect("verify").checks.len(), 3);
    let still = &file.rules[1];
    assert!(still.sequence.is_none());
    assert_eq!(
        still.timecode.as_ref().expect("own").at(5, 5),
        "00:59:59;28"
    );
}

#[test]
fn impossible_timecodes_and_unknown_film_formats_are_load_errors() {
    let rule = |extra: &str| {
        format!(
            "rules:\n  - name: r\n    match: \"**/*.tif\"\n    {extra}\n    run: [echo, \"{{timecode}}\"]\n"
        )
    };
    let (line, column, message) =
        single_error(&rule("timecode: {fps: 24, start: \"01:00:00:24\"}"));
    assert_eq!((line, column), (6, 32));
    assert!(message.contains("frames must be 00–23"), "{message}");
    let (_, column, message) = single_error(&rule("timecode: {fps: 25, start: \"01:00:00;00\"}"));
    assert_eq!(column, 32);
    assert!(message.contains("drop-frame"), "{message}");
    let (_, _, message) = single_error(&rule("timecode: {fps: 29.97, start: \"00:01:00;00\"}"));
    assert!(message.contains("does not exist"), "{message}");
    let (_, _, message) = single_error(&rule("timecode: {fps: 29.9, start: \"00:01:00:00\"}"));
    assert!(message.contains("unknown frame rate"), "{message}");
    let (_, column, message) = single_error(&format!(
        "{}    keykode: {{start: \"KU 22 9012 1234+05\", format: 35mm}}\n",
        rule("timecode: {fps: 24, start: \"01:00:00:00\"}")
    ));
    assert_eq!(column, 52);
    assert!(message.contains("unknown film format"), "{message}");
    let (_, _, message) = single_error(
        "rules:\n  - name: r\n    match: \"**/*.tif\"\n    run: [echo, \"{seq.first}\"]\n",
    );
    assert!(message.contains("seq.first"), "{message}");
    let (_, _, message) = single_error(
        "rules:\n  - name: r\n    match: \"**/*.tif\"\n    sequence: {expect: \"1048-1001\"}\n    run: [echo, \"{seq.first}\"]\n",
    );
    assert!(message.contains("before the first"), "{message}");
}

fn load_file(text: &str) -> Result<RuleFile, Diagnostics> {
    parse(Path::new("rules.yaml"), text, Path::new("/show"))
}

#[test]
fn watch_root_names_default_to_the_folder_and_sources_to_auto() {
    // (the `watch:` section, the names and sources it gives)
    let cases: &[(&str, &[(&str, SourceKind)])] = &[
        ("watch: [shots]", &[("shots", SourceKind::Auto)]),
        (
            "watch:\n  - path: /mnt/plates/incoming\n  - {path: shots, name: show}",
            &[("incoming", SourceKind::Auto), ("show", SourceKind::Auto)],
        ),
        (
            "watch:\n  - {path: shots, source: inotify}\n  - {path: nas, source: poll}\n  - {path: any, source: auto}",
            &[
                ("shots", SourceKind::Inotify),
                ("nas", SourceKind::Poll),
                ("any", SourceKind::Auto),
            ],
        ),
    ];
    for (watch, expected) in cases {
        let file = load_file(&format!("version: 1\n{watch}\nrules: []\n"))
            .unwrap_or_else(|e| panic!("{watch}: {e}"));
        let got: Vec<(&str, SourceKind)> = file
            .watch
            .iter()
            .map(|root| (root.name.as_str(), root.source))
            .collect();
        assert_eq!(got, *expected, "{watch}");
    }
}

#[test]
fn bad_watch_root_names_and_sources_are_positioned_errors() {
    // (the `watch:` section, the whole rendered diagnostic)
    let cases: &[(&str, &str)] = &[
        (
            "watch:\n  - path: shots\n    name: shots\n  - path: plates\n    name: shots",
            "error: two watch roots are named `shots`
 --> rules.yaml:6:11
  |
6 |     name: shots
  |           ^
  = note: in watch
  = help: give each root a unique `name:`; the store records paths relative to it

1 error in rules.yaml",
        ),
        (
            // Two folders with the same name clash too; with no `name:` the root itself is blamed.
            "watch:\n  - path: a/shots\n  - b/shots",
            "error: two watch roots are named `shots`
 --> rules.yaml:4:5
  |
4 |   - b/shots
  |     ^
  = note: in watch
  = help: give each root a unique `name:`; the store records paths relative to it

1 error in rules.yaml",
        ),
        (
            "watch:\n  - path: shots\n    name: show/shots",
            "error: watch root name `show/shots` must be non-empty, without `/` or control characters
 --> rules.yaml:4:11
  |
4 |     name: show/shots
  |           ^
  = note: in watch

1 error in rules.yaml",
        ),
        (
            "watch:\n  - {path: shots, source: fast}",
            "error: `source`: unknown variant `fast`, expected one of `auto`, `inotify`, `poll`
 --> rules.yaml:3:27
  |
3 |   - {path: shots, source: fast}
  |                           ^
  = note: in watch.source

1 error in rules.yaml",
        ),
        (
            "watch:\n  - path: shots\n    sorce: poll",
            "error: unknown key `sorce`
 --> rules.yaml:4:5
  |
4 |     sorce: poll
  |     ^
  = note: in watch
  = help: did you mean `source`?

1 error in rules.yaml",
        ),
        (
            "watch:\n  - path: shots\n    source: inotify\n    poll: {hot: 1s}",
            "error: `poll:` settings on a root whose `source` is `inotify` would do nothing
 --> rules.yaml:5:12
  |
5 |     poll: {hot: 1s}
  |            ^
  = note: in watch
  = help: set `source: poll` (or leave `source` out: `auto` polls network file systems), or remove `poll:`

1 error in rules.yaml",
        ),
        (
            "watch:\n  - path: shots\n    poll: {hot: 2, cold: 1ms, quick: 5s}",
            "error: invalid duration `2`
 --> rules.yaml:4:17
  |
4 |     poll: {hot: 2, cold: 1ms, quick: 5s}
  |                 ^
  = note: in watch.poll.hot
  = help: add a unit: `2s`, `2m` or `2ms`

error: `cold` must be between 50ms and 24h
 --> rules.yaml:4:26
  |
4 |     poll: {hot: 2, cold: 1ms, quick: 5s}
  |                          ^
  = note: in watch.poll.cold

error: unknown key `quick`
 --> rules.yaml:4:31
  |
4 |     poll: {hot: 2, cold: 1ms, quick: 5s}
  |                               ^
  = note: in watch.poll
  = help: did you mean `quiet`?

3 errors in rules.yaml",
        ),
        (
            "watch:\n  - path: shots\n    poll: {hot: 1m}",
            "error: `hot` (1m) is longer than `cold` (30s): recently changed folders would be looked at less often than quiet ones
 --> rules.yaml:4:17
  |
4 |     poll: {hot: 1m}
  |                 ^
  = note: in watch.poll.hot

1 error in rules.yaml",
        ),
        (
            "watch:\n  - poll: 3s",
            "error: missing `path`
 --> rules.yaml:3:5
  |
3 |   - poll: 3s
  |     ^
  = note: in watch
  = help: e.g. `- path: shots`

1 error in rules.yaml",
        ),
    ];
    for (watch, expected) in cases {
        let diagnostics = load_file(&format!("version: 1\n{watch}\nrules: []\n"))
            .expect_err("invalid watch root");
        assert_eq!(diagnostics.to_string(), *expected, "{watch}");
    }
}

#[test]
fn a_rule_definition_hash_is_pinned_across_builds() {
    let file = load_str(
        "rules:\n  - name: review\n    match: \"*/comp/*.tif\"\n    sequence: {on_gaps: hold}\n    timeout: 10m\n    retries: 2\n    output: \"{dir}/{stem}.mov\"\n    run: [ffmpeg, -i, \"{path}\", \"{out}\"]\n",
    )
    .expect("valid");
    let renamed = load_str(
        "rules:\n  - name: other-name\n    match: \"*/comp/*.tif\"\n    sequence: {on_gaps: hold}\n    timeout: 10m\n    retries: 2\n    output: \"{dir}/{stem}.mov\"\n    run: [ffmpeg, -i, \"{path}\", \"{out}\"]\n",
    )
    .expect("valid");
    assert_eq!(
        file.rules[0].definition_hash, renamed.rules[0].definition_hash,
        "the name is not part of it"
    );
    assert_eq!(file.rules[0].definition_hash, "785ab04f212a6977");
}

#[test]
fn tags_are_words_and_a_bad_one_is_reported_at_the_key() {
    let file = load_str(
        "rules:\n  - name: dnx\n    match: \"**/*.mxf\"\n    tags: [gpu, linux]\n    run: [true]\n",
    )
    .expect("loads");
    assert_eq!(file.rules[0].tags, ["gpu", "linux"]);
    let err = load_str(
        "rules:\n  - name: dnx\n    match: \"**/*.mxf\"\n    tags: [\"gpu,linux\"]\n    run: [true]\n",
    )
    .expect_err("a comma is not part of a word")
    .to_string();
    assert!(err.contains("tag `gpu,linux` is not a word"), "{err}");
    assert!(
        err.contains(":6:"),
        "points at the key's line (2 lines of header): {err}"
    );
    assert!(err.contains("rule `dnx`"), "{err}");
}
