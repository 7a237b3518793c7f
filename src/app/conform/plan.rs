//! The conform as one value before anything runs: the cut's record timeline (items of every
//! shot in record order, black where no shot is), for each record frame the product frame it
//! shows (speed changes and freezes included), and the one ffmpeg argv that cuts those frames
//! out of the products and joins them. Pure, so the frame arithmetic is unit-tested.
//!
//! Frame rule: a product whose first frame is shot frame `first` holds shot frame N at index
//! N − first. Record frame k of an item playing from shot frame `first_shown` at speed s shows
//! shot frame `first_shown + floor(k·s)` (s > 0), `last_shown − floor(k·|s|)` (s < 0), or
//! `first_shown` (a freeze, s = 0), clamped to the frames the item shows.

use std::ffi::OsString;

use crate::media::timecode::Counting;
use crate::store::cuts::CutRevision;

/// One item of the cut showing a shot, placed on the record timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Use {
    /// The shot.
    pub shot: String,
    /// The EDL event (OTIO: place in record order).
    pub event: u32,
    /// The clip name, if any.
    pub clip: Option<String>,
    /// First record frame.
    pub record_in: i64,
    /// First record frame after it.
    pub record_out: i64,
    /// First shot frame it shows.
    pub first: i64,
    /// Last shot frame it shows.
    pub last: i64,
    /// Source frames per record frame.
    pub speed: f64,
}

/// What went wrong laying out the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// A stored record timecode does not read at the cut's rate.
    Timecode {
        /// The label.
        label: String,
        /// Why.
        reason: String,
    },
    /// Two items play at the same record frame (several video tracks).
    Overlap {
        /// The earlier item's event.
        first: u32,
        /// The later item's event.
        second: u32,
    },
    /// The revision shows nothing.
    Empty,
}

/// The items of `revision` in record order and the record extent `[start, end)` of the whole
/// cut (items that name no shot included: they become black).
///
/// # Errors
/// A record timecode that does not read, overlapping items, an empty cut.
pub fn layout(
    revision: &CutRevision,
    counting: Counting,
) -> Result<(Vec<Use>, i64, i64), LayoutError> {
    let frame = |label: &str| {
        counting
            .frame_of(label)
            .map_err(|reason| LayoutError::Timecode {
                label: label.to_string(),
                reason,
            })
    };
    let mut uses = Vec::new();
    for shot in revision.present() {
        for item in &shot.items {
            uses.push(Use {
                shot: shot.shot.clone(),
                event: item.event,
                clip: item.clip.clone(),
                record_in: frame(&item.record_in)?,
                record_out: frame(&item.record_out)?,
                first: item.first,
                last: item.last,
                speed: item.speed,
            });
        }
    }
    let mut start = uses.iter().map(|u| u.record_in).min();
    let mut end = uses.iter().map(|u| u.record_out).max();
    for item in &revision.unmatched {
        let (i, o) = (frame(&item.record_in)?, frame(&item.record_out)?);
        start = Some(start.map_or(i, |s| s.min(i)));
        end = Some(end.map_or(o, |e| e.max(o)));
    }
    uses.sort_by_key(|u| (u.record_in, u.event));
    for pair in uses.windows(2) {
        if pair[1].record_in < pair[0].record_out {
            return Err(LayoutError::Overlap {
                first: pair[0].event,
                second: pair[1].event,
            });
        }
    }
    match (start, end) {
        (Some(s), Some(e)) if e > s => Ok((uses, s, e)),
        _ => Err(LayoutError::Empty),
    }
}

/// The shot frame each record frame of `item` shows (see the module's frame rule).
pub fn shot_frames(item: &Use) -> Vec<i64> {
    let n = item.record_out - item.record_in;
    (0..n)
        .map(|k| {
            let step = (k as f64 * item.speed.abs()).floor() as i64;
            let f = if item.speed > 0.0 {
                item.first + step
            } else if item.speed < 0.0 {
                item.last - step
            } else {
                item.first
            };
            f.clamp(item.first, item.last)
        })
        .collect()
}

/// A stretch of product frames shown in order: forward, backward or one frame held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// `len` frames from index `from` up.
    Forward {
        /// First index.
        from: i64,
        /// Frames.
        len: i64,
    },
    /// `len` frames from index `from` down.
    Backward {
        /// First (highest) index.
        from: i64,
        /// Frames.
        len: i64,
    },
    /// Index `at` shown `len` times.
    Hold {
        /// The index.
        at: i64,
        /// Times shown.
        len: i64,
    },
}

/// `indexes` as the fewest runs read left to right (a pair of equal indexes starts a hold).
pub fn runs(indexes: &[i64]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut i = 0;
    while i < indexes.len() {
        let at = indexes[i];
        let same = indexes[i..].iter().take_while(|&&x| x == at).count();
        if same > 1 {
            out.push(Run::Hold {
                at,
                len: same as i64,
            });
            i += same;
            continue;
        }
        let mut len = 1;
        let step = indexes.get(i + 1).map(|&x| x - at);
        if matches!(step, Some(1 | -1)) {
            let step = step.unwrap_or(1);
            // A run stops before a frame that is held (shown twice): the hold takes it.
            while i + len < indexes.len()
                && indexes[i + len] == at + step * len as i64
                && indexes.get(i + len + 1) != Some(&indexes[i + len])
            {
                len += 1;
            }
        }
        out.push(if step == Some(-1) && len > 1 {
            Run::Backward {
                from: at,
                len: len as i64,
            }
        } else {
            Run::Forward {
                from: at,
                len: len as i64,
            }
        });
        i += len;
    }
    out
}

/// A picked product as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Its absolute path.
    pub path: String,
    /// The shot frame its index 0 holds.
    pub first: i64,
    /// Frames it holds.
    pub frames: i64,
    /// Picture size.
    pub width: u64,
    /// Picture size.
    pub height: u64,
}

/// One stretch of the output.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// An item: its product (index into the sources) and the product index of every record
    /// frame.
    Clip {
        /// The item.
        item: Use,
        /// Which source.
        source: usize,
        /// Product frame index per record frame.
        indexes: Vec<i64>,
    },
    /// Black: a gap, or items that name no shot.
    Black {
        /// First record frame.
        record_in: i64,
        /// Frames.
        frames: i64,
    },
}

impl Segment {
    /// Frames it lasts.
    pub fn frames(&self) -> i64 {
        match self {
            Segment::Clip { indexes, .. } => indexes.len() as i64,
            Segment::Black { frames, .. } => *frames,
        }
    }
}

/// A shot frame the cut needs that its product does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncovered {
    /// The shot.
    pub shot: String,
    /// The frames needed.
    pub needed: (i64, i64),
    /// The frames the product holds.
    pub holds: (i64, i64),
}

/// The segments of the timeline `[start, end)`: each use from its shot's source (`source_of`
/// gives the index into the caller's sources), black between. Every needed frame must be in
/// its product, else every shot that falls short is returned.
///
/// # Errors
/// The shots whose product does not hold the frames their items show.
pub fn segments(
    uses: &[Use],
    start: i64,
    end: i64,
    sources: &[Source],
    source_of: impl Fn(&str) -> usize,
) -> Result<Vec<Segment>, Vec<Uncovered>> {
    let mut out = Vec::new();
    let mut uncovered: Vec<Uncovered> = Vec::new();
    let mut at = start;
    for item in uses {
        if item.record_in > at {
            out.push(Segment::Black {
                record_in: at,
                frames: item.record_in - at,
            });
        }
        let index = source_of(&item.shot);
        let source = &sources[index];
        let holds = (source.first, source.first + source.frames - 1);
        if item.first < holds.0 || item.last > holds.1 {
            if !uncovered.iter().any(|u| u.shot == item.shot) {
                uncovered.push(Uncovered {
                    shot: item.shot.clone(),
                    needed: (item.first, item.last),
                    holds,
                });
            }
        } else {
            out.push(Segment::Clip {
                item: item.clone(),
                source: index,
                indexes: shot_frames(item)
                    .into_iter()
                    .map(|f| f - source.first)
                    .collect(),
            });
        }
        at = item.record_out;
    }
    if end > at {
        out.push(Segment::Black {
            record_in: at,
            frames: end - at,
        });
    }
    if uncovered.is_empty() {
        Ok(out)
    } else {
        Err(uncovered)
    }
}

/// The codec of the conformed movie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// ProRes 422 HQ, 10-bit 4:2:2: a review movie.
    #[default]
    ProresHq,
    /// FFV1, lossless in the products' own pixel format: a check that every frame is the
    /// product's, bit for bit.
    Ffv1,
}

/// ffmpeg's argv (without the program) conforming `segments` from `sources` into `output` (a
/// MOV) at `counting`'s rate, stamped `timecode`. Paths are argv elements behind `file:`, so
/// no name is ever read as an option, a protocol or filter text.
pub fn ffmpeg_args(
    segments: &[Segment],
    sources: &[Source],
    counting: Counting,
    timecode: &str,
    codec: Codec,
    output: &std::path::Path,
) -> Vec<OsString> {
    let rate = counting.rate;
    let (width, height) = sources.first().map_or((64, 36), |s| (s.width, s.height));
    let mut args: Vec<OsString> = ["-nostdin", "-v", "error", "-y"]
        .iter()
        .map(OsString::from)
        .collect();
    // One input per clip segment: each is read once, in order, as concat asks for it.
    let mut graph = Vec::new();
    let mut labels = Vec::new();
    let mut input = 0;
    for (n, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Black { frames, .. } => {
                graph.push(format!(
                    "color=c=black:s={width}x{height}:r={}/{},trim=end_frame={frames},setsar=1[b{n}]",
                    rate.num, rate.den
                ));
                labels.push(format!("[b{n}]"));
            }
            Segment::Clip {
                source, indexes, ..
            } => {
                let src = &sources[*source];
                let lo = indexes.iter().copied().min().unwrap_or(0);
                let hi = indexes.iter().copied().max().unwrap_or(0);
                // Read no further than a frame past the last one used: `trim` cuts exactly,
                // this only spares decoding the product's tail (time-based, hence the margin).
                args.push("-t".into());
                args.push(seconds(hi + 2, counting.rate).into());
                args.push("-i".into());
                let mut path = OsString::from("file:");
                path.push(&src.path);
                args.push(path);
                let scale = if (src.width, src.height) == (width, height) {
                    String::new()
                } else {
                    format!(",scale={width}:{height}")
                };
                let runs = runs(indexes);
                let head = format!(
                    "[{input}:v]trim=start_frame={lo}:end_frame={},setpts=PTS-STARTPTS{scale},setsar=1",
                    hi + 1
                );
                if let [only] = runs.as_slice() {
                    graph.push(format!("{head},{}[c{n}]", run_filter(*only, lo)));
                    labels.push(format!("[c{n}]"));
                } else {
                    let outs: String = (0..runs.len()).map(|r| format!("[s{n}_{r}]")).collect();
                    graph.push(format!("{head},split={}{outs}", runs.len()));
                    for (r, run) in runs.iter().enumerate() {
                        graph.push(format!("[s{n}_{r}]{}[c{n}_{r}]", run_filter(*run, lo)));
                        labels.push(format!("[c{n}_{r}]"));
                    }
                }
                input += 1;
            }
        }
    }
    graph.push(format!(
        "{}concat=n={}:v=1:a=0,settb=expr={}/{},setpts=N[out]",
        labels.concat(),
        labels.len(),
        rate.den,
        rate.num
    ));
    args.push("-filter_complex".into());
    args.push(graph.join(";").into());
    for a in ["-map", "[out]", "-map_metadata", "-1", "-an"] {
        args.push(a.into());
    }
    args.push("-r".into());
    args.push(format!("{}/{}", rate.num, rate.den).into());
    let codec_args: &[&str] = match codec {
        Codec::ProresHq => &[
            "-c:v",
            "prores_ks",
            "-profile:v",
            "3",
            "-vendor",
            "apl0",
            "-pix_fmt",
            "yuv422p10le",
        ],
        Codec::Ffv1 => &["-c:v", "ffv1"],
    };
    args.extend(codec_args.iter().map(OsString::from));
    args.push("-timecode".into());
    args.push(timecode.into());
    args.push("-f".into());
    args.push("mov".into());
    let mut out = OsString::from("file:");
    out.push(output);
    args.push(out);
    args
}

/// `frames` at `rate` in seconds, as ffmpeg's time options take them (exact to the
/// microsecond, rounded up).
fn seconds(frames: i64, rate: crate::media::timecode::Rate) -> String {
    let micros = (i128::from(frames) * 1_000_000 * i128::from(rate.den))
        .div_euclid(i128::from(rate.num))
        + 1;
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// The filter showing `run` from a stream whose frame 0 is product index `lo`.
fn run_filter(run: Run, lo: i64) -> String {
    match run {
        Run::Forward { from, len } => format!(
            "trim=start_frame={}:end_frame={},setpts=PTS-STARTPTS",
            from - lo,
            from - lo + len
        ),
        Run::Backward { from, len } => format!(
            "trim=start_frame={}:end_frame={},setpts=PTS-STARTPTS,reverse",
            from - lo - len + 1,
            from - lo + 1
        ),
        Run::Hold { at, len } => format!(
            "trim=start_frame={}:end_frame={},setpts=PTS-STARTPTS,loop=loop={}:size=1:start=0",
            at - lo,
            at - lo + 1,
            len - 1
        ),
    }
}

#[cfg(test)]
mod tests;
