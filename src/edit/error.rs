//! What goes wrong reading a cut: every variant says where (an EDL's 1-based line, an OTIO
//! item) and holds the offending text, so a caller can point at it.

use crate::edit::cut::{MAX_FRAME, MAX_SPEED};
use crate::media::timecode::Rate;

/// An EDL or OpenTimelineIO file that cannot be read as a cut, or a shot pattern that cannot
/// name shots.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// An event line without the fields of a CMX 3600 event.
    #[error(
        "line {line}: `{text}` is not a CMX 3600 event; expected `NNN REEL V|A C|D nnn|Wnnn nnn SRC-IN SRC-OUT REC-IN REC-OUT`"
    )]
    Event {
        /// 1-based line in the EDL.
        line: usize,
        /// The line as written.
        text: String,
    },
    /// A line that is neither an event, a comment nor a header the reader knows.
    #[error("line {line}: unknown EDL line `{text}`; comments start with `*`")]
    UnknownLine {
        /// 1-based line in the EDL.
        line: usize,
        /// The line as written.
        text: String,
    },
    /// An `FCM:` line that says neither `DROP FRAME` nor `NON-DROP FRAME`.
    #[error(
        "line {line}: unknown frame code mode `{text}`; write `FCM: DROP FRAME` or `FCM: NON-DROP FRAME`"
    )]
    FrameCodeMode {
        /// 1-based line in the EDL.
        line: usize,
        /// The line as written.
        text: String,
    },
    /// Drop-frame counting at a rate that has none.
    #[error(
        "line {line}: drop-frame timecode exists only at 29.97 and 59.94 fps, not at {rate}; is the EDL's rate {rate}?"
    )]
    DropFrame {
        /// 1-based line in the EDL.
        line: usize,
        /// The rate the caller gave.
        rate: Rate,
    },
    /// A timecode that is malformed or does not exist at the rate.
    #[error("line {line}: {reason}")]
    Timecode {
        /// 1-based line in the EDL.
        line: usize,
        /// The timecode as written.
        text: String,
        /// Why it is refused, from `media::timecode`.
        reason: String,
    },
    /// A transition code the reader does not know (keys: `K`, `KB`, `KO`).
    #[error(
        "line {line}: unsupported transition `{code}`; shotrouter reads `C`, `D nnn` and `Wnnn nnn`"
    )]
    Transition {
        /// 1-based line in the EDL.
        line: usize,
        /// The code as written.
        code: String,
    },
    /// A third line for one event number (an event has a clip and at most one transition).
    #[error("line {line}: event {event} has more than two lines")]
    EventLines {
        /// 1-based line of the third line.
        line: usize,
        /// The event number.
        event: u32,
    },
    /// An `M2` line that cannot be read, or one outside any event.
    #[error(
        "line {line}: `{text}` is not an M2 speed change of an event; expected `M2 REEL FPS TIMECODE` after the event"
    )]
    Speed {
        /// 1-based line in the EDL.
        line: usize,
        /// The line as written.
        text: String,
    },
    /// A frame count or `M2` speed past what any edit holds (or not a finite number), refused
    /// before frame arithmetic on it could overflow.
    #[error(
        "line {line}: `{text}` is out of range; frame counts go up to {MAX_FRAME} and speeds up to {MAX_SPEED}× normal either way"
    )]
    OutOfRange {
        /// 1-based line in the EDL.
        line: usize,
        /// The field as written.
        text: String,
    },
    /// An event whose record runs backwards.
    #[error("line {line}: event {event} ends before it starts (record out before record in)")]
    Backwards {
        /// 1-based line in the EDL.
        line: usize,
        /// The event number.
        event: u32,
    },
    /// Source and record lengths differ with no speed change to explain it.
    #[error(
        "line {line}: event {event} plays {source_frames} source frames in {record_frames} record frames but has no `M2` speed change"
    )]
    LengthMismatch {
        /// 1-based line in the EDL.
        line: usize,
        /// The event number.
        event: u32,
        /// Source frames (out − in).
        source_frames: i64,
        /// Record frames (out − in).
        record_frames: i64,
    },
    /// Not JSON, or not JSON of the shape an `.otio` file has.
    #[error("not an OpenTimelineIO file: {0}")]
    Json(#[source] serde_json::Error),
    /// An OTIO object of a kind the reader does not know.
    #[error("{item}: unsupported OpenTimelineIO schema `{schema}`")]
    Schema {
        /// Which object: `clip `sh010` (track `V1`)`, `the timeline`.
        item: String,
        /// Its `OTIO_SCHEMA`.
        schema: String,
    },
    /// An OTIO object missing a field, or holding a value that is not whole frames.
    #[error("{item}: {problem} `{field}`")]
    Field {
        /// Which object.
        item: String,
        /// The field.
        field: &'static str,
        /// What is wrong with it: `missing`, `not whole frames in`.
        problem: &'static str,
    },
    /// A nested stack that is more than one plain track.
    #[error(
        "{item}: a nested stack is read only when it holds one track and trims nothing; flatten it in the editing system"
    )]
    Nesting {
        /// Which object.
        item: String,
    },
    /// The shot pattern does not compile.
    #[error("shot pattern `{pattern}`: {source}")]
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// Why the regex crate refuses it.
        #[source]
        source: regex::Error,
    },
    /// The shot pattern has no `(?P<shot>...)` capture.
    #[error(
        "shot pattern `{pattern}` has no capture named `shot`; write e.g. `(?P<shot>sh[0-9]+)`"
    )]
    NoShotCapture {
        /// The pattern as written.
        pattern: String,
    },
}
