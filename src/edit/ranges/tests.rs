use super::*;
use crate::edit::{Change, cmx3600, diff};
use crate::media::timecode::Rate;

fn cut(edl: &str) -> Cut {
    cmx3600::parse(edl, Rate::parse("24").unwrap()).unwrap()
}

fn naming() -> ShotNaming {
    ShotNaming::new(r"(?P<shot>sh[0-9]{3})").unwrap()
}

/// (head_in, cut_in, cut_out, tail_out) of `shot`.
fn frames(ranges: &ShotRanges, shot: &str) -> (i64, i64, i64, i64) {
    let r = &ranges.shots[shot];
    (r.head_in, r.cut_in, r.cut_out, r.tail_out)
}

#[test]
fn a_new_shot_starts_at_head_in_plus_handles() {
    // 48 frames from source 01:00:00:00: cut_in 1001 + 8, cut_out 1009 + 48 − 1.
    let ranges = ShotRanges::compute(
        &cut(
            "001  R V C 01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n* FROM CLIP NAME: sh010\n",
        ),
        &naming(),
        &[],
    );
    assert_eq!(frames(&ranges, "sh010"), (1001, 1009, 1056, 1064));
    assert_eq!(ranges.shots["sh010"].cut_duration(), 48);
    let wide = naming().with_handles(12, 4).with_head_in(101);
    let ranges = ShotRanges::compute(
        &cut(
            "001  R V C 01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n* FROM CLIP NAME: sh010\n",
        ),
        &wide,
        &[],
    );
    assert_eq!(frames(&ranges, "sh010"), (101, 113, 160, 164));
}

#[test]
fn a_retimed_shot_covers_the_source_frames_the_edit_plays() {
    // 24 record frames at double speed show 48 plate frames: 1009 to 1009 + 48 − 1.
    let edl = "001  R V C 01:00:00:00 01:00:02:00 01:00:00:00 01:00:01:00\nM2 R 048.0 01:00:00:00\n* FROM CLIP NAME: sh010\n";
    let ranges = ShotRanges::compute(&cut(edl), &naming(), &[]);
    assert_eq!(frames(&ranges, "sh010"), (1001, 1009, 1056, 1064));
    assert_eq!(ranges.classify("sh010", 1056), FrameClass::InCut);
    assert_eq!(ranges.classify("sh010", 1057), FrameClass::Handle);
    // Half speed: 24 record frames show 12.
    let edl = "001  R V C 01:00:00:00 01:00:00:12 01:00:00:00 01:00:01:00\nM2 R 012.0 01:00:00:00\n* FROM CLIP NAME: sh010\n";
    let ranges = ShotRanges::compute(&cut(edl), &naming(), &[]);
    assert_eq!(frames(&ranges, "sh010"), (1001, 1009, 1020, 1028));
}

#[test]
fn a_frozen_shot_covers_the_one_frame_it_shows() {
    let edl = "001  R V C 01:00:00:00 01:00:00:01 01:00:00:00 01:00:01:00\n* FROM CLIP NAME: sh010\n* FREEZE FRAME\n";
    let ranges = ShotRanges::compute(&cut(edl), &naming(), &[]);
    assert_eq!(frames(&ranges, "sh010"), (1001, 1009, 1009, 1017));
    assert_eq!(ranges.shots["sh010"].cut_duration(), 1);
    assert_eq!(ranges.classify("sh010", 1010), FrameClass::Handle);
}

#[test]
fn a_shot_used_twice_covers_the_union_and_the_frames_between_are_handles() {
    let edl = "\
001  R V C 01:00:00:00 01:00:01:00 01:00:00:00 01:00:01:00
* FROM CLIP NAME: sh010
002  R V C 02:00:00:00 02:00:01:00 01:00:01:00 01:00:02:00
* FROM CLIP NAME: sh020
003  R V C 01:00:02:00 01:00:03:00 01:00:02:00 01:00:03:00
* FROM CLIP NAME: sh010
004  R V C 03:00:00:00 03:00:01:00 01:00:03:00 01:00:04:00
* FROM CLIP NAME: temp
";
    let cut = cut(edl);
    let ranges = ShotRanges::compute(&cut, &naming(), &[]);
    assert_eq!(frames(&ranges, "sh010"), (1001, 1009, 1080, 1088));
    let items: Vec<(usize, i64, i64)> = ranges.shots["sh010"]
        .items
        .iter()
        .map(|r| (r.item, r.first, r.last))
        .collect();
    assert_eq!(items, vec![(0, 1009, 1032), (2, 1057, 1080)]);
    assert_eq!(ranges.unmatched, vec![3]);
    assert_eq!(cut.items[3].name.as_deref(), Some("temp"));
    let cases = [
        (1000, FrameClass::Outside),
        (1001, FrameClass::Handle),
        (1008, FrameClass::Handle),
        (1009, FrameClass::InCut),
        (1032, FrameClass::InCut),
        (1033, FrameClass::Handle),
        (1056, FrameClass::Handle),
        (1057, FrameClass::InCut),
        (1080, FrameClass::InCut),
        (1088, FrameClass::Handle),
        (1089, FrameClass::Outside),
    ];
    for (frame, want) in cases {
        assert_eq!(ranges.classify("sh010", frame), want, "frame {frame}");
    }
    assert_eq!(ranges.classify("sh999", 1009), FrameClass::Outside);
}

#[test]
fn frame_numbers_stay_put_across_revisions() {
    let v1 = ShotRanges::compute(
        &cut(
            "001  R V C 01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n* FROM CLIP NAME: sh010\n",
        ),
        &naming(),
        &[],
    );
    // The new cut starts 6 source frames later and ends 12 earlier.
    let v2 = ShotRanges::compute(
        &cut(
            "001  R V C 01:00:00:06 01:00:01:12 01:00:00:00 01:00:01:06\n* FROM CLIP NAME: sh010\n",
        ),
        &naming(),
        std::slice::from_ref(&v1),
    );
    assert_eq!(frames(&v2, "sh010"), (1007, 1015, 1044, 1052));
    assert_eq!(
        diff(std::slice::from_ref(&v1), &v2)["sh010"],
        Change::CutChange
    );
}

#[test]
fn extending_past_either_handle_is_extended() {
    let history = [ShotRanges::compute(
        &cut(
            "001  R V C 01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n* FROM CLIP NAME: sh010\n",
        ),
        &naming(),
        &[],
    )];
    let change = |edl: &str| {
        let new = ShotRanges::compute(&cut(edl), &naming(), &history);
        diff(&history, &new)["sh010"]
    };
    let cases = [
        // Eight frames earlier: all in the head handle.
        (
            "00:59:59:16 01:00:02:00 01:00:00:00 01:00:02:08",
            Change::CutChange,
        ),
        // Nine frames earlier: frame 1000 does not exist.
        (
            "00:59:59:15 01:00:02:00 01:00:00:00 01:00:02:09",
            Change::Extended,
        ),
        // Eight frames later: the whole tail handle.
        (
            "01:00:00:00 01:00:02:08 01:00:00:00 01:00:02:08",
            Change::CutChange,
        ),
        (
            "01:00:00:00 01:00:02:09 01:00:00:00 01:00:02:09",
            Change::Extended,
        ),
        (
            "01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00",
            Change::NoChange,
        ),
    ];
    for (times, want) in cases {
        let edl = format!("001  R V C {times}\n* FROM CLIP NAME: sh010\n");
        assert_eq!(change(&edl), want, "{times}");
    }
}

#[test]
fn omitted_reinstated_and_new_need_the_history() {
    let edl = |shots: &[&str]| {
        shots
            .iter()
            .enumerate()
            .map(|(n, s)| {
                format!(
                    "{:03}  R V C 0 24 {} {}\n* FROM CLIP NAME: {s}\n",
                    n + 1,
                    n * 24,
                    n * 24 + 24
                )
            })
            .collect::<String>()
    };
    let mut history = Vec::new();
    for shots in [&["sh010", "sh020"][..], &["sh010"][..]] {
        let ranges = ShotRanges::compute(&cut(&edl(shots)), &naming(), &history);
        history.push(ranges);
    }
    let v3 = ShotRanges::compute(&cut(&edl(&["sh020", "sh030"])), &naming(), &history);
    let changes: Vec<(String, Change)> = diff(&history, &v3).into_iter().collect();
    assert_eq!(
        changes,
        vec![
            ("sh010".to_string(), Change::Omitted),
            ("sh020".to_string(), Change::Reinstated),
            ("sh030".to_string(), Change::New),
        ]
    );
    // With no history every shot is new.
    assert!(diff(&[], &v3).values().all(|c| *c == Change::New));
}
