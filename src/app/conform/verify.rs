//! The conformed movie checked like any product before it is published: as many frames as the
//! cut's record duration, the record timecode as stamped, the cut's rate. ffmpeg exits 0 with
//! a short movie or without timecode (cookbook §0), so this is the only proof it worked.

use crate::media::probe::Probed;
use crate::media::timecode::Rate;

/// What the probe of the conformed movie must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Frames: the cut's record duration.
    pub frames: u64,
    /// The record start timecode.
    pub timecode: String,
    /// The cut's rate.
    pub rate: Rate,
}

/// Every way `probed` differs from `expected`, as lines for the error.
pub fn differences(probed: &Probed, expected: &Expected) -> Vec<String> {
    let mut out = Vec::new();
    if probed.frames != Some(expected.frames) {
        out.push(format!(
            "{} frames, the cut lasts {}",
            probed
                .frames
                .map_or_else(|| "unknown".to_string(), |f| f.to_string()),
            expected.frames
        ));
    }
    if probed.timecode.as_deref() != Some(expected.timecode.as_str()) {
        out.push(format!(
            "timecode `{}`, stamped `{}`",
            probed.timecode.as_deref().unwrap_or("none"),
            expected.timecode
        ));
    }
    if probed.fps != Some(expected.rate) {
        out.push(format!(
            "rate {}, the cut's is {}",
            probed
                .fps
                .map_or_else(|| "unknown".to_string(), |r| r.to_string()),
            expected.rate
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_movie_without_timecode_shows_both() {
        let expected = Expected {
            frames: 120,
            timecode: "01:00:00;00".into(),
            rate: Rate::ntsc(30),
        };
        let good = Probed {
            frames: Some(120),
            timecode: Some("01:00:00;00".into()),
            fps: Some(Rate::ntsc(30)),
            ..Probed::default()
        };
        assert!(differences(&good, &expected).is_empty());
        let bad = Probed {
            frames: Some(10),
            timecode: None,
            ..good
        };
        assert_eq!(
            differences(&bad, &expected),
            [
                "10 frames, the cut lasts 120",
                "timecode `none`, stamped `01:00:00;00`"
            ]
        );
    }
}
