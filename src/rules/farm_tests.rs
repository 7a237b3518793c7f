//! `executor:` and the `slurm:` blocks: what loads, what merges, and each refusal at its value.

use std::path::Path;

use super::*;
use crate::rules::diag::{Diagnostic, Diagnostics, Severity};
use crate::rules::farm::ExecutorKind;

fn load(body: &str) -> Result<RuleFile, Diagnostics> {
    parse(
        Path::new("rules.yaml"),
        &format!("version: 1\nwatch: [\"/\"]\n{body}"),
        Path::new("/"),
    )
}

fn errors(body: &str) -> Vec<Diagnostic> {
    load(body)
        .expect_err("expected errors")
        .items
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

const RULE: &str = "rules:\n  - name: r\n    match: \"**\"\n    run: [ffmpeg, -i, \"{path}\"]\n    executor: slurm\n";

#[test]
fn a_rules_request_is_the_files_with_its_own_over_it() {
    let file = load(&format!(
        "slurm:\n  spool: /farm/spool\n  poll: 1s\n  max_jobs: 50\n  partition: render\n  time: \"1:00:00\"\n  mem: 8G\n{RULE}    timeout: 10m\n    slurm: {{partition: gpu, gres: \"gpu:1\", args: [--constraint=avx2]}}\n"
    ))
    .expect("loads");
    let farm = file.farm.as_ref().expect("farm settings");
    assert_eq!((farm.max_jobs, farm.poll.as_millis()), (50, 1000));
    let rule = &file.rules[0];
    assert_eq!(rule.executor, ExecutorKind::Slurm);
    let request = rule.slurm.as_ref().expect("request");
    assert_eq!(request.partition.as_deref(), Some("gpu"));
    assert_eq!(request.mem.as_deref(), Some("8G"));
    assert_eq!(request.time_minutes, Some(60));
    assert_eq!(request.gres.as_deref(), Some("gpu:1"));
    assert_eq!(request.args, ["--constraint=avx2"]);
    assert_eq!(request.spool, Path::new("/farm/spool"));
    assert_eq!(request.poll_ms, 1000);
}

#[test]
fn a_farm_rule_without_the_files_block_is_refused_at_its_executor() {
    let errs = errors(RULE);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].message.contains("needs the file's `slurm:` block"),
        "{}",
        errs[0].message
    );
    assert_eq!((errs[0].span.line, errs[0].span.column), (7, 15));
    assert_eq!(errs[0].rule.as_deref(), Some("r"));
}

#[test]
fn bad_values_are_refused_where_they_are_written() {
    let cases = [
        ("  time: soon\n", "`time` `soon` is not a time limit", 5),
        (
            "  mem: 8 GiB\n",
            "`mem` `8 GiB` is not a size Slurm reads",
            5,
        ),
        (
            "  gres: \"gpu::\"\n",
            "`gres` `gpu::` is not a GRES Slurm reads",
            5,
        ),
        ("  cpus: 0\n", "`cpus` must be at least 1", 5),
        (
            "  partition: \"-x\"\n",
            "`partition` `-x` is not a Slurm name",
            5,
        ),
        (
            "  args: [--array=0-3]\n",
            "`args` item `--array=0-3` sets `--array`, which shotrouter sets itself",
            5,
        ),
        (
            "  args: [-oout.log]\n",
            "`args` item `-oout.log` sets `--output`, which shotrouter sets itself",
            5,
        ),
        (
            "  args: [nodelist]\n",
            "`args` item `nodelist` is not an option",
            5,
        ),
        ("  poll: 10ms\n", "`poll` below 200ms", 5),
        ("  partiton: x\n", "unknown key `partiton`", 5),
    ];
    for (line, want, at) in cases {
        let errs = errors(&format!("slurm:\n  spool: /farm\n{line}{RULE}"));
        assert_eq!(errs.len(), 1, "{line}: {errs:#?}");
        assert_eq!(errs[0].message, want, "{line}");
        assert_eq!(errs[0].span.line, at, "{line}");
    }
}

#[test]
fn options_with_values_that_look_reserved_are_theirs() {
    let file = load(&format!(
        "slurm:\n  spool: /farm\n  args: [-cJ, --constraint=a, --exclusive, -x, node13]\n{RULE}"
    ));
    // `-cJ` is `--cpus-per-task=J` (Slurm refuses it at submission, not shotrouter at load);
    // `node13` is not an option.
    let errs = file.expect_err("node13").items;
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].message.contains("`node13` is not an option"),
        "{errs:#?}"
    );
}

#[test]
fn the_spool_is_required_and_pattern_free() {
    let errs = errors(&format!("slurm:\n  partition: render\n{RULE}"));
    assert!(
        errs.iter().any(|e| e.message.contains("needs `spool:`")),
        "{errs:#?}"
    );
    let errs = errors(&format!("slurm:\n  spool: /farm/%u\n{RULE}"));
    assert!(errs[0].message.contains("holds a `%`"), "{errs:#?}");
}

#[test]
fn rule_blocks_refuse_what_only_the_file_sets_and_local_rules_refuse_slurm() {
    let errs = errors(&format!(
        "slurm:\n  spool: /farm\n{RULE}    slurm: {{spool: /elsewhere}}\n"
    ));
    assert_eq!(
        errs[0].message,
        "`spool` is set once, in the file's `slurm:` block"
    );
    let errs = errors(
        "slurm:\n  spool: /farm\nrules:\n  - name: r\n    match: \"**\"\n    run: [x]\n    slurm: {partition: gpu}\n",
    );
    assert_eq!(
        errs[0].message,
        "`slurm:` settings on a rule that does not run on Slurm"
    );
    let errs = errors("rules:\n  - name: r\n    match: \"**\"\n    run: [x]\n    executor: farm\n");
    assert_eq!(errs[0].message, "unknown executor `farm`");
    let errs = errors(
        "slurm:\n  spool: /farm\nrules:\n  - name: r\n    match: \"**\"\n    executor: slurm\n    copy: {to: \"/san/{name}\"}\n",
    );
    assert!(
        errs.iter().any(
            |e| e.message == "a rule without `run:` or `steps:` has nothing to run on the farm"
        ),
        "{errs:#?}"
    );
}

#[test]
fn the_definition_hash_does_not_depend_on_where_a_rule_runs() {
    let local = load("rules:\n  - name: r\n    match: \"**\"\n    run: [ffmpeg, -i, \"{path}\"]\n")
        .expect("loads");
    let farm = load(&format!("slurm:\n  spool: /farm\n{RULE}")).expect("loads");
    assert_eq!(
        local.rules[0].definition_hash,
        farm.rules[0].definition_hash
    );
}
