//! CMX 3600 EDLs: `TITLE:`, `FCM:` (for the whole list or from one event on), events with reel,
//! track, transition (`C`, `D nnn`, `Wnnn nnn`) and source/record timecodes, and the comments
//! that name clips (`* FROM CLIP NAME:`, `* TO CLIP NAME:`), place locators (`* LOC:`) and
//! change speed (`M2`). EDLs carry no frame rate: the caller gives it.
//!
//! An event of two lines is a transition: the first line is the outgoing side (usually of zero
//! length), the second the incoming clip, which starts at the transition's first frame.

use crate::edit::cut::{MAX_FRAME, source_played, speed_in_range};
use crate::edit::{Cut, CutItem, EditError, Origin, Track, Transition};
use crate::media::timecode::{Counting, Rate};

/// Reads an EDL whose timecodes count at `rate`.
///
/// # Errors
/// The first line that cannot be read, by its 1-based number: an event without its fields, a
/// timecode that does not exist, drop-frame at a rate without it, a source and record of
/// different lengths with no `M2` to explain them.
pub fn parse(text: &str, rate: Rate) -> Result<Cut, EditError> {
    let mut reader = Reader {
        rate,
        drop: false,
        record_drop: None,
        title: None,
        block: None,
        items: Vec::new(),
    };
    for (index, raw) in text.lines().enumerate() {
        reader.line(index + 1, raw.trim())?;
    }
    reader.flush()?;
    let drop = reader.record_drop.unwrap_or(false);
    let mut cut = Cut {
        title: reader.title,
        rate,
        counting: Counting { rate, drop },
        items: reader.items,
    };
    cut.sort();
    Ok(cut)
}

/// An event line split into fields, its timecodes already frames.
struct EventLine {
    line: usize,
    event: u32,
    reel: String,
    track: Track,
    transition: Transition,
    source: (i64, i64),
    record: (i64, i64),
}

/// An `M2` line: the reel it changes, from which source frame (its timecode), and its speed
/// as source frames per record frame.
struct Speed {
    reel: String,
    source_in: i64,
    speed: f64,
}

/// The lines of one event number with the comments that follow them.
#[derive(Default)]
struct Block {
    lines: Vec<EventLine>,
    from_name: Option<String>,
    to_name: Option<String>,
    locators: Vec<String>,
    speeds: Vec<Speed>,
    freeze: bool,
}

struct Reader {
    rate: Rate,
    /// The current `FCM:`; a label written with `;` is drop-frame whatever it says.
    drop: bool,
    /// Whether the first event's record timecode was drop-frame (labels the cut's record).
    record_drop: Option<bool>,
    title: Option<String>,
    block: Option<Block>,
    items: Vec<CutItem>,
}

impl Reader {
    fn line(&mut self, line: usize, text: &str) -> Result<(), EditError> {
        if text.is_empty() {
            return Ok(());
        }
        if let Some(title) = text.strip_prefix("TITLE:") {
            self.title = Some(title.trim().to_string());
        } else if let Some(mode) = text.strip_prefix("FCM:") {
            self.drop = match mode.trim() {
                "DROP FRAME" => true,
                "NON-DROP FRAME" | "NON DROP FRAME" => false,
                _ => {
                    return Err(EditError::FrameCodeMode {
                        line,
                        text: text.to_string(),
                    });
                }
            };
            if self.drop && !self.rate.allows_drop() {
                return Err(EditError::DropFrame {
                    line,
                    rate: self.rate,
                });
            }
        } else if text.starts_with(|c: char| c.is_ascii_digit()) {
            let event = self.event_line(line, text)?;
            match &mut self.block {
                Some(block) if block.lines[0].event == event.event => {
                    if block.lines.len() == 2 {
                        return Err(EditError::EventLines {
                            line,
                            event: event.event,
                        });
                    }
                    block.lines.push(event);
                }
                _ => {
                    self.flush()?;
                    self.block = Some(Block {
                        lines: vec![event],
                        ..Block::default()
                    });
                }
            }
        } else if let Some(rest) = text.strip_prefix("M2") {
            let speed = self.speed(line, text, rest)?;
            match &mut self.block {
                Some(block) => block.speeds.push(speed),
                None => {
                    return Err(EditError::Speed {
                        line,
                        text: text.to_string(),
                    });
                }
            }
        } else if let Some(comment) = text.strip_prefix('*') {
            if let Some(block) = &mut self.block {
                block.comment(comment.trim());
            }
        } else if !is_ignored(text) {
            return Err(EditError::UnknownLine {
                line,
                text: text.to_string(),
            });
        }
        Ok(())
    }

    fn event_line(&mut self, line: usize, text: &str) -> Result<EventLine, EditError> {
        let bad = || EditError::Event {
            line,
            text: text.to_string(),
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (event, reel, channel, code, length, times) = match fields.as_slice() {
            [e, r, ch, code, si, so, ri, ro] => (e, r, ch, *code, None, [si, so, ri, ro]),
            [e, r, ch, code, n, si, so, ri, ro] => (e, r, ch, *code, Some(*n), [si, so, ri, ro]),
            _ => return Err(bad()),
        };
        let event: u32 = event.parse().map_err(|_| bad())?;
        let frames = |n: Option<&str>| -> Result<u32, EditError> {
            n.ok_or_else(bad)?.parse().map_err(|_| bad())
        };
        let transition = match code {
            "C" if length.is_none() => Transition::Cut,
            "D" => Transition::Dissolve {
                frames: frames(length)?,
            },
            w if w.len() == 4
                && w.starts_with('W')
                && w[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                Transition::Wipe {
                    code: w.to_string(),
                    frames: frames(length)?,
                }
            }
            "C" => return Err(bad()),
            other => {
                return Err(EditError::Transition {
                    line,
                    code: other.to_string(),
                });
            }
        };
        let track = if channel.contains('V') || *channel == "B" {
            Track::Video("V".to_string())
        } else if channel.starts_with('A') || *channel == "NONE" {
            Track::Audio((*channel).to_string())
        } else {
            return Err(bad());
        };
        let [si, so, ri, ro] = times;
        let record = (self.frame(line, ri)?, self.frame(line, ro)?);
        self.record_drop
            .get_or_insert(self.drop || ri.contains([';', '.']));
        Ok(EventLine {
            line,
            event,
            reel: (*reel).to_string(),
            track,
            transition,
            source: (self.frame(line, si)?, self.frame(line, so)?),
            record,
        })
    }

    /// A timecode (or a bare frame count) as a frame number at the EDL's rate and `FCM:`.
    fn frame(&self, line: usize, text: &str) -> Result<i64, EditError> {
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse()
                .ok()
                .filter(|n| *n <= MAX_FRAME)
                .ok_or_else(|| EditError::OutOfRange {
                    line,
                    text: text.to_string(),
                });
        }
        let separator_drop = text
            .as_bytes()
            .get(8)
            .is_some_and(|b| *b == b';' || *b == b'.');
        let drop = self.drop || separator_drop;
        if drop && !self.rate.allows_drop() {
            return Err(EditError::DropFrame {
                line,
                rate: self.rate,
            });
        }
        // Under `FCM: DROP FRAME` many editors still write `:` before the frames. Only an ASCII
        // label is rewritten (byte 9 of any other may fall inside a character); the rest are
        // left for `frame_of` to refuse.
        let label = if drop && !separator_drop && text.is_ascii() && text.len() > 9 {
            format!("{};{}", &text[..8], &text[9..])
        } else {
            text.to_string()
        };
        Counting {
            rate: self.rate,
            drop,
        }
        .frame_of(&label)
        .map_err(|reason| EditError::Timecode {
            line,
            text: text.to_string(),
            reason,
        })
    }

    /// `M2   REEL   048.0   01:00:00:00`: the reel plays at 48 frames per second from source
    /// 01:00:00:00. The speed is against the nominal rate, as timecode counts: `024.0` at
    /// 23.976 is normal speed, not 1.001×.
    fn speed(&self, line: usize, text: &str, rest: &str) -> Result<Speed, EditError> {
        let bad = || EditError::Speed {
            line,
            text: text.to_string(),
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let [reel, written, timecode] = fields.as_slice() else {
            return Err(bad());
        };
        let source_in = self.frame(line, timecode)?;
        let fps: f64 = written.parse().map_err(|_| bad())?;
        let speed = fps / f64::from(self.rate.nominal());
        if !speed_in_range(speed) {
            return Err(EditError::OutOfRange {
                line,
                text: (*written).to_string(),
            });
        }
        Ok(Speed {
            reel: (*reel).to_string(),
            source_in,
            speed,
        })
    }

    fn flush(&mut self) -> Result<(), EditError> {
        let Some(block) = self.block.take() else {
            return Ok(());
        };
        let last = block.lines.len() - 1;
        for (index, event) in block.lines.iter().enumerate() {
            // The outgoing side of a transition usually has no length: nothing of it plays.
            if index < last && event.record.0 == event.record.1 {
                continue;
            }
            let name = if index == last && last > 0 {
                block.to_name.clone().or_else(|| block.from_name.clone())
            } else {
                block.from_name.clone()
            };
            let item = self.item(&block, event, name)?;
            self.items.push(item);
        }
        Ok(())
    }

    fn item(
        &self,
        block: &Block,
        event: &EventLine,
        name: Option<String>,
    ) -> Result<CutItem, EditError> {
        let (line, number) = (event.line, event.event);
        let record = event.record.1 - event.record.0;
        if record < 0 {
            return Err(EditError::Backwards {
                line,
                event: number,
            });
        }
        let source = event.source.1 - event.source.0;
        let speed = match block.speed_of(event) {
            Some(m2) => m2.speed,
            None if block.freeze => 0.0,
            None if source == record => 1.0,
            None => {
                return Err(EditError::LengthMismatch {
                    line,
                    event: number,
                    source_frames: source,
                    record_frames: record,
                });
            }
        };
        // The speed decides the source played, also when source and record are written with
        // the same length (some editors do): a freeze still shows one frame.
        let played = source_played(record, source, speed);
        Ok(CutItem {
            event: number,
            name,
            reel: Some(event.reel.clone()),
            locators: block.locators.clone(),
            track: event.track.clone(),
            transition: event.transition.clone(),
            source_in: event.source.0,
            source_out: event.source.0 + played,
            record_in: event.record.0,
            record_out: event.record.1,
            speed,
            origin: Origin::Line(line),
        })
    }
}

impl Block {
    /// The `M2` of `event`'s reel. Two sides of a transition from one reel are told apart by
    /// the M2's timecode (the source frame it starts at). Only a block of one line takes an M2
    /// naming another reel (some editors shorten reel names there); in a transition such an M2
    /// explains neither side.
    fn speed_of(&self, event: &EventLine) -> Option<&Speed> {
        let mut same_reel = self.speeds.iter().filter(|s| s.reel == event.reel);
        let other_side_starts = |s: &Speed| {
            self.lines
                .iter()
                .any(|l| l.line != event.line && l.reel == s.reel && l.source.0 == s.source_in)
        };
        same_reel
            .clone()
            .find(|s| s.source_in == event.source.0)
            .or_else(|| same_reel.find(|s| !other_side_starts(s)))
            .or_else(|| {
                if self.lines.len() == 1 {
                    self.speeds.last()
                } else {
                    None
                }
            })
    }

    /// Reads the comments that matter; any other comment is kept out of the model.
    fn comment(&mut self, body: &str) {
        let field = |key: &str| {
            body.strip_prefix(key)
                .map(|rest| rest.trim_start_matches(':').trim().to_string())
        };
        if let Some(name) = field("FROM CLIP NAME") {
            self.from_name = Some(name);
        } else if let Some(name) = field("TO CLIP NAME") {
            self.to_name = Some(name);
        } else if let Some(locator) = field("LOC") {
            // `01:00:01:14 RED    sh010 fix`: the colour and text after the timecode.
            let text = locator
                .split_once(char::is_whitespace)
                .map_or("", |(_, rest)| rest.trim());
            self.locators.push(text.to_string());
        } else if body.starts_with("FREEZE FRAME") {
            self.freeze = true;
        }
    }
}

/// Lines some editors write that say nothing about the pictures' timing.
fn is_ignored(text: &str) -> bool {
    const IGNORED: [&str; 4] = ["SPLIT:", "AUD", "EFFECTS NAME IS", ">>>"];
    IGNORED.iter().any(|p| text.starts_with(p))
}

#[cfg(test)]
mod tests;
