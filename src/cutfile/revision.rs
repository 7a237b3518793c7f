//! The next revision of a cut from the revisions before it: shot ranges and changes computed
//! by `crate::edit` (frame numbers where earlier revisions left them), omitted shots with the
//! frames they last had, and the items that name no shot.

use crate::edit::{Change, Cut, ShotNaming, ShotRange, ShotRanges, diff};
use crate::store::cuts::{CutRevision, CutShot, CutShotItem, ShotChange, UnmatchedItem};

/// The shot ranges a stored revision holds, as `edit` computes the next one from.
fn stored_ranges(revision: &CutRevision) -> ShotRanges {
    ShotRanges {
        shots: revision
            .present()
            .map(|s| {
                let range = ShotRange {
                    head_in: s.head_in,
                    cut_in: s.cut_in,
                    cut_out: s.cut_out,
                    tail_out: s.tail_out,
                    source_in: s.source_in,
                    items: Vec::new(),
                };
                (s.shot.clone(), range)
            })
            .collect(),
        unmatched: Vec::new(),
    }
}

fn stored_change(change: Change) -> ShotChange {
    match change {
        Change::New => ShotChange::New,
        Change::Omitted => ShotChange::Omitted,
        Change::Reinstated => ShotChange::Reinstated,
        Change::CutChange => ShotChange::CutChange,
        Change::Extended => ShotChange::Extended,
        Change::NoChange => ShotChange::NoChange,
    }
}

/// The next revision of cut `name` after `earlier` (oldest first): shots, changes and items;
/// the caller fills in where it came from.
pub fn revision_of(
    name: &str,
    cut: &Cut,
    naming: &ShotNaming,
    earlier: &[CutRevision],
) -> CutRevision {
    let history: Vec<ShotRanges> = earlier.iter().map(stored_ranges).collect();
    let ranges = ShotRanges::compute(cut, naming, &history);
    let changes = diff(&history, &ranges);
    let item = |index: usize, first: i64, last: i64| {
        let item = &cut.items[index];
        let (record_in, record_out) = cut.record_timecodes(item);
        CutShotItem {
            event: item.event,
            clip: item.name.clone(),
            reel: item.reel.clone(),
            record_in,
            record_out,
            first,
            last,
            speed: item.speed,
        }
    };
    let shots = changes
        .into_iter()
        .filter_map(|(shot, change)| match ranges.shots.get(&shot) {
            Some(r) => Some(CutShot {
                change: stored_change(change),
                head_in: r.head_in,
                cut_in: r.cut_in,
                cut_out: r.cut_out,
                tail_out: r.tail_out,
                source_in: r.source_in,
                items: r
                    .items
                    .iter()
                    .map(|i| item(i.item, i.first, i.last))
                    .collect(),
                shot,
            }),
            // Omitted: its frames as the previous revision left them.
            None => earlier
                .last()?
                .present()
                .find(|s| s.shot == shot)
                .map(|s| CutShot {
                    change: ShotChange::Omitted,
                    items: Vec::new(),
                    ..s.clone()
                }),
        })
        .collect();
    let unmatched = ranges
        .unmatched
        .iter()
        .map(|&index| {
            let item = &cut.items[index];
            let (record_in, record_out) = cut.record_timecodes(item);
            UnmatchedItem {
                event: item.event,
                clip: item.name.clone(),
                reel: item.reel.clone(),
                record_in,
                record_out,
                origin: item.origin.to_string(),
            }
        })
        .collect();
    CutRevision {
        name: name.to_string(),
        revision: earlier.last().map_or(1, |r| r.revision + 1),
        imported_at: 0,
        source: String::new(),
        hash: String::new(),
        fps: cut.rate.to_string(),
        shots,
        unmatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::cmx3600;
    use crate::media::timecode::Rate;
    use crate::store::cuts::CutRanges;

    fn cut(text: &str) -> Cut {
        cmx3600::parse(text, Rate::parse("24").unwrap()).unwrap()
    }

    const REV1: &str = "TITLE: t\n001  SH010 V C 01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n* FROM CLIP NAME: sh010_anim\n002  SH020 V C 02:00:00:00 02:00:01:00 01:00:02:00 01:00:03:00\n* FROM CLIP NAME: sh020_anim\n003  AX V C 00:00:00:00 00:00:01:00 01:00:03:00 01:00:04:00\n* FROM CLIP NAME: temp_title\n";
    const REV2: &str = "TITLE: t\n001  SH010 V C 01:00:00:04 01:00:02:00 01:00:00:00 01:00:01:20\n* FROM CLIP NAME: sh010_anim\n";

    #[test]
    fn a_revision_keeps_frame_numbers_lists_omitted_shots_and_unmatched_items() {
        let naming = ShotNaming::new(r"^(?P<shot>[A-Za-z]+[0-9]+)(?:_|$)").unwrap();
        let first = revision_of("reel1", &cut(REV1), &naming, &[]);
        assert_eq!(first.revision, 1);
        let shots: Vec<_> = first
            .shots
            .iter()
            .map(|s| (s.shot.as_str(), s.change, s.cut_in, s.cut_out))
            .collect();
        assert_eq!(
            shots,
            [
                ("sh010", ShotChange::New, 1009, 1056),
                ("sh020", ShotChange::New, 1009, 1032)
            ]
        );
        assert_eq!(first.unmatched[0].clip.as_deref(), Some("temp_title"));
        assert_eq!(first.unmatched[0].origin, "line 6");
        assert_eq!(first.shots[0].items[0].record_in, "01:00:00:00");

        let second = revision_of("reel1", &cut(REV2), &naming, &[first]);
        let shots: Vec<_> = second
            .shots
            .iter()
            .map(|s| {
                (
                    s.shot.as_str(),
                    s.change,
                    s.cut_in,
                    s.cut_out,
                    s.items.len(),
                )
            })
            .collect();
        assert_eq!(
            shots,
            [
                ("sh010", ShotChange::CutChange, 1013, 1056, 1),
                ("sh020", ShotChange::Omitted, 1009, 1032, 0)
            ]
        );
        assert_eq!(second.revision, 2);
        assert_eq!(CutRanges::of(&second).shots[0].frames, "1005-1064");
    }
}
