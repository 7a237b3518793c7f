//! Loading `priority:`: a whole number, 0 by default; out of range is an error at its value;
//! no part of the definition hash (it decides when a job starts, not what it does).

use std::path::Path;

use super::*;
use crate::rules::diag::Diagnostics;

fn load(text: &str) -> Result<RuleFile, Diagnostics> {
    parse(Path::new("rules.yaml"), text, Path::new("/show"))
}

const HEAD: &str =
    "version: 1\nwatch: [shots]\nrules:\n  - name: r\n    match: \"**/*.exr\"\n    run: [cp]\n";

#[test]
fn priority_is_read_and_defaults_to_zero_outside_the_hash() {
    let plain = load(HEAD).expect("valid");
    let urgent = load(&format!("{HEAD}    priority: -3\n")).expect("valid");
    assert_eq!((plain.rules[0].priority, urgent.rules[0].priority), (0, -3));
    assert_eq!(
        plain.rules[0].definition_hash,
        urgent.rules[0].definition_hash
    );
}

#[test]
fn a_priority_out_of_range_is_an_error_at_its_value() {
    let report = load(&format!("{HEAD}    priority: 5000000\n"))
        .expect_err("out of range")
        .to_string();
    assert!(
        report.contains("rules.yaml:7:15") && report.contains("`priority` 5000000 is out of range"),
        "{report}"
    );
}

#[test]
fn windows_are_read_as_one_or_a_list_and_a_bad_one_is_an_error_at_its_place() {
    let one = load(&format!("{HEAD}    window: \"19:00-07:00\"\n")).expect("valid");
    assert_eq!(one.rules[0].windows.len(), 1);
    let two = load(&format!(
        "{HEAD}    window: [\"12:00-13:00\", \"19:00-07:00\"]\n"
    ))
    .expect("valid");
    assert_eq!(two.rules[0].windows.len(), 2);
    let report = load(&format!(
        "{HEAD}    window: [\"12:00-13:00\", \"19:00-31:00\"]\n"
    ))
    .expect_err("bad window")
    .to_string();
    assert!(
        report.contains("rules.yaml:7:29") && report.contains("`31:00` is not a time of day"),
        "{report}"
    );
}
