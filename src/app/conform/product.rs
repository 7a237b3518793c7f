//! Which shot frame a picked product starts at. A review movie of frames `head_in..tail_out`
//! holds frame N at index N − first, and the only thing a product file says about its frames
//! is its start timecode, so the rule is (docs/cuts.md, Conform):
//!
//! - the rule that made it has `timecode:` with `at_frame` (frame `at_frame` carries `start`):
//!   first = `at_frame` + (its timecode − `start`), the inverse of what the rule stamped;
//! - else its start timecode read as a frame count from `00:00:00:00` at its own rate (frame
//!   1001 at 24 fps is `00:00:41:17`, the cookbook's convention);
//! - a product without timecode starts at the shot's `head_in` (what `cut ranges` asks a
//!   render to cover).
//!
//! Whichever applies, the frames the cut needs must lie inside the product (checked by the
//! plan), so a wrong guess is refused, never conformed.

use std::path::Path;

use crate::media::mov;
use crate::media::probe::{Probed, probe};
use crate::media::timecode::{Counting, Rate, TimecodeSpec};

/// What conform needs of a product (rate, frames, size, timecode): from its MOV/MP4 header
/// in-process when `media::mov` is sure of it, since an ffprobe costs ~0.09 s of start-up per
/// product; else from ffprobe, which stays the reference for everything else.
///
/// # Errors
/// ffprobe's, when it is asked and fails.
pub fn probe_product_file(path: &Path) -> Result<Probed, String> {
    let movie = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("mov") || e.eq_ignore_ascii_case("mp4"));
    let complete = |p: &Probed| {
        p.fps.is_some()
            && p.frames.is_some()
            && p.width.is_some()
            && p.height.is_some()
            && p.timecode.is_some()
    };
    match movie.then(|| mov::read(path)).flatten() {
        Some(read) if complete(&read) => Ok(read),
        _ => probe(path, "the product"),
    }
}

/// How a product's first frame was found, for the report and the `.otio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstFrom {
    /// The rule's `timecode:` mapping, inverted.
    RuleTimecode,
    /// The timecode as a frame count.
    Timecode,
    /// No timecode: the shot's `head_in`.
    HeadIn,
}

impl FirstFrom {
    /// The words the report prints.
    pub fn as_str(self) -> &'static str {
        match self {
            FirstFrom::RuleTimecode => "rule timecode",
            FirstFrom::Timecode => "timecode",
            FirstFrom::HeadIn => "head_in",
        }
    }
}

/// A product's first shot frame and its media start (its timecode in frames, else the first
/// frame), from its start timecode `timecode` at `rate`.
///
/// # Errors
/// A timecode that does not read at the product's rate.
pub fn first_frame(
    timecode: Option<&str>,
    rate: Rate,
    spec: Option<&TimecodeSpec>,
    head_in: i64,
) -> Result<(i64, i64, FirstFrom), String> {
    let Some(label) = timecode else {
        return Ok((head_in, head_in, FirstFrom::HeadIn));
    };
    let drop = label.as_bytes().get(8).is_some_and(|&b| b == b';');
    let counting = Counting::new(rate, drop)?;
    let frame = counting.frame_of(label)?;
    match spec {
        Some(TimecodeSpec {
            counting: c,
            start,
            at_frame: Some(at),
        }) if c.rate == rate => Ok((at + (frame - start), frame, FirstFrom::RuleTimecode)),
        _ => Ok((frame, frame, FirstFrom::Timecode)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R24: Rate = Rate { num: 24, den: 1 };

    #[test]
    fn the_timecode_counts_frames_from_midnight() {
        assert_eq!(
            first_frame(Some("00:00:41:17"), R24, None, 993),
            Ok((1001, 1001, FirstFrom::Timecode))
        );
        let ntsc = Rate::ntsc(30);
        assert_eq!(
            first_frame(Some("00:00:33;11"), ntsc, None, 993).map(|f| f.0),
            Ok(1001)
        );
    }

    #[test]
    fn a_rules_timecode_mapping_is_inverted() {
        let spec = TimecodeSpec::new("24", "01:00:00:00", Some(1001), None).unwrap();
        // Frame 1009 of a movie starting there carries 01:00:00:08.
        assert_eq!(
            first_frame(Some("01:00:00:08"), R24, Some(&spec), 993),
            Ok((1009, 86408, FirstFrom::RuleTimecode))
        );
        let each_job = TimecodeSpec::new("24", "01:00:00:00", None, None).unwrap();
        assert_eq!(
            first_frame(Some("00:00:41:17"), R24, Some(&each_job), 993).map(|f| f.2),
            Ok(FirstFrom::Timecode),
            "without at_frame the label says nothing of the frame number"
        );
    }

    #[test]
    fn without_timecode_the_product_starts_at_head_in() {
        assert_eq!(
            first_frame(None, R24, None, 993),
            Ok((993, 993, FirstFrom::HeadIn))
        );
        assert!(first_frame(Some("garbage"), R24, None, 993).is_err());
    }
}
