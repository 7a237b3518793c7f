//! What happened to each shot between cut revisions, in ShotGrid's terms. Reinstated needs the
//! history (omitted in the previous revision, present in an earlier one); extended means the
//! new cut shows frames outside the previous revision's handles, which do not exist yet.

use std::collections::BTreeMap;

use crate::edit::ShotRanges;

/// A shot's change from the previous revision to the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// In no earlier revision.
    New,
    /// In the previous revision, not in the new one.
    Omitted,
    /// Not in the previous revision, but in one before it.
    Reinstated,
    /// Its cut in or cut out moved, within the previous revision's handles.
    CutChange,
    /// It shows frames before the previous `head_in` or after the previous `tail_out`.
    Extended,
    /// The same frames as before.
    NoChange,
}

/// Each shot of `new` or of the latest of `previous` (oldest first) with its change. Both
/// must have been computed with the history before them, so frame numbers compare.
pub fn diff(previous: &[ShotRanges], new: &ShotRanges) -> BTreeMap<String, Change> {
    let mut changes = BTreeMap::new();
    let (latest, earlier) = match previous.split_last() {
        Some((latest, earlier)) => (Some(latest), earlier),
        None => (None, &[][..]),
    };
    for (shot, range) in &new.shots {
        let change = match latest.and_then(|l| l.shots.get(shot)) {
            Some(before) if range.cut_in < before.head_in || range.cut_out > before.tail_out => {
                Change::Extended
            }
            Some(before) if (range.cut_in, range.cut_out) != (before.cut_in, before.cut_out) => {
                Change::CutChange
            }
            Some(_) => Change::NoChange,
            None if earlier.iter().any(|r| r.shots.contains_key(shot)) => Change::Reinstated,
            None => Change::New,
        };
        changes.insert(shot.clone(), change);
    }
    for shot in latest.iter().flat_map(|l| l.shots.keys()) {
        if !new.shots.contains_key(shot) {
            changes.insert(shot.clone(), Change::Omitted);
        }
    }
    changes
}
