use std::path::Path;

use super::*;
use crate::store::cuts::{CutShot, CutShotItem, ShotChange};

fn item(first: i64, last: i64) -> CutShotItem {
    CutShotItem {
        event: 1,
        clip: None,
        reel: None,
        record_in: "01:00:00:00".into(),
        record_out: "01:00:01:00".into(),
        first,
        last,
        speed: 1.0,
    }
}

fn shot(name: &str, change: ShotChange, items: Vec<CutShotItem>) -> CutShot {
    let cut_in = items.iter().map(|i| i.first).min().unwrap_or(1009);
    let cut_out = items.iter().map(|i| i.last).max().unwrap_or(1056);
    CutShot {
        shot: name.into(),
        change,
        head_in: cut_in - 8,
        cut_in,
        cut_out,
        tail_out: cut_out + 8,
        source_in: 0,
        items,
    }
}

fn revision(name: &str, number: i64, imported_at: i64, shots: Vec<CutShot>) -> CutRevision {
    CutRevision {
        name: name.into(),
        revision: number,
        imported_at,
        source: format!("{name}.edl"),
        hash: "xxh3:0".into(),
        fps: "24".into(),
        shots,
        unmatched: Vec::new(),
    }
}

fn rule(text: &str) -> Rule {
    let file = crate::rules::parse(
        Path::new("rules.yaml"),
        &format!("version: 1\nwatch: [shots]\nrules:\n  - name: r\n{text}    run: [cp]\n"),
        Path::new("/show"),
    )
    .expect("rules load");
    file.rules[0].clone()
}

/// sh010 in `reel1` rev 2: two uses, 1009-1020 and 1031-1056 (handles 1001-1064).
fn index() -> CutIndex {
    CutIndex::of(&[
        revision(
            "reel1",
            2,
            100,
            vec![
                shot(
                    "sh010",
                    ShotChange::CutChange,
                    vec![item(1009, 1020), item(1031, 1056)],
                ),
                shot("sh020", ShotChange::Omitted, vec![]),
            ],
        ),
        revision(
            "promo",
            1,
            50,
            vec![shot("sh010", ShotChange::New, vec![item(1009, 1012)])],
        ),
    ])
}

#[test]
fn frames_classify_by_the_most_recently_imported_cut() {
    let index = index();
    let sh010 = index.get("sh010").expect("sh010");
    assert_eq!((sh010.cut.as_str(), sh010.revision), ("reel1", 2));
    let cases = [
        (1000, FrameClass::Outside),
        (1001, FrameClass::Handle),
        (1008, FrameClass::Handle),
        (1009, FrameClass::InCut),
        (1020, FrameClass::InCut),
        (1025, FrameClass::Handle),
        (1056, FrameClass::InCut),
        (1064, FrameClass::Handle),
        (1065, FrameClass::Outside),
    ];
    for (frame, class) in cases {
        assert_eq!(sh010.classify(frame), class, "frame {frame}");
    }
    assert!(index.get("sh020").is_none(), "omitted shots route as `all`");
}

#[test]
fn verdicts_follow_the_rule_scope() {
    let index = index();
    let in_cut = rule("    regex: \"^(?P<shot>sh[0-9]+)/\"\n    frames: in_cut\n");
    let handles = rule("    regex: \"^(?P<shot>sh[0-9]+)/\"\n    frames: with_handles\n");
    let all = rule("    regex: \"^(?P<shot>sh[0-9]+)/\"\n");
    let v = |r: &Rule, p: &str| verdict(&index, r, Path::new(p));
    assert_eq!(
        v(&in_cut, "sh010/plate.1003.exr"),
        Verdict::Skipped(
            "frame 1003 of `sh010` is a handle (cut 1009-1056, handles 1001-1064, cut `reel1` rev 2)"
                .into()
        )
    );
    assert_eq!(
        v(&handles, "sh010/plate.1003.exr"),
        Verdict::Allowed(FrameClass::Handle)
    );
    assert_eq!(
        v(&handles, "sh010/plate.0990.exr"),
        Verdict::Skipped(
            "frame 990 of `sh010` is outside the cut (cut 1009-1056, handles 1001-1064, cut `reel1` rev 2)"
                .into()
        )
    );
    assert_eq!(
        v(&in_cut, "sh010/plate.1010.exr"),
        Verdict::Allowed(FrameClass::InCut)
    );
    assert_eq!(v(&all, "sh010/plate.0990.exr"), Verdict::Unlimited);
    // No frame number, or no cut for the shot: processed as `all`.
    assert_eq!(v(&in_cut, "sh010/notes.txt"), Verdict::Unlimited);
    assert_eq!(v(&in_cut, "sh999/plate.0990.exr"), Verdict::Unlimited);
}

#[test]
fn cut_variables_are_bound() {
    let index = index();
    let mut vars = Bindings::default();
    index.get("sh010").expect("sh010").bind(&mut vars);
    let get = |k: &str| String::from_utf8(vars.get(k).expect(k).to_vec()).expect("utf-8");
    assert_eq!(
        [
            get("cut.head_in"),
            get("cut.in"),
            get("cut.out"),
            get("cut.tail_out"),
            get("cut.name"),
            get("cut.revision")
        ],
        ["1001", "1009", "1056", "1064", "reel1", "2"]
    );
}
