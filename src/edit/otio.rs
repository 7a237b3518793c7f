//! OpenTimelineIO `.otio` JSON: Timeline → Stack → video Tracks of Clips, Gaps and
//! Transitions; `LinearTimeWarp` and `FreezeFrame` effects; `source_range`, else the media's
//! `available_range`; a nested Stack or Track read in place when it is one plain track.
//! Audio tracks are left out. Any other schema is an error naming the item.
//!
//! A RationalTime whose rate rounds to the cut's nominal rate counts frames of it (files often
//! say 24 for 23.976); any other rate is converted and must land on a whole frame.

use serde_json::Value;

use crate::edit::cut::{MAX_FRAME, source_played, speed_in_range};
use crate::edit::{Cut, CutItem, EditError, Origin, Track, Transition};
use crate::media::timecode::{Counting, Rate};

/// Reads an `.otio` timeline, counting frames at `rate`.
///
/// # Errors
/// Not JSON; a schema other than the ones above; a missing range; a time that is not a whole
/// frame; a nested stack that is more than one plain track. Each names the clip or item.
pub fn parse(text: &str, rate: Rate) -> Result<Cut, EditError> {
    let root: Value = serde_json::from_str(text).map_err(EditError::Json)?;
    let reader = Reader { rate };
    let timeline = "the timeline".to_string();
    expect_schema(&root, "Timeline", &timeline)?;
    let start = match root.get("global_start_time") {
        Some(t) if !t.is_null() => reader.frames(t, &timeline, "global_start_time")?,
        _ => 0,
    };
    let stack = root.get("tracks").ok_or_else(|| EditError::Field {
        item: timeline.clone(),
        field: "tracks",
        problem: "missing",
    })?;
    expect_schema(stack, "Stack", &timeline)?;
    let mut items = Vec::new();
    for (index, track) in children(stack).iter().enumerate() {
        let name = str_field(track, "name").unwrap_or_default();
        let item = format!("track `{name}` (#{})", index + 1);
        expect_schema(track, "Track", &item)?;
        if str_field(track, "kind").as_deref() != Some("Video") {
            continue;
        }
        let shift = match track.get("source_range") {
            Some(r) if !r.is_null() => {
                reader.frames(field(r, "start_time", &item)?, &item, "source_range")?
            }
            _ => 0,
        };
        let mut walk = Walk {
            track: name,
            position: start - shift,
            pending: Transition::Cut,
            items: &mut items,
        };
        reader.track(track, &mut walk)?;
    }
    items.sort_by_key(|i| i.record_in);
    for (n, item) in items.iter_mut().enumerate() {
        item.event = u32::try_from(n + 1).unwrap_or(u32::MAX);
    }
    Ok(Cut {
        title: str_field(&root, "name"),
        rate,
        counting: Counting { rate, drop: false },
        items,
    })
}

struct Reader {
    rate: Rate,
}

/// Where a walk through one track has got to.
struct Walk<'a> {
    track: String,
    /// Record frame of the next item.
    position: i64,
    /// The transition into the next clip.
    pending: Transition,
    items: &'a mut Vec<CutItem>,
}

impl Reader {
    fn track(&self, track: &Value, walk: &mut Walk<'_>) -> Result<(), EditError> {
        for child in children(track) {
            let name = str_field(child, "name").unwrap_or_default();
            let schema = schema_of(child);
            let kind = schema.split('.').next().unwrap_or_default();
            let item = format!("{} `{name}` (track `{}`)", kind.to_lowercase(), walk.track);
            match kind {
                "Clip" => {
                    let clip = self.clip(child, &name, &item, walk)?;
                    walk.position = clip.record_out;
                    walk.items.push(clip);
                }
                "Gap" => {
                    let range = field(child, "source_range", &item)?;
                    let duration =
                        self.frames(field(range, "duration", &item)?, &item, "duration")?;
                    walk.position = walk.after(duration, &item)?;
                }
                "Transition" => {
                    let frames =
                        self.frames(field(child, "in_offset", &item)?, &item, "in_offset")?
                            + self.frames(
                                field(child, "out_offset", &item)?,
                                &item,
                                "out_offset",
                            )?;
                    let frames = u32::try_from(frames).unwrap_or(0);
                    let kind = str_field(child, "transition_type").unwrap_or_default();
                    walk.pending = if kind == "SMPTE_Dissolve" {
                        Transition::Dissolve { frames }
                    } else {
                        Transition::Wipe { code: kind, frames }
                    };
                }
                "Stack" | "Track" => {
                    let inner = self.plain_track(child, kind, &item)?;
                    self.track(inner, walk)?;
                }
                _ => {
                    return Err(EditError::Schema {
                        item,
                        schema: schema.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The one track a nested Stack holds (or a nested Track itself), when nothing trims it.
    fn plain_track<'v>(
        &self,
        nested: &'v Value,
        kind: &str,
        item: &str,
    ) -> Result<&'v Value, EditError> {
        let nesting = || EditError::Nesting {
            item: item.to_string(),
        };
        let trims = |v: &Value| {
            v.get("source_range").is_some_and(|r| !r.is_null())
                || v.get("effects")
                    .and_then(Value::as_array)
                    .is_some_and(|e| !e.is_empty())
        };
        if trims(nested) {
            return Err(nesting());
        }
        if kind == "Track" {
            return Ok(nested);
        }
        match children(nested) {
            [only] if schema_of(only).starts_with("Track.") && !trims(only) => Ok(only),
            _ => Err(nesting()),
        }
    }

    fn clip(
        &self,
        clip: &Value,
        name: &str,
        item: &str,
        walk: &mut Walk<'_>,
    ) -> Result<CutItem, EditError> {
        let range = match clip.get("source_range") {
            Some(r) if !r.is_null() => r,
            _ => available_range(clip).ok_or_else(|| EditError::Field {
                item: item.to_string(),
                field: "source_range",
                problem: "missing",
            })?,
        };
        let source_in = self.frames(field(range, "start_time", item)?, item, "start_time")?;
        let duration = self.frames(field(range, "duration", item)?, item, "duration")?;
        let mut speed = 1.0;
        for effect in clip
            .get("effects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let schema = schema_of(effect);
            match schema.split('.').next().unwrap_or_default() {
                "LinearTimeWarp" => {
                    let bad = |problem| EditError::Field {
                        item: item.to_string(),
                        field: "time_scalar",
                        problem,
                    };
                    speed *= effect
                        .get("time_scalar")
                        .and_then(Value::as_f64)
                        .ok_or_else(|| bad("missing"))?;
                    if !speed_in_range(speed) {
                        return Err(bad("a speed past 1000× normal in"));
                    }
                }
                "FreezeFrame" => speed = 0.0,
                _ => {
                    return Err(EditError::Schema {
                        item: item.to_string(),
                        schema: schema.to_string(),
                    });
                }
            }
        }
        let played = source_played(duration, duration, speed);
        let locators = clip
            .get("markers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| str_field(m, "name"))
            .collect();
        let reel = clip
            .pointer("/metadata/cmx_3600/reel")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(CutItem {
            event: 0,
            name: Some(name.to_string()),
            reel,
            locators,
            track: Track::Video(walk.track.clone()),
            transition: std::mem::replace(&mut walk.pending, Transition::Cut),
            source_in,
            source_out: source_in + played,
            record_in: walk.position,
            record_out: walk.after(duration, item)?,
            speed,
            origin: Origin::Clip {
                track: walk.track.clone(),
                name: name.to_string(),
            },
        })
    }

    /// A RationalTime `{rate, value}` as whole frames at the cut's rate.
    fn frames(&self, time: &Value, item: &str, name: &'static str) -> Result<i64, EditError> {
        let bad = |problem| EditError::Field {
            item: item.to_string(),
            field: name,
            problem,
        };
        let rate = time
            .get("rate")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("missing a rate in"))?;
        let value = time
            .get("value")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("missing a value in"))?;
        let frames = if rate.round() == f64::from(self.rate.nominal()) {
            value
        } else if rate > 0.0 {
            value * self.rate.fps() / rate
        } else {
            return Err(bad("a rate of zero in"));
        };
        if !frames.is_finite() || frames.abs() > MAX_FRAME as f64 {
            return Err(bad("an out-of-range number of frames in"));
        }
        if (frames - frames.round()).abs() > 1e-6 {
            return Err(bad("not whole frames in"));
        }
        Ok(frames.round() as i64)
    }
}

impl Walk<'_> {
    /// The record frame `frames` after the current position, refused past [`MAX_FRAME`] (a
    /// track of many huge gaps would otherwise overflow).
    fn after(&self, frames: i64, item: &str) -> Result<i64, EditError> {
        // Both terms are within MAX_FRAME: the sum cannot overflow.
        let position = self.position + frames;
        if position.abs() > MAX_FRAME {
            return Err(EditError::Field {
                item: item.to_string(),
                field: "duration",
                problem: "a record position past the last frame read after",
            });
        }
        Ok(position)
    }
}

/// The active media reference's `available_range` (Clip.2), or the single one's (Clip.1).
fn available_range(clip: &Value) -> Option<&Value> {
    let reference = match clip.get("media_references") {
        Some(refs) => {
            let key = clip
                .get("active_media_reference_key")
                .and_then(Value::as_str)
                .unwrap_or("DEFAULT_MEDIA");
            refs.get(key)?
        }
        None => clip.get("media_reference")?,
    };
    reference.get("available_range").filter(|r| !r.is_null())
}

fn expect_schema(value: &Value, kind: &str, item: &str) -> Result<(), EditError> {
    let schema = schema_of(value);
    if schema.split('.').next() == Some(kind) {
        Ok(())
    } else {
        Err(EditError::Schema {
            item: item.to_string(),
            schema: schema.to_string(),
        })
    }
}

fn schema_of(value: &Value) -> &str {
    value
        .get("OTIO_SCHEMA")
        .and_then(Value::as_str)
        .unwrap_or("(none)")
}

fn children(value: &Value) -> &[Value] {
    value
        .get("children")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn field<'v>(value: &'v Value, name: &'static str, item: &str) -> Result<&'v Value, EditError> {
    value
        .get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| EditError::Field {
            item: item.to_string(),
            field: name,
            problem: "missing",
        })
}

fn str_field(value: &Value, name: &str) -> Option<String> {
    value.get(name).and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests;
