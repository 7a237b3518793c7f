//! Contract cases for cut revisions: numbered in order, read back whole, the latest found by
//! name and a shot's frames by one lookup, and a racing import refused rather than stored
//! under a number another import took.

use super::super::StoreError;
use super::super::cuts::{CutRevision, CutShot, CutShotItem, ShotChange, UnmatchedItem};
use super::Backend;

fn shot(name: &str, change: ShotChange, cut_in: i64, cut_out: i64) -> CutShot {
    let present = change != ShotChange::Omitted;
    CutShot {
        shot: name.into(),
        change,
        head_in: cut_in - 8,
        cut_in,
        cut_out,
        tail_out: cut_out + 8,
        source_in: 86_400,
        items: present
            .then(|| CutShotItem {
                event: 1,
                clip: Some(format!("{name}_comp <script>'$(x)\"")),
                reel: None,
                record_in: "01:00:00:00".into(),
                record_out: "01:00:02:00".into(),
                first: cut_in,
                last: cut_out,
                speed: 0.5,
            })
            .into_iter()
            .collect(),
    }
}

fn revision(name: &str, number: i64, shots: Vec<CutShot>) -> CutRevision {
    CutRevision {
        name: name.into(),
        revision: number,
        imported_at: 1_767_323_045_000 + number,
        source: format!("/edit/{name}_v{number}.edl"),
        hash: format!("xxh3:{number:016x}"),
        fps: "23.976".into(),
        shots,
        unmatched: vec![UnmatchedItem {
            event: 9,
            clip: Some("temp_title".into()),
            reel: Some("AX".into()),
            record_in: "01:00:10:00".into(),
            record_out: "01:00:11:00".into(),
            origin: "line 30".into(),
        }],
    }
}

/// Revisions come back whole, in order, the latest by default; a shot's frames are those of
/// the latest revision of each cut showing it (an omitted shot has none there).
pub(crate) fn cut_revisions_read_back_in_order(b: &dyn Backend) {
    drop(b.queue("a"));
    let mut cuts = b.cuts();
    assert!(cuts.cuts().expect("list").is_empty());
    assert!(cuts.cut_revision("reel1", None).expect("read").is_none());
    let first = revision(
        "reel1",
        1,
        vec![
            shot("sh010", ShotChange::New, 1009, 1056),
            shot("sh020", ShotChange::New, 1009, 1032),
        ],
    );
    let second = revision(
        "reel1",
        2,
        vec![
            shot("sh010", ShotChange::Extended, 1009, 1068),
            shot("sh020", ShotChange::Omitted, 1009, 1032),
        ],
    );
    assert_eq!(cuts.cut_revision_count().expect("count"), 0);
    cuts.add_cut_revision(&first).expect("rev 1");
    assert_eq!(cuts.cut_revision_count().expect("count"), 1);
    cuts.add_cut_revision(&revision(
        "promo",
        1,
        vec![shot("sh010", ShotChange::New, 1009, 1020)],
    ))
    .expect("promo");
    cuts.add_cut_revision(&second).expect("rev 2");

    let other = b.cuts();
    assert_eq!(other.cut_revision_count().expect("count"), 3);
    assert_eq!(
        other.cut_revisions("reel1").expect("history"),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(
        other.cut_revision("reel1", None).expect("latest"),
        Some(second)
    );
    assert_eq!(
        other.cut_revision("reel1", Some(1)).expect("rev 1"),
        Some(first)
    );
    assert_eq!(other.cut_revision("reel1", Some(3)).expect("rev 3"), None);
    let list: Vec<(String, i64, i64)> = other
        .cuts()
        .expect("list")
        .into_iter()
        .map(|c| (c.name, c.revision, c.shots))
        .collect();
    assert_eq!(list, [("promo".into(), 1, 1), ("reel1".into(), 2, 1)]);

    let frames: Vec<(String, i64, i64, i64)> = other
        .shot_frames("sh010")
        .expect("sh010")
        .into_iter()
        .map(|f| (f.cut, f.revision, f.cut_in, f.cut_out))
        .collect();
    assert_eq!(
        frames,
        [
            ("promo".into(), 1, 1009, 1020),
            ("reel1".into(), 2, 1009, 1068)
        ]
    );
    assert!(other.shot_frames("sh020").expect("sh020").is_empty());
}

/// An import computed from a history another import has since added to is refused, and
/// stores nothing: no revision is skipped or written twice.
pub(crate) fn a_racing_cut_import_is_refused(b: &dyn Backend) {
    drop(b.queue("a"));
    let mut one = b.cuts();
    let mut two = b.cuts();
    one.add_cut_revision(&revision(
        "reel1",
        1,
        vec![shot("sh010", ShotChange::New, 1009, 1056)],
    ))
    .expect("rev 1");
    let late = revision("reel1", 1, vec![shot("sh030", ShotChange::New, 1009, 1020)]);
    assert!(matches!(
        two.add_cut_revision(&late),
        Err(StoreError::CutRevision { revision: 1, .. })
    ));
    let skipping = revision("reel1", 3, vec![]);
    assert!(matches!(
        two.add_cut_revision(&skipping),
        Err(StoreError::CutRevision { revision: 3, .. })
    ));
    let history = one.cut_revisions("reel1").expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(one.cut_revision_count().expect("count"), 1);
    assert_eq!(history[0].shots[0].shot, "sh010");
    assert!(one.shot_frames("sh030").expect("sh030").is_empty());
}
