//! Loading `inputs:`, `wait_inputs:`, `on_input_change:` and `lineage:`: templates checked
//! against the job's variables, keys that mean nothing without `inputs:` refused at themselves,
//! the work hash that changes with what a rule makes and not with when it runs.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::rules::diag::Diagnostics;

fn load(text: &str) -> Result<RuleFile, Diagnostics> {
    parse(Path::new("rules.yaml"), text, Path::new("/show"))
}

fn report(text: &str) -> String {
    load(text).expect_err("expected errors").to_string()
}

const HEAD: &str = "version: 1\nwatch: [shots]\nrules:\n";

fn graded(extra: &str) -> String {
    format!(
        "{HEAD}  - name: graded\n    regex: \"^(?P<shot>sh[0-9]+)/\"\n    inputs: [\"{{root}}/{{shot}}/grade/{{shot}}.cube\"]\n{extra}    run: [cp, \"{{path}}\", x]\n"
    )
}

#[test]
fn inputs_load_with_their_defaults() {
    let file = load(&graded("")).expect("valid");
    let inputs = file.rules[0].inputs.as_ref().expect("inputs");
    assert_eq!(inputs.paths[0].source(), "{root}/{shot}/grade/{shot}.cube");
    assert_eq!(inputs.wait, crate::rules::inputs::DEFAULT_WAIT_INPUTS);
    assert_eq!(inputs.on_change, OnInputChange::Rerun);
    assert!(file.lineage.record);
    let file = load(&graded("    wait_inputs: 2h\n    on_input_change: stale\n")).expect("valid");
    let inputs = file.rules[0].inputs.as_ref().expect("inputs");
    assert_eq!(inputs.wait, Duration::from_secs(7200));
    assert_eq!(inputs.on_change, OnInputChange::Stale);
}

#[test]
fn an_unknown_variable_in_an_input_is_an_error_at_it() {
    let text = format!(
        "{HEAD}  - name: graded\n    regex: \"^(?P<shot>sh[0-9]+)/\"\n    inputs: [\"{{root}}/{{shto}}/grade.cube\"]\n    run: [cp, \"{{path}}\", x]\n"
    );
    let report = report(&text);
    assert!(report.contains("rules.yaml:6:"), "{report}");
    assert!(report.contains("{shto}"), "{report}");
    assert!(report.contains("did you mean `{shot}`"), "{report}");
    assert!(
        report.contains("in rules[0].inputs (rule `graded`)"),
        "{report}"
    );
}

#[test]
fn wait_inputs_and_on_input_change_need_inputs() {
    let text = format!(
        "{HEAD}  - name: r\n    match: \"**\"\n    wait_inputs: 2h\n    on_input_change: stale\n    run: [cp]\n"
    );
    let report = report(&text);
    assert!(report.contains("`wait_inputs` needs `inputs:`"), "{report}");
    assert!(
        report.contains("`on_input_change` needs `inputs:`"),
        "{report}"
    );
    assert!(report.contains("rules.yaml:6:18"), "{report}");
}

#[test]
fn bad_values_are_refused_at_them() {
    let report = report(&graded("    on_input_change: sometimes\n"));
    assert!(report.contains("on_input_change"), "{report}");
    assert!(report.contains("rerun"), "{report}");
    let report = self::report(&graded("    wait_inputs: 0s\n"));
    assert!(
        report.contains("`wait_inputs` must be longer than 0s"),
        "{report}"
    );
    let text = format!(
        "{HEAD}  - name: r\n    match: \"**\"\n    inputs: \"grade.cube\"\n    run: [cp]\n"
    );
    assert!(self::report(&text).contains("`inputs` takes a list of paths"));
}

#[test]
fn the_lineage_block_is_checked() {
    let file = load(
        "version: 1\nwatch: [shots]\nlineage: {record: false, openlineage: \"http://marquez:5000/api/v1/lineage\"}\nrules:\n  - name: r\n    match: \"**\"\n    run: [cp]\n"
    )
    .expect("valid");
    assert!(!file.lineage.record);
    assert_eq!(
        file.lineage.openlineage.as_deref(),
        Some("http://marquez:5000/api/v1/lineage")
    );
    let report = report(
        "version: 1\nwatch: [shots]\nlineage: {openlineage: \"marquez:5000\"}\nrules:\n  - name: r\n    match: \"**\"\n    run: [cp]\n",
    );
    assert!(
        report.contains("`openlineage` must be an http:// or https:// URL"),
        "{report}"
    );
    let report = self::report(
        "version: 1\nwatch: [shots]\nlineage: {recrod: true}\nrules:\n  - name: r\n    match: \"**\"\n    run: [cp]\n",
    );
    assert!(report.contains("did you mean `record`?"), "{report}");
}

#[test]
fn the_work_hash_follows_what_a_rule_makes_not_when_it_runs() {
    let base = load(&graded("")).expect("valid").rules[0].work_hash.clone();
    let timeout = load(&graded("    timeout: 5m\n    retries: 2\n")).expect("valid");
    assert_eq!(
        timeout.rules[0].work_hash, base,
        "timeout and retries make the same product"
    );
    let input =
        load(&graded("").replace("grade/{shot}.cube", "grade/{shot}_v2.cube")).expect("valid");
    assert_ne!(input.rules[0].work_hash, base);
    let command = load(&graded("").replace("run: [cp,", "run: [cp, -p,")).expect("valid");
    assert_ne!(command.rules[0].work_hash, base);
    let vars =
        load(&graded("").replace("version: 1\n", "version: 1\nvars: {show: x}\n")).expect("valid");
    assert_ne!(vars.rules[0].work_hash, base, "vars fill the templates");
}
