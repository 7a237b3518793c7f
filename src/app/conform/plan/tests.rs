use super::*;
use crate::media::timecode::Rate;

fn item(shot: &str, record_in: i64, frames: i64, first: i64, last: i64, speed: f64) -> Use {
    Use {
        shot: shot.into(),
        event: 1,
        clip: None,
        record_in,
        record_out: record_in + frames,
        first,
        last,
        speed,
    }
}

fn source(first: i64, frames: i64) -> Source {
    Source {
        path: "/p/sh010_v001.mov".into(),
        first,
        frames,
        width: 64,
        height: 36,
    }
}

#[test]
fn normal_speed_shows_each_frame_once() {
    let frames = shot_frames(&item("sh010", 0, 4, 1009, 1012, 1.0));
    assert_eq!(frames, [1009, 1010, 1011, 1012]);
}

#[test]
fn double_speed_skips_and_half_speed_repeats() {
    let fast = shot_frames(&item("sh010", 0, 4, 1009, 1016, 2.0));
    assert_eq!(fast, [1009, 1011, 1013, 1015]);
    let slow = shot_frames(&item("sh010", 0, 4, 1009, 1010, 0.5));
    assert_eq!(slow, [1009, 1009, 1010, 1010]);
}

#[test]
fn a_freeze_holds_its_frame_and_reverse_plays_down() {
    assert_eq!(
        shot_frames(&item("sh010", 0, 3, 1009, 1009, 0.0)),
        [1009; 3]
    );
    assert_eq!(
        shot_frames(&item("sh010", 0, 3, 1009, 1011, -1.0)),
        [1011, 1010, 1009]
    );
}

#[test]
fn runs_compress_forward_backward_and_held_frames() {
    assert_eq!(runs(&[3, 4, 5]), [Run::Forward { from: 3, len: 3 }]);
    assert_eq!(runs(&[5, 4, 3]), [Run::Backward { from: 5, len: 3 }]);
    assert_eq!(
        runs(&[0, 0, 1, 1]),
        [Run::Hold { at: 0, len: 2 }, Run::Hold { at: 1, len: 2 }]
    );
    assert_eq!(
        runs(&[0, 2, 4]),
        [
            Run::Forward { from: 0, len: 1 },
            Run::Forward { from: 2, len: 1 },
            Run::Forward { from: 4, len: 1 }
        ]
    );
    assert_eq!(
        runs(&[1, 2, 3, 3, 3]),
        [
            Run::Forward { from: 1, len: 2 },
            Run::Hold { at: 3, len: 3 }
        ]
    );
}

#[test]
fn frames_are_offset_by_the_products_first_frame() {
    // A review movie of frames 1001-1076 holds shot frame 1009 at index 8.
    let uses = [item("sh010", 100, 3, 1009, 1011, 1.0)];
    let got = segments(&uses, 100, 103, &[source(1001, 76)], |_| 0).unwrap();
    assert_eq!(
        got,
        [Segment::Clip {
            item: uses[0].clone(),
            source: 0,
            indexes: vec![8, 9, 10]
        }]
    );
}

#[test]
fn gaps_and_unnamed_items_become_black_and_the_cut_keeps_its_length() {
    let uses = [
        item("sh010", 10, 2, 1009, 1010, 1.0),
        item("sh020", 15, 2, 1009, 1010, 1.0),
    ];
    let got = segments(&uses, 8, 20, &[source(1001, 20)], |_| 0).unwrap();
    let frames: Vec<i64> = got.iter().map(Segment::frames).collect();
    assert_eq!(frames, [2, 2, 3, 2, 3]);
    assert!(matches!(got[0], Segment::Black { record_in: 8, .. }));
}

#[test]
fn every_shot_whose_product_falls_short_is_named() {
    let uses = [
        item("sh010", 0, 10, 1009, 1018, 1.0),
        item("sh020", 10, 10, 1009, 1018, 1.0),
    ];
    let sources = [source(1001, 12), source(1010, 40)];
    let err = segments(&uses, 0, 20, &sources, |s| usize::from(s == "sh020")).unwrap_err();
    assert_eq!(
        err,
        [
            Uncovered {
                shot: "sh010".into(),
                needed: (1009, 1018),
                holds: (1001, 1012)
            },
            Uncovered {
                shot: "sh020".into(),
                needed: (1009, 1018),
                holds: (1010, 1049)
            }
        ]
    );
}

#[test]
fn the_argv_keeps_paths_whole_and_out_of_the_filter_graph() {
    let hostile = Source {
        path: "/s/it's $(rm -rf) <script> v001.mov".into(),
        ..source(1001, 20)
    };
    let uses = [item("sh010", 0, 4, 1009, 1010, 0.5)];
    let segs = segments(&uses, 0, 4, std::slice::from_ref(&hostile), |_| 0).unwrap();
    let counting = Counting::new(Rate::ntsc(30), true).unwrap();
    let args = ffmpeg_args(
        &segs,
        &[hostile],
        counting,
        "01:00:00;00",
        Codec::Ffv1,
        std::path::Path::new("/o/out $(x).mov"),
    );
    let text: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(text.contains(&"file:/s/it's $(rm -rf) <script> v001.mov".to_string()));
    assert_eq!(text.last().unwrap(), "file:/o/out $(x).mov");
    let graph = &text[text.iter().position(|a| a == "-filter_complex").unwrap() + 1];
    assert!(!graph.contains("script"), "{graph}");
    assert!(graph.contains("split=2"), "{graph}");
    assert!(graph.contains("loop=loop=1:size=1:start=0"), "{graph}");
    assert!(graph.ends_with("concat=n=2:v=1:a=0,settb=expr=1001/30000,setpts=N[out]"));
    let tc = text.iter().position(|a| a == "-timecode").unwrap();
    assert_eq!(text[tc + 1], "01:00:00;00");
    assert!(text.contains(&"30000/1001".to_string()));
    // Index 9 of the product is the last used: read 11 frames at 29.97 (0.3670333... s).
    let t = text.iter().position(|a| a == "-t").unwrap();
    assert_eq!(text[t + 1], "0.367034");
}

fn revision(items: &[(&str, &str, &str, i64, i64)], unmatched: &[(&str, &str)]) -> CutRevision {
    use crate::store::cuts::{CutShot, CutShotItem, ShotChange, UnmatchedItem};
    CutRevision {
        name: "seq".into(),
        revision: 1,
        imported_at: 0,
        source: "seq.edl".into(),
        hash: String::new(),
        fps: "29.97".into(),
        shots: items
            .iter()
            .enumerate()
            .map(|(n, (shot, i, o, first, last))| CutShot {
                shot: (*shot).into(),
                change: ShotChange::New,
                head_in: 1001,
                cut_in: 1009,
                cut_out: 1100,
                tail_out: 1108,
                source_in: 0,
                items: vec![CutShotItem {
                    event: n as u32 + 1,
                    clip: None,
                    reel: None,
                    record_in: (*i).into(),
                    record_out: (*o).into(),
                    first: *first,
                    last: *last,
                    speed: 1.0,
                }],
            })
            .collect(),
        unmatched: unmatched
            .iter()
            .map(|(i, o)| UnmatchedItem {
                event: 9,
                clip: None,
                reel: None,
                record_in: (*i).into(),
                record_out: (*o).into(),
                origin: "line 9".into(),
            })
            .collect(),
    }
}

#[test]
fn drop_frame_record_timecode_lays_out_items_and_a_title_card_extends_the_cut() {
    let df = Counting::new(Rate::ntsc(30), true).unwrap();
    // Minute 1 is not a tenth minute: labels 00:01:00;00 and ;01 do not exist, so
    // 00:01:00;02 follows 00:00:59;29 directly.
    let rev = revision(
        &[
            ("sh020", "00:01:00;02", "00:01:00;04", 1009, 1010),
            ("sh010", "00:00:59;28", "00:01:00;02", 1009, 1010),
        ],
        &[("00:01:00;04", "00:01:00;10")],
    );
    let (uses, start, end) = layout(&rev, df).unwrap();
    assert_eq!(uses[0].shot, "sh010", "record order, not shot order");
    assert_eq!(
        uses[0].record_out - uses[0].record_in,
        2,
        "the dropped labels hold no frames"
    );
    assert_eq!(start, df.frame_of("00:00:59;28").unwrap());
    assert_eq!(
        end - start,
        10,
        "the title card is part of the cut's duration"
    );
    assert_eq!(df.label(start), "00:00:59;28");
}

#[test]
fn items_playing_at_once_are_refused() {
    let df = Counting::new(Rate::ntsc(30), true).unwrap();
    let rev = revision(
        &[
            ("sh010", "01:00:00;00", "01:00:00;10", 1009, 1018),
            ("sh020", "01:00:00;05", "01:00:00;15", 1009, 1018),
        ],
        &[],
    );
    assert_eq!(
        layout(&rev, df),
        Err(LayoutError::Overlap {
            first: 1,
            second: 2
        })
    );
    let none = revision(&[], &[]);
    assert_eq!(layout(&none, df), Err(LayoutError::Empty));
}
