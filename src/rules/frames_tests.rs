//! Loading `frames:` and `{cut.*}`: both need the rule's `shot` capture, refused at their
//! value otherwise; a typo'd `{cut.x}` gets a did-you-mean; `frames` is part of the hash.

use std::path::Path;

use super::*;
use crate::edit::FrameClass;
use crate::rules::diag::Diagnostics;

fn load(text: &str) -> Result<RuleFile, Diagnostics> {
    parse(Path::new("rules.yaml"), text, Path::new("/show"))
}

fn report(text: &str) -> String {
    load(text).expect_err("expected errors").to_string()
}

const HEAD: &str = "version: 1\nwatch: [shots]\nrules:\n";
const SHOT: &str = "    regex: \"^(?P<shot>sh[0-9]+)/\"\n";

#[test]
fn frames_and_cut_variables_load_with_a_shot_capture() {
    let file = load(&format!(
        "{HEAD}  - name: r\n{SHOT}    frames: in_cut\n    run: [cp, \"{{path}}\", \"{{cut.name}}_{{cut.revision}}_{{cut.head_in}}-{{cut.in}}-{{cut.out}}-{{cut.tail_out}}\"]\n"
    ))
    .expect("valid");
    assert_eq!(file.rules[0].frames, FrameScope::InCut);
    let plain = load(&format!(
        "{HEAD}  - name: r\n    match: \"**/*.exr\"\n    run: [cp]\n"
    ))
    .expect("valid");
    assert_eq!(plain.rules[0].frames, FrameScope::All);
}

#[test]
fn frames_without_a_shot_capture_is_an_error_naming_the_rule() {
    let text = format!(
        "{HEAD}  - name: plates\n    match: \"**/*.exr\"\n    frames: with_handles\n    run: [cp]\n"
    );
    assert_eq!(
        report(&text),
        "error: `frames: with_handles` needs the file's shot, but the rule names none
 --> rules.yaml:6:13
  |
6 |     frames: with_handles
  |             ^
  = note: in rules[0].frames (rule `plates`)
  = help: add a `shot` capture to the rule's `regex`, e.g. `regex: \"^shots/(?P<shot>sh[0-9]+)/\"`

1 error in rules.yaml"
    );
    // `frames: all` asks nothing of the cut.
    load(&format!(
        "{HEAD}  - name: plates\n    match: \"**/*.exr\"\n    frames: all\n    run: [cp]\n"
    ))
    .expect("all needs no shot");
}

#[test]
fn a_bad_frames_value_is_refused_at_it() {
    let errors = load(&format!(
        "{HEAD}  - name: r\n{SHOT}    frames: handles\n    run: [cp]\n"
    ))
    .expect_err("bad value")
    .items;
    assert_eq!((errors[0].span.line, errors[0].span.column), (6, 13));
    assert!(
        errors[0]
            .message
            .starts_with("`frames`: unknown variant `handles`"),
        "{errors:#?}"
    );
}

#[test]
fn a_cut_variable_without_a_shot_capture_is_an_error_naming_the_rule() {
    let text = format!(
        "{HEAD}  - name: plates\n    match: \"**/*.exr\"\n    run: [echo, \"{{cut.in}}\"]\n"
    );
    assert_eq!(
        report(&text),
        "error: unknown template variable `{cut.in}`
 --> rules.yaml:6:18
  |
6 |     run: [echo, \"{cut.in}\"]
  |                  ^
  = note: in rules[0].run (rule `plates`)
  = help: `{cut.*}` variables need the file's shot: add a `shot` capture to the rule's `regex`

1 error in rules.yaml"
    );
}

#[test]
fn an_unknown_cut_variable_gets_a_did_you_mean() {
    let errors = load(&format!(
        "{HEAD}  - name: r\n{SHOT}    run: [echo, \"{{cut.tail_in}}\", \"{{cut.revison}}\"]\n"
    ))
    .expect_err("typos")
    .items;
    let hints: Vec<_> = errors
        .into_iter()
        .map(|d| (d.message, d.hint.unwrap_or_default()))
        .collect();
    assert_eq!(
        hints,
        [
            (
                "unknown template variable `{cut.tail_in}`".to_string(),
                "did you mean `{cut.tail_out}`?".to_string()
            ),
            (
                "unknown template variable `{cut.revison}`".to_string(),
                "did you mean `{cut.revision}`?".to_string()
            ),
        ]
    );
}

#[test]
fn frames_is_part_of_the_hash_only_when_set() {
    let base = format!("{HEAD}  - name: r\n{SHOT}    run: [cp]\n");
    let hash = |t: &str| load(t).expect("valid").rules[0].definition_hash.clone();
    let all = base.replace("    run:", "    frames: all\n    run:");
    let in_cut = base.replace("    run:", "    frames: in_cut\n    run:");
    let handles = base.replace("    run:", "    frames: with_handles\n    run:");
    assert_eq!(hash(&base), hash(&all));
    assert_ne!(hash(&base), hash(&in_cut));
    assert_ne!(hash(&in_cut), hash(&handles));
}

#[test]
fn scopes_allow_their_classes() {
    use FrameClass::{Handle, InCut, Outside};
    let cases = [
        (FrameScope::All, [true, true, true]),
        (FrameScope::WithHandles, [true, true, false]),
        (FrameScope::InCut, [true, false, false]),
    ];
    for (scope, expected) in cases {
        let got = [InCut, Handle, Outside].map(|c| scope.allows(c));
        assert_eq!(got, expected, "{scope:?}");
    }
}
