use super::*;
use crate::route::plan::{PlanError, plan};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fn set(body: &str) -> RuleSet {
    let text = format!("version: 1\nwatch: [/show/shots]\noutputs: [/san]\n{body}");
    RuleSet::compile(
        crate::rules::parse(Path::new("r.yaml"), &text, Path::new("/")).expect("valid rules"),
    )
    .expect("compiles")
}

fn names(set: &RuleSet, rel: &str) -> Vec<String> {
    set.route(Path::new(rel), EventKind::CloseWrite)
        .into_iter()
        .map(|i| set.file.rules[i].name.clone())
        .collect()
}

const FANOUT: &str = "rules:
  - {name: tif-review, match: \"**/*.tif\", run: [a]}
  - {name: any-render, match: \"*/renders/**\", run: [a]}
  - {name: exr-only, match: \"**/*.exr\", run: [a]}
  - {name: shot-regex, regex: '^sh\\d{3}/', run: [a]}
  - {name: tif-and-shot, match: \"**/*.tif\", regex: '^sh010/', run: [a], stop: true}
  - {name: after-stop, match: \"**\", run: [a]}
";

#[test]
fn every_matching_rule_fires_in_file_order_until_stop() {
    let s = set(FANOUT);
    assert_eq!(
        names(&s, "sh020/renders/a.tif"),
        ["tif-review", "any-render", "shot-regex", "after-stop"].map(String::from)
    );
    assert_eq!(
        names(&s, "sh010/renders/a.tif"),
        ["tif-review", "any-render", "shot-regex", "tif-and-shot"].map(String::from)
    );
    assert_eq!(
        names(&s, "misc/a.exr"),
        ["exr-only", "after-stop"].map(String::from)
    );
}

#[test]
fn glob_and_regex_must_both_match_when_both_are_given() {
    let s = set(FANOUT);
    assert!(!names(&s, "sh020/x.tif").contains(&"tif-and-shot".to_string()));
    assert!(!names(&s, "sh010/x.exr").contains(&"tif-and-shot".to_string()));
}

#[test]
fn star_does_not_cross_folders() {
    let s = set("rules:\n  - {name: top, match: \"*.tif\", run: [a]}\n");
    assert_eq!(names(&s, "a.tif"), ["top"]);
    assert!(names(&s, "sh010/a.tif").is_empty());
}

#[test]
fn ignored_files_and_folders_never_match() {
    let s = set("rules:\n  - {name: all, match: \"**\", run: [a]}\n");
    for rel in [
        ".hidden.tif",
        "sh010/.a.tif",
        "sh010/a.tif.tmp",
        "a.part",
        "a.tif~",
        "sh010/.cache/x/a.tif",
    ] {
        assert!(names(&s, rel).is_empty(), "{rel} should be ignored");
    }
    assert_eq!(names(&s, "sh010/a.tif"), ["all"]);
}

#[test]
fn rules_fire_only_on_their_events() {
    let s = set(
        "rules:\n  - {name: del, match: \"**\", on: [delete], run: [a]}\n  - {name: ready, match: \"**\", run: [a]}\n",
    );
    let on = |kind| s.route(Path::new("a.tif"), kind);
    assert_eq!(on(EventKind::Delete), [0]);
    assert_eq!(on(EventKind::CloseWrite), [1]);
    assert_eq!(on(EventKind::MovedTo), [1]);
    assert!(on(EventKind::Create).is_empty());
}

#[test]
fn non_utf8_names_match_and_reach_argv_intact() {
    let s = set(
        "rules:\n  - {name: r, match: \"**/*.tif\", regex: '^(?P<shot>[^/]+)/', run: [cp, \"{path}\", \"{shot}\"]}\n",
    );
    let rel = PathBuf::from(OsString::from_vec(b"sh\xff10/a\xfe b.tif".to_vec()));
    assert_eq!(s.route(&rel, EventKind::CloseWrite), [0]);
    let planned = plan(
        &s,
        0,
        Path::new("/show/shots"),
        &rel,
        "t",
        None,
        &crate::route::cut::CutIndex::default(),
    )
    .expect("plans");
    assert_eq!(
        planned.job.steps[0][1].clone().into_vec(),
        b"/show/shots/sh\xff10/a\xfe b.tif".to_vec()
    );
    assert_eq!(
        planned.job.steps[0][2].clone().into_vec(),
        b"sh\xff10".to_vec()
    );
}

#[test]
fn names_with_newlines_match_globs_and_regexes() {
    let s = set(
        "rules:\n  - {name: any, match: \"**\", run: [a]}\n  - {name: dat, match: \"**/*.dat\", regex: '^sh.*/', run: [a]}\n",
    );
    assert_eq!(names(&s, "sh\n010/new\nline.dat"), ["any", "dat"]);
}

#[test]
fn frame_numbers_keep_their_padding() {
    let cases: [(&str, Option<&str>); 7] = [
        ("sh010_comp_v001.1001", Some("1001")),
        ("plate.0001", Some("0001")),
        ("plate_0042", Some("0042")),
        ("neg.-005", Some("-005")),
        ("sh010", None),
        ("movie", None),
        ("v2.final", None),
    ];
    for (stem, want) in cases {
        let got = frame_number(OsStr::new(stem)).map(|b| String::from_utf8_lossy(b).into_owned());
        assert_eq!(got.as_deref(), want, "{stem}");
    }
}

#[test]
fn bindings_hold_path_parts_vars_and_captures() {
    let s = set(
        "vars: {show: demo, shot: default}\nrules:\n  - {name: r, regex: '^(?P<shot>sh\\d+)/renders/(?P<layer>\\w+)/', run: [a]}\n",
    );
    let p = plan(
        &s,
        0,
        Path::new("/show/shots"),
        Path::new("sh010/renders/beauty/b.1001.exr"),
        "t",
        None,
        &crate::route::cut::CutIndex::default(),
    )
    .expect("plans");
    let get = |k| String::from_utf8_lossy(p.vars.get(k).expect(k)).into_owned();
    assert_eq!(get("path"), "/show/shots/sh010/renders/beauty/b.1001.exr");
    assert_eq!(get("rel"), "sh010/renders/beauty/b.1001.exr");
    assert_eq!(get("root"), "/show/shots");
    assert_eq!(get("dir"), "/show/shots/sh010/renders/beauty");
    assert_eq!(
        (get("name"), get("stem"), get("ext"), get("frame")),
        (
            "b.1001.exr".into(),
            "b.1001".into(),
            "exr".into(),
            "1001".into()
        )
    );
    assert_eq!(
        (get("shot"), get("layer"), get("show")),
        ("sh010".into(), "beauty".into(), "demo".into()),
        "captures override vars"
    );
}

#[test]
fn outputs_escaping_the_roots_are_refused() {
    let s = set(
        "rules:\n  - {name: r, regex: '^(?P<shot>.+)/x\\.tif$', output: \"{root}/{shot}/x.mov\", run: [a, \"{out}\"]}\n",
    );
    let ok = plan(
        &s,
        0,
        Path::new("/show/shots"),
        Path::new("sh010/x.tif"),
        "t",
        None,
        &crate::route::cut::CutIndex::default(),
    )
    .expect("inside");
    let out = ok.job.output.expect("output");
    assert_eq!(out.final_path, PathBuf::from("/show/shots/sh010/x.mov"));
    assert_eq!(out.temp_path, PathBuf::from("/show/shots/sh010/.x.t.mov"));
    let escaped = plan(
        &s,
        0,
        Path::new("/show/shots"),
        Path::new("../../etc/x.tif"),
        "t",
        None,
        &crate::route::cut::CutIndex::default(),
    );
    assert!(
        matches!(escaped, Err(PlanError::OutsideRoots { .. })),
        "{escaped:?}"
    );
}

#[test]
fn outputs_may_go_to_listed_folders() {
    let s =
        set("rules:\n  - {name: r, match: \"**\", output: \"/san/{name}\", run: [a, \"{out}\"]}\n");
    assert!(
        plan(
            &s,
            0,
            Path::new("/show/shots"),
            Path::new("a.mov"),
            "t",
            None,
            &crate::route::cut::CutIndex::default()
        )
        .is_ok()
    );
}

#[test]
fn missing_frame_is_a_plan_error_not_a_panic() {
    let s = set("rules:\n  - {name: r, match: \"**\", run: [a, \"{frame}\"]}\n");
    let err = plan(
        &s,
        0,
        Path::new("/show/shots"),
        Path::new("movie.mov"),
        "t",
        None,
        &crate::route::cut::CutIndex::default(),
    )
    .expect_err("no frame");
    assert_eq!(
        err.to_string(),
        "variable `{frame}` has no value for this file"
    );
}

#[test]
fn locate_picks_the_deepest_root() {
    let text = "version: 1\nwatch: [/a, /a/b]\nrules: []\n";
    let s =
        RuleSet::compile(crate::rules::parse(Path::new("r"), text, Path::new("/")).expect("valid"))
            .expect("compiles");
    let (root, rel) = s.locate(Path::new("/a/b/c.tif")).expect("inside");
    assert_eq!((root, rel), (Path::new("/a/b"), Path::new("c.tif")));
    assert!(s.locate(Path::new("/elsewhere/c.tif")).is_none());
}
