//! `copy:` and `move:`: what loads, and every load-time refusal with its position.

use std::path::Path;

use super::*;
use crate::deliver::copy::TransferKind;
use crate::deliver::hash::HashKind;
use crate::rules::diag::{Diagnostics, Severity};

const HEAD: &str = "version: 1\nwatch: [shots]\noutputs: [/san]\n";

fn load_str(body: &str) -> Result<RuleFile, Diagnostics> {
    parse(
        Path::new("rules.yaml"),
        &format!("{HEAD}{body}"),
        Path::new("/show"),
    )
}

/// The (line, column, message, hint) of each error.
fn errors(body: &str) -> Vec<(usize, usize, String, Option<String>)> {
    load_str(body)
        .expect_err("expected errors")
        .items
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.span.line, d.span.column, d.message, d.hint))
        .collect()
}

fn rule(lines: &str) -> String {
    format!("rules:\n  - name: san\n    match: \"**/*.mov\"\n{lines}")
}

#[test]
fn a_copy_alone_is_the_rules_action_with_xxh64_by_default() {
    let file = load_str(&rule("    copy: {to: \"/san/{rel}\"}\n")).expect("valid");
    let transfer = file.rules[0].transfer.as_ref().expect("a copy");
    assert_eq!(transfer.kind, TransferKind::Copy);
    assert_eq!(transfer.to.source(), "/san/{rel}");
    assert_eq!(transfer.hashes, [HashKind::Xxh64]);
    assert!(!transfer.mhl);
    assert!(file.rules[0].steps.is_empty());
}

#[test]
fn a_move_beside_commands_takes_a_list_of_hashes_and_mhl() {
    let file = load_str(&rule(
        "    output: \"{dir}/review/{stem}.mov\"\n    run: [cp, \"{path}\", \"{out}\"]\n    move:\n      to: \"/san/day1/{name}\"\n      hash: [md5, xxh3, sha1]\n      mhl: true\n",
    ))
    .expect("valid");
    let transfer = file.rules[0].transfer.as_ref().expect("a move");
    assert_eq!(transfer.kind, TransferKind::Move);
    assert_eq!(
        transfer.hashes,
        [HashKind::Md5, HashKind::Xxh3, HashKind::Sha1]
    );
    assert!(transfer.mhl);
}

#[test]
fn the_transfer_is_part_of_the_rules_definition_hash() {
    let hash = |lines: &str| {
        load_str(&rule(lines)).expect("valid").rules[0]
            .definition_hash
            .clone()
    };
    let copy = hash("    copy: {to: \"/san/{rel}\"}\n");
    assert_ne!(copy, hash("    move: {to: \"/san/{rel}\"}\n"));
    assert_ne!(copy, hash("    copy: {to: \"/san/{rel}\", mhl: true}\n"));
    assert_ne!(copy, hash("    copy: {to: \"/san/{rel}\", hash: md5}\n"));
}

#[test]
fn an_unknown_hash_is_positioned_with_a_suggestion() {
    assert_eq!(
        errors(&rule(
            "    copy: {to: \"/san/{rel}\", hash: [md5, xxh46]}\n"
        )),
        [(
            7,
            42,
            "unknown hash `xxh46`".to_string(),
            Some("did you mean `xxh64`?".to_string())
        )]
    );
    let text = load_str(&rule("    copy: {to: \"/san/{rel}\", hash: crc32}\n"))
        .expect_err("unknown")
        .to_string();
    assert!(
        text.starts_with("error: unknown hash `crc32`\n --> rules.yaml:7:36\n"),
        "{text}"
    );
    assert!(
        text.contains("= note: in rules[0].copy.hash (rule `san`)"),
        "{text}"
    );
    assert!(
        text.contains("known hashes: xxh64, xxh3, md5, sha1"),
        "{text}"
    );
}

#[test]
fn hash_lists_must_name_each_hash_once() {
    let all = errors(&rule("    copy: {to: \"/san/{rel}\", hash: [md5, md5]}\n"));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].2, "hash `md5` is listed twice");
    let all = errors(&rule("    copy: {to: \"/san/{rel}\", hash: []}\n"));
    assert_eq!(all[0].2, "`hash` lists no hash");
}

#[test]
fn to_is_checked_like_every_template() {
    let all = errors(&rule("    copy: {to: \"/san/{shto}/{name}\"}\n"));
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(
        (all[0].0, all[0].1, all[0].2.as_str()),
        (7, 22, "unknown template variable `{shto}`")
    );
    // `{out}` is a temp path gone once the product is published: not a destination.
    let all = errors(&rule(
        "    output: \"{dir}/r.mov\"\n    run: [cp, \"{path}\", \"{out}\"]\n    copy: {to: \"{out}.copy\"}\n",
    ));
    assert_eq!(all[0].2, "unknown template variable `{out}`");
    let all = errors(&rule("    copy: {to: \"/san/{dir}/\"}\n"));
    assert_eq!(all[0].2, "`copy.to` names a folder, not a file");
    let all = errors(&rule("    copy: {hash: md5}\n"));
    assert_eq!(all[0].2, "`copy` needs `to:`, the destination file");
    let all = errors(&rule("    copy: {to: \"/san/{rel}\", mlh: true}\n"));
    assert_eq!(
        (all[0].2.as_str(), all[0].3.as_deref()),
        ("unknown key `mlh`", Some("did you mean `mhl`?"))
    );
}

#[test]
fn copy_and_move_together_are_refused_at_the_second() {
    let all = errors(&rule(
        "    copy: {to: \"/san/a/{name}\"}\n    move: {to: \"/san/b/{name}\"}\n",
    ));
    assert_eq!(
        all.iter().map(|e| (e.0, e.2.as_str())).collect::<Vec<_>>(),
        [(8, "give either `copy` or `move`, not both")]
    );
}

#[test]
fn combinations_with_nothing_to_deliver_are_refused() {
    let cases: &[(&str, &str)] = &[
        (
            "    run: [touch, \"{path}.seen\"]\n    copy: {to: \"/san/{rel}\"}\n",
            "`copy` beside `run`/`steps` delivers the rule's product, but the rule declares no `output`",
        ),
        (
            "    output: \"/san/x.mov\"\n    move: {to: \"/san/{rel}\"}\n",
            "`output` names a product of commands, but the rule runs none: `move` delivers the matched file to `move.to`",
        ),
        (
            "    sequence: true\n    copy: {to: \"/san/{rel}\"}\n",
            "`copy` as a sequence rule's action has no single file to deliver",
        ),
        (
            "    on: delete\n    move: {to: \"/san/{rel}\"}\n",
            "`move` on a rule that fires only on `delete`: a deleted file cannot be delivered",
        ),
    ];
    for (lines, message) in cases {
        let all = errors(&rule(lines));
        assert!(
            all.iter().any(|e| e.2 == *message),
            "{lines}: expected `{message}`, got {all:#?}"
        );
    }
}

#[test]
fn a_rule_without_commands_or_transfer_still_needs_run() {
    let all = errors(&rule(""));
    assert_eq!(
        all[0].2,
        "rule needs `run` (one command) or `steps` (several)"
    );
    assert!(
        all[0]
            .3
            .as_deref()
            .is_some_and(|h| h.contains("copy: {to: ...}"))
    );
}
