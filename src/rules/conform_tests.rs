//! The `conform:` block: what loads, and each refusal at its value with its hint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::rules::conform::ConformCodec;
use crate::rules::diag::{Diagnostics, Severity};
use crate::rules::{RuleFile, parse};

const HEAD: &str = "version: 1\nwatch: [\"/\"]\nrules:\n  - name: review\n    match: \"*.exr\"\n    run: [\"true\"]\ncuts: {shot: \"^(?P<shot>sh[0-9]{3})_\"}\n";

fn load(body: &str) -> Result<RuleFile, Diagnostics> {
    parse(
        Path::new("rules.yaml"),
        &format!("{HEAD}{body}"),
        Path::new("/show"),
    )
}

/// Every error of `body` as `line:col message | hint`.
fn errors(body: &str) -> Vec<String> {
    load(body)
        .expect_err("expected errors")
        .items
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            format!(
                "{}:{} {} | {}",
                d.span.line,
                d.span.column,
                d.message,
                d.hint.unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn a_full_block_loads_and_names_its_movie() {
    let file = load(
        "vars: {show: demo}\nconform:\n  from: review\n  output: \"edit/{show}_{cut.name}_r{cut.revision}.mov\"\n  pick: latest\n  codec: ffv1\n  cut: reel1\n  settle: 2s\n",
    )
    .expect("loads");
    let c = file.conform.expect("conform");
    assert_eq!(c.from, "review");
    assert_eq!(c.codec, ConformCodec::Ffv1);
    assert_eq!(c.settle, Duration::from_secs(2));
    assert!(c.covers("reel1") && !c.covers("reel2"));
    assert_eq!(
        c.output_for("reel1", 3).unwrap(),
        PathBuf::from("/show/edit/demo_reel1_r3.mov")
    );
}

#[test]
fn defaults_are_prores_every_cut_and_thirty_seconds() {
    let file = load("conform: {from: review, output: \"/r/{cut.name}.mov\"}\n").expect("loads");
    let c = file.conform.expect("conform");
    assert_eq!(c.codec, ConformCodec::Prores);
    assert_eq!(c.settle, Duration::from_secs(30));
    assert!(c.cut.is_none() && c.covers("anything"));
    assert_eq!(
        c.output_for("a/b", 1).unwrap(),
        PathBuf::from("/r/a_b.mov"),
        "a cut's name never makes a folder"
    );
    assert!(load("").expect("loads").conform.is_none());
    let ffv1 = load("conform: {from: review, output: \"/r/{cut.name}.mov\", codec: ffv1}\n")
        .expect("loads")
        .conform
        .expect("conform");
    assert_eq!(c.definition_hash().len(), 16);
    assert_ne!(c.definition_hash(), ffv1.definition_hash());
}

#[test]
fn bad_blocks_are_refused_at_their_values() {
    let cases: &[(&str, &[&str])] = &[
        (
            "conform: {from: reveiw, output: \"{cut.name}.mov\"}\n",
            &["8:17 no rule named `reveiw` | did you mean `review`?"],
        ),
        (
            "conform: {from: zzzzzzzz, output: \"{cut.name}.mov\"}\n",
            &["8:17 no rule named `zzzzzzzz` | the rules are: `review`"],
        ),
        (
            "conform:\n  from: review\n  output: \"r/{cut.name}_{cut.revison}.mov\"\n",
            &["10:25 unknown template variable `{cut.revison}` | did you mean `{cut.revision}`?"],
        ),
        (
            "conform:\n  from: review\n  output: \"r/{cut.name}.mov\"\n  pick: approved\n",
            &["11:9 `pick: approved` is not supported yet"],
        ),
        (
            "conform:\n  from: review\n  output: \"r/{cut.name}.mov\"\n  codec: h264\n",
            &["11:10 unknown codec `h264`"],
        ),
        (
            "conform:\n  from: review\n  output: \"r/{cut.name}.mov\"\n  settle: 30\n",
            &["11:11 `settle`: add a unit"],
        ),
        (
            "conform:\n  from: review\n  output: \"r/all.mov\"\n",
            &["10:11 every cut would be conformed into one movie"],
        ),
        (
            "conform:\n  from: review\n",
            &["9:3 `conform:` needs `output:`"],
        ),
        (
            "conform:\n  output: \"{cut.name}.mov\"\n",
            &["9:3 `conform:` needs `from:`"],
        ),
        (
            "conform:\n  from: review\n  output: \"{cut.name}.mov\"\n  cutt: reel1\n",
            &["11:3 unknown key `cutt` | did you mean `cut`?"],
        ),
        ("conform: review\n", &["8:10 `conform` takes a mapping"]),
    ];
    for (body, want) in cases {
        let got = errors(body);
        assert_eq!(got.len(), want.len(), "{body}: {got:#?}");
        for (g, w) in got.iter().zip(*want) {
            assert!(g.starts_with(w), "{body}:\n got {g}\nwant {w}");
        }
    }
}

#[test]
fn conform_needs_a_cuts_block() {
    let text = "version: 1\nwatch: [\"/\"]\nrules:\n  - name: review\n    match: \"*.exr\"\n    run: [\"true\"]\nconform: {from: review, output: \"{cut.name}.mov\"}\n";
    let report = parse(Path::new("rules.yaml"), text, Path::new("/")).expect_err("refused");
    let shown = report.to_string();
    assert!(shown.contains("rules.yaml:7:11"), "{shown}");
    assert!(
        shown.contains("`conform:` needs a `cuts:` block"),
        "{shown}"
    );
}

#[test]
fn a_rule_may_not_take_the_conform_jobs_name() {
    let text = format!(
        "{}  - name: conform\n    match: \"*.mov\"\n    run: [\"true\"]\n",
        "version: 1\nwatch: [\"/\"]\nrules:\n  - name: review\n    match: \"*.exr\"\n    run: [\"true\"]\n"
    ) + "cuts: {shot: \"(?P<shot>sh[0-9]+)\"}\nconform: {from: review, output: \"{cut.name}.mov\"}\n";
    let report = parse(Path::new("rules.yaml"), &text, Path::new("/")).expect_err("refused");
    assert!(
        report
            .to_string()
            .contains("has the name conform jobs take"),
        "{report}"
    );
}
