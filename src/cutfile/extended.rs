//! Which frames a revision needs that the revision before it did not keep: per `extended`
//! shot, the frames before the previous `head_in` and after the previous `tail_out`, the
//! frames nobody rendered yet (what the `extended` notification tells).

use serde::Serialize;

use crate::media::sequence::format_ranges;
use crate::store::cuts::{CutRevision, ShotChange};

/// One shot a revision extends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtendedShot {
    /// The shot.
    pub shot: String,
    /// Its new first frame, handles included.
    pub head_in: i64,
    /// Its new last frame, handles included.
    pub tail_out: i64,
    /// Its first frame in the previous revision.
    pub previous_head_in: i64,
    /// Its last frame in the previous revision.
    pub previous_tail_out: i64,
    /// The frames needed that the previous revision did not keep, as ranges (`1065-1068`).
    pub frames: String,
    /// How many.
    pub count: i64,
}

/// The shots of `revision` whose change is `extended`, against `previous` (the revision
/// before it); empty without a previous revision.
pub fn extended_shots(previous: Option<&CutRevision>, revision: &CutRevision) -> Vec<ExtendedShot> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    revision
        .shots
        .iter()
        .filter(|s| s.change == ShotChange::Extended)
        .filter_map(|s| {
            let before = previous.present().find(|p| p.shot == s.shot)?;
            let mut needed = Vec::new();
            if s.head_in < before.head_in {
                needed.push((s.head_in, before.head_in - 1));
            }
            if s.tail_out > before.tail_out {
                needed.push((before.tail_out + 1, s.tail_out));
            }
            Some(ExtendedShot {
                shot: s.shot.clone(),
                head_in: s.head_in,
                tail_out: s.tail_out,
                previous_head_in: before.head_in,
                previous_tail_out: before.tail_out,
                count: needed.iter().map(|(a, b)| b - a + 1).sum(),
                frames: format_ranges(&needed),
            })
        })
        .collect()
}
