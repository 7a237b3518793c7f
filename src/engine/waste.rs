//! A cut's waste: per shot of its latest revision, the frames on disk outside
//! `head_in..tail_out` (files and bytes: work nobody will see) and the frame numbers missing
//! inside `cut_in..cut_out` (work still owed), and both summed for the show. `shotrouter cut
//! waste` prints it; a watcher keeps it fresh for the dashboard ([`super::waste_watch`]).
//!
//! A frame is a file under a watch root that a rule with a `shot` capture matches and whose
//! name has a frame number (the first such rule names its shot); a frame number counts as
//! present when any file of the shot carries it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::media::sequence::format_ranges;
use crate::route::cut::{frame_of, shot_of};
use crate::route::matcher::RuleSet;
use crate::rules::EventKind;
use crate::source::WatchConfig;
use crate::store::cuts::CutRevision;

/// One shot's waste.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShotWaste {
    /// The shot.
    pub shot: String,
    /// First frame kept, handles included.
    pub head_in: i64,
    /// First frame the cut shows.
    pub cut_in: i64,
    /// Last frame the cut shows.
    pub cut_out: i64,
    /// Last frame kept, handles included.
    pub tail_out: i64,
    /// Files of the shot with a frame number outside `head_in..tail_out`.
    pub outside_frames: u64,
    /// Their bytes.
    pub outside_bytes: u64,
    /// How many frame numbers in `cut_in..cut_out` no file carries.
    pub missing_frames: u64,
    /// Those frame numbers as ranges (`1009-1012,1020`).
    pub missing: String,
}

/// A cut's waste, per shot and for the show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutWaste {
    /// The cut.
    pub cut: String,
    /// The revision the ranges are from.
    pub revision: i64,
    /// Per shot the revision shows, by name.
    pub shots: Vec<ShotWaste>,
    /// Sum of the shots' `outside_frames`.
    pub outside_frames: u64,
    /// Sum of the shots' `outside_bytes`.
    pub outside_bytes: u64,
    /// Sum of the shots' `missing_frames`.
    pub missing_frames: u64,
}

/// Per shot: the frame numbers present, and the files outside with their bytes.
#[derive(Default, Clone)]
struct Seen {
    present: BTreeSet<i64>,
    outside: u64,
    outside_bytes: u64,
}

/// The waste of `revision` against the files under `set`'s watch roots now.
pub fn waste(set: &RuleSet, revision: &CutRevision) -> CutWaste {
    let mut all = waste_of_all(set, std::slice::from_ref(revision));
    all.pop()
        .unwrap_or_else(|| finish(revision, &BTreeMap::new()))
}

/// The waste of each of `revisions` (one per cut), from one walk of the watch roots.
pub fn waste_of_all(set: &RuleSet, revisions: &[CutRevision]) -> Vec<CutWaste> {
    // Per shot, the revisions showing it and the frames each keeps.
    let mut wanted: HashMap<&str, Vec<(usize, i64, i64)>> = HashMap::new();
    for (index, revision) in revisions.iter().enumerate() {
        for shot in revision.present() {
            wanted.entry(shot.shot.as_str()).or_default().push((
                index,
                shot.head_in,
                shot.tail_out,
            ));
        }
    }
    let mut seen: Vec<BTreeMap<String, Seen>> = vec![BTreeMap::new(); revisions.len()];
    if !wanted.is_empty() {
        let config = WatchConfig {
            roots: set.file.watch.clone(),
            ignore: set.ignore_set().clone(),
            events: set.events(),
        };
        for file in crate::source::scan(&config) {
            let Some(frame) = frame_of(&file.rel) else {
                continue;
            };
            let shot = set
                .route(&file.rel, EventKind::CloseWrite)
                .into_iter()
                .find_map(|i| shot_of(&set.file.rules[i], &file.rel));
            let Some(cuts) = shot.and_then(|shot| Some((shot, wanted.get(shot)?))) else {
                continue;
            };
            let (shot, cuts) = cuts;
            // Stat a file only when some cut leaves it out, and once.
            let mut bytes = None;
            for &(index, head_in, tail_out) in cuts {
                let entry = seen[index].entry(shot.to_string()).or_default();
                entry.present.insert(frame);
                if frame < head_in || frame > tail_out {
                    let size = *bytes.get_or_insert_with(|| {
                        let path = set.file.watch[file.root].path.join(&file.rel);
                        std::fs::metadata(&path).map_or(0, |m| m.len())
                    });
                    entry.outside += 1;
                    entry.outside_bytes += size;
                }
            }
        }
    }
    revisions
        .iter()
        .zip(&seen)
        .map(|(revision, seen)| finish(revision, seen))
        .collect()
}

/// `revision`'s waste from the frames seen of its shots.
fn finish(revision: &CutRevision, seen: &BTreeMap<String, Seen>) -> CutWaste {
    let shots: Vec<ShotWaste> = revision
        .present()
        .map(|s| {
            let none = Seen::default();
            let seen = seen.get(&s.shot).unwrap_or(&none);
            let missing = missing_ranges(&seen.present, s.cut_in, s.cut_out);
            ShotWaste {
                shot: s.shot.clone(),
                head_in: s.head_in,
                cut_in: s.cut_in,
                cut_out: s.cut_out,
                tail_out: s.tail_out,
                outside_frames: seen.outside,
                outside_bytes: seen.outside_bytes,
                missing_frames: missing.iter().map(|(a, b)| (b - a + 1) as u64).sum(),
                missing: format_ranges(&missing),
            }
        })
        .collect();
    CutWaste {
        cut: revision.name.clone(),
        revision: revision.revision,
        outside_frames: shots.iter().map(|s| s.outside_frames).sum(),
        outside_bytes: shots.iter().map(|s| s.outside_bytes).sum(),
        missing_frames: shots.iter().map(|s| s.missing_frames).sum(),
        shots,
    }
}

/// The numbers in `first..=last` not in `present`, as ranges.
fn missing_ranges(present: &BTreeSet<i64>, first: i64, last: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    let mut next = first;
    for &n in present
        .range(first..=last)
        .chain(std::iter::once(&(last + 1)))
    {
        if n > next {
            out.push((next, n - 1));
        }
        next = n + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_frames_are_the_gaps_in_the_cut() {
        let present: BTreeSet<i64> = [1000, 1009, 1010, 1013, 1020, 1070].into();
        let cases = [
            ((1009, 1013), vec![(1011, 1012)]),
            ((1009, 1022), vec![(1011, 1012), (1014, 1019), (1021, 1022)]),
            ((1001, 1008), vec![(1001, 1008)]),
            ((1009, 1010), vec![]),
        ];
        for ((first, last), expected) in cases {
            assert_eq!(
                missing_ranges(&present, first, last),
                expected,
                "{first}-{last}"
            );
        }
    }
}
