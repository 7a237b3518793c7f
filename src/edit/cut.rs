//! The cut model both readers produce: items in record order, each with its source range as
//! the edit plays it (after any speed change) and its record range, in frames at the cut's rate.
//! Ranges are half-open: `record_out` is the first frame after the item.

use std::fmt;

use crate::media::timecode::{Counting, Rate};

/// The largest frame number or length the readers accept (about 1,400 years at 24 fps): sums
/// of a few such values stay far inside `i64`, so frame arithmetic cannot overflow.
pub const MAX_FRAME: i64 = 1 << 40;

/// The largest speed change the readers accept, either way (1000× normal speed).
pub const MAX_SPEED: f64 = 1000.0;

/// Source frames an item of `record_frames` plays at `speed`: all of them at normal speed,
/// else record length × |speed| rounded, and at least one (a freeze still shows a frame).
/// `speed` must be finite and within [`MAX_SPEED`].
pub(crate) fn source_played(record_frames: i64, source_frames: i64, speed: f64) -> i64 {
    if speed == 1.0 {
        source_frames
    } else {
        ((record_frames as f64 * speed.abs()).round() as i64).max(1)
    }
}

/// Whether `speed` is one the readers accept: finite and within [`MAX_SPEED`] either way.
pub(crate) fn speed_in_range(speed: f64) -> bool {
    speed.is_finite() && speed.abs() <= MAX_SPEED
}

/// One reading of an edit: a title and the items of its tracks, in record order.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    /// `TITLE:` of an EDL, `name` of an OTIO timeline.
    pub title: Option<String>,
    /// The rate every frame number here counts in (the caller's, for an EDL).
    pub rate: Rate,
    /// How record frame numbers are labelled: drop-frame if the record timecode was.
    pub counting: Counting,
    /// Items of every track, sorted by record in (stable: file order breaks ties).
    pub items: Vec<CutItem>,
}

impl Cut {
    /// The items of video tracks: the ones that show shots.
    pub fn video_items(&self) -> impl Iterator<Item = (usize, &CutItem)> {
        self.items.iter().enumerate().filter(|(_, i)| i.is_video())
    }

    /// The record in and out timecodes of `item`, as the editor's timeline shows them.
    pub fn record_timecodes(&self, item: &CutItem) -> (String, String) {
        (
            self.counting.label(item.record_in),
            self.counting.label(item.record_out),
        )
    }

    /// Sorts items into record order; readers call it once at the end.
    pub(crate) fn sort(&mut self) {
        self.items.sort_by_key(|i| i.record_in);
    }
}

/// One clip as the cut plays it.
#[derive(Debug, Clone, PartialEq)]
pub struct CutItem {
    /// The EDL's event number; for OTIO, the item's 1-based place in record order.
    pub event: u32,
    /// Clip name: `* FROM CLIP NAME:` (`* TO CLIP NAME:` for the incoming side of a
    /// transition), or the OTIO clip's name.
    pub name: Option<String>,
    /// Source reel (tape) name; `AX`, `BL` and `BLACK` are kept as written.
    pub reel: Option<String>,
    /// Locator texts after their timecode (`* LOC:`, OTIO marker names).
    pub locators: Vec<String>,
    /// The track the item is on.
    pub track: Track,
    /// The transition into this item.
    pub transition: Transition,
    /// First source frame played.
    pub source_in: i64,
    /// First source frame after the ones played: `source_in` + record length × |speed|.
    pub source_out: i64,
    /// First record frame.
    pub record_in: i64,
    /// First record frame after the item.
    pub record_out: i64,
    /// Source frames per record frame: 1 at normal speed, 0 for a freeze frame, negative in
    /// reverse.
    pub speed: f64,
    /// Where the item was read from, for messages.
    pub origin: Origin,
}

impl CutItem {
    /// Frames the item lasts in the cut (after any speed change).
    pub fn duration(&self) -> i64 {
        self.record_out - self.record_in
    }

    /// Source frames the item shows (`source_out` − `source_in`, at least one): what the shot's
    /// plate must hold. Twice the duration at double speed, one frame for a freeze.
    pub fn source_frames(&self) -> i64 {
        (self.source_out - self.source_in).max(1)
    }

    /// Whether the item is on a video track.
    pub fn is_video(&self) -> bool {
        matches!(self.track, Track::Video(_))
    }
}

/// A track: video or audio, with the name the file gives it (`V`, `A2`, `V1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Track {
    /// Pictures.
    Video(String),
    /// Sound.
    Audio(String),
}

/// How an item begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// A straight cut.
    Cut,
    /// A dissolve from the previous item lasting `frames`, starting at this item's record in.
    Dissolve {
        /// Length of the dissolve.
        frames: u32,
    },
    /// A wipe with its SMPTE code (`W001`, or the OTIO transition type).
    Wipe {
        /// The wipe's code as written.
        code: String,
        /// Length of the wipe.
        frames: u32,
    },
}

/// Where an item came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The 1-based line of an EDL event.
    Line(usize),
    /// An OTIO clip: its track's name and its own.
    Clip {
        /// The track's name.
        track: String,
        /// The clip's name.
        name: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(line) => write!(f, "line {line}"),
            Origin::Clip { track, name } => write!(f, "clip `{name}` (track `{track}`)"),
        }
    }
}
