//! The frames each shot covers in a cut, in the shot's own frame numbers: `head_in` (first frame
//! with handles), `cut_in`, `cut_out` (the first and last frame the cut shows), `tail_out` (last
//! frame with handles), and which items of the cut show it.
//!
//! A new shot starts at `head_in` + head handles. In a later revision frame numbers stay put:
//! the shot's `cut_in` moves by as much as its first source frame moved. Items of one shot map
//! into shot frames by source frame, so a shot used twice covers the union of its items.
//!
//! An item covers the source frames it plays, not its record length: a 24-frame item at
//! double speed shows 48 plate frames, a freeze shows one (see docs/cuts.md).

use std::collections::BTreeMap;

use crate::edit::{Cut, ShotNaming};

/// The shot frames one item of the cut shows, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemRange {
    /// Index of the item in [`Cut::items`].
    pub item: usize,
    /// First shot frame shown.
    pub first: i64,
    /// Last shot frame shown.
    pub last: i64,
}

/// A shot's frame range in one cut revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShotRange {
    /// First frame kept, handles included: `cut_in` − head handles.
    pub head_in: i64,
    /// First frame the cut shows.
    pub cut_in: i64,
    /// Last frame the cut shows: `cut_in` + duration − 1 for a shot used once, the duration
    /// being the source frames played ([`CutItem::source_frames`]).
    ///
    /// [`CutItem::source_frames`]: crate::edit::CutItem::source_frames
    pub cut_out: i64,
    /// Last frame kept, handles included: `cut_out` + tail handles.
    pub tail_out: i64,
    /// The source frame that is `cut_in`: the earliest source frame of the shot's items.
    pub source_in: i64,
    /// The items showing the shot, in record order.
    pub items: Vec<ItemRange>,
}

/// Where a shot frame falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    /// An item of the cut shows it.
    InCut,
    /// Kept for the editor between `head_in` and `tail_out`, but not shown: handles, and the
    /// frames between two uses of the shot.
    Handle,
    /// Outside the shot's range, or not a shot of the cut.
    Outside,
}

impl ShotRange {
    /// Where `frame` falls in this shot.
    pub fn classify(&self, frame: i64) -> FrameClass {
        if self
            .items
            .iter()
            .any(|r| (r.first..=r.last).contains(&frame))
        {
            FrameClass::InCut
        } else if (self.head_in..=self.tail_out).contains(&frame) {
            FrameClass::Handle
        } else {
            FrameClass::Outside
        }
    }

    /// Frames from `cut_in` to `cut_out`.
    pub fn cut_duration(&self) -> i64 {
        self.cut_out - self.cut_in + 1
    }
}

/// Every shot of one cut revision, and the items no shot was found for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShotRanges {
    /// Shots by name.
    pub shots: BTreeMap<String, ShotRange>,
    /// Indexes into [`Cut::items`] of the video items whose names match no shot.
    pub unmatched: Vec<usize>,
}

impl ShotRanges {
    /// The shot ranges of `cut`, numbering frames of shots already in `history` (oldest
    /// revision first) where their latest revision left them.
    pub fn compute(cut: &Cut, naming: &ShotNaming, history: &[ShotRanges]) -> ShotRanges {
        let mut by_shot: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut unmatched = Vec::new();
        for (index, item) in cut.video_items() {
            if item.duration() == 0 {
                continue;
            }
            match naming.shot_of(item) {
                Some(shot) => by_shot.entry(shot).or_default().push(index),
                None => unmatched.push(index),
            }
        }
        let shots = by_shot
            .into_iter()
            .map(|(shot, indexes)| {
                let source_in = indexes
                    .iter()
                    .map(|&i| cut.items[i].source_in)
                    .min()
                    .expect("a shot has at least one item");
                let previous = history.iter().rev().find_map(|r| r.shots.get(&shot));
                let cut_in = match previous {
                    Some(p) => p.cut_in + (source_in - p.source_in),
                    None => naming.head_in + naming.head_handles,
                };
                let items: Vec<ItemRange> = indexes
                    .iter()
                    .map(|&i| {
                        let item = &cut.items[i];
                        let first = cut_in + (item.source_in - source_in);
                        ItemRange {
                            item: i,
                            first,
                            last: first + item.source_frames() - 1,
                        }
                    })
                    .collect();
                let cut_out = items.iter().map(|r| r.last).max().unwrap_or(cut_in);
                let range = ShotRange {
                    head_in: cut_in - naming.head_handles,
                    cut_in,
                    cut_out,
                    tail_out: cut_out + naming.tail_handles,
                    source_in,
                    items,
                };
                (shot, range)
            })
            .collect();
        ShotRanges { shots, unmatched }
    }

    /// Where `frame` of `shot` falls; a shot not in this cut is all [`FrameClass::Outside`].
    pub fn classify(&self, shot: &str, frame: i64) -> FrameClass {
        self.shots
            .get(shot)
            .map_or(FrameClass::Outside, |r| r.classify(frame))
    }
}

#[cfg(test)]
mod tests;
