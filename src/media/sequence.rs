//! Image sequences: grouping frames into `sh010_comp_v001.####.tif`, gaps, and the contiguous
//! view ffmpeg is given.
//!
//! The frame number is the last number before the extension, after a `.` or `_`, with an
//! optional `-` (so `_v001` is part of the name, never a frame). Frames group by folder, the
//! text before and after the number, and padding. Padding is the digit count (minus sign
//! included, as printf counts it) when a frame has a leading zero; a frame without one joins
//! a padded group it prints identically in (`1001` in `%04d`), else an unpadded group (`%d`).
//!
//! ffmpeg stops silently at the first missing frame and ignores negative start numbers, so a
//! sequence with gaps or negative frames is given to it as a *view*: a folder of symlinks
//! numbered contiguously from a non-negative start.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The `####` paths of the sequences a frame may belong to, most likely first: the padding
/// the frame is written with, then each shorter one (`10000` belongs to a `####` sequence,
/// `7` may belong to any). Empty when the name has no frame number.
pub fn sequence_paths(frame: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (frame.parent(), frame.file_name()) else {
        return Vec::new();
    };
    let Some(parsed) = FrameName::parse(name.as_encoded_bytes()) else {
        return Vec::new();
    };
    (1..=parsed.digits.len())
        .rev()
        .map(|pad| {
            let mut hashes = parsed.head.clone();
            hashes.extend(std::iter::repeat_n(b'#', pad));
            hashes.extend_from_slice(&parsed.tail);
            dir.join(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(hashes))
        })
        .collect()
}

/// A file name split around its frame number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameName {
    /// Everything before the number, separator included: `sh010_comp_v001.`.
    pub head: Vec<u8>,
    /// The number as written: `1001`, `-003`, `7`.
    pub digits: Vec<u8>,
    /// The frame number.
    pub frame: i64,
    /// Everything after the number: `.tif`.
    pub tail: Vec<u8>,
}

impl FrameName {
    /// Splits a file name; `None` when it carries no frame number.
    pub fn parse(name: &[u8]) -> Option<FrameName> {
        let (start, end, frame) = Self::locate(name)?;
        Some(FrameName {
            head: name[..start].to_vec(),
            digits: name[start..end].to_vec(),
            frame,
            tail: name[end..].to_vec(),
        })
    }

    /// Just the frame number [`parse`](Self::parse) reads, without copying the name's parts:
    /// routing by the cut asks it of every arrival.
    pub fn number(name: &[u8]) -> Option<i64> {
        Self::locate(name).map(|(_, _, frame)| frame)
    }

    /// Where the number is (`start..end`, sign included) and its value.
    fn locate(name: &[u8]) -> Option<(usize, usize, i64)> {
        let dot = name.iter().rposition(|&b| b == b'.').filter(|&i| i > 0);
        dot.and_then(|d| Self::split_at(name, d))
            .or_else(|| Self::split_at(name, name.len()))
    }

    /// Tries the number ending at `end` (where the tail starts).
    fn split_at(name: &[u8], end: usize) -> Option<(usize, usize, i64)> {
        let digits = name[..end]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > 18 {
            return None;
        }
        let mut start = end - digits;
        if start >= 2 && name[start - 1] == b'-' && matches!(name[start - 2], b'.' | b'_') {
            start -= 1;
        }
        if start == 0 || !matches!(name[start - 1], b'.' | b'_') {
            return None;
        }
        let frame = std::str::from_utf8(&name[start..end]).ok()?.parse().ok()?;
        Some((start, end, frame))
    }

    /// The width printf pads to when the number has a leading zero (`0012`, `-003`).
    fn explicit_pad(&self) -> Option<usize> {
        let unsigned = self.digits.strip_prefix(b"-").unwrap_or(&self.digits);
        (unsigned.len() > 1 && unsigned[0] == b'0').then_some(self.digits.len())
    }
}

/// `%0Nd` as printf writes it: the width includes the minus sign.
pub fn pad_frame(frame: i64, pad: usize) -> String {
    format!("{frame:0pad$}")
}

/// One frame of a sequence on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame number.
    pub number: i64,
    /// The file's name in the sequence's folder.
    pub name: OsString,
}

/// Frames of one sequence: same folder, name parts and padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// The folder.
    pub dir: PathBuf,
    /// Name before the frame number, separator included.
    pub head: Vec<u8>,
    /// Name after the frame number.
    pub tail: Vec<u8>,
    /// printf width; 0 for unpadded.
    pub pad: usize,
    /// The frames, in frame order.
    pub frames: Vec<Frame>,
}

/// The key frames are first gathered under, before padding splits them.
pub type GroupKey = (Vec<u8>, Vec<u8>);

/// Groups file names of one folder into sequences; names without a frame number are skipped.
pub fn group<'a>(dir: &Path, names: impl IntoIterator<Item = &'a OsStr>) -> Vec<Sequence> {
    let mut by_key: BTreeMap<GroupKey, Vec<(FrameName, OsString)>> = BTreeMap::new();
    for name in names {
        if let Some(parsed) = FrameName::parse(name.as_bytes()) {
            by_key
                .entry((parsed.head.clone(), parsed.tail.clone()))
                .or_default()
                .push((parsed, name.to_os_string()));
        }
    }
    let mut out = Vec::new();
    for ((head, tail), frames) in by_key {
        // Padded groups come from leading zeros; other frames join one they print alike in.
        let mut groups: BTreeMap<usize, Vec<Frame>> = BTreeMap::new();
        for (parsed, _) in &frames {
            if let Some(pad) = parsed.explicit_pad() {
                groups.entry(pad).or_default();
            }
        }
        let mut loose = Vec::new();
        for (parsed, name) in frames {
            let frame = Frame {
                number: parsed.frame,
                name,
            };
            let home = parsed.explicit_pad().or_else(|| {
                groups
                    .keys()
                    .copied()
                    .find(|&pad| pad_frame(parsed.frame, pad).as_bytes() == parsed.digits)
            });
            match home {
                Some(pad) => groups.entry(pad).or_default().push(frame),
                None => loose.push((parsed.digits.len(), frame)),
            }
        }
        if !loose.is_empty() {
            // All the same length (`1001`…`1048`): that width; else unpadded (`%d`).
            let width = loose[0].0;
            let pad = if loose.iter().all(|(w, _)| *w == width) {
                width
            } else {
                0
            };
            let entry = groups.entry(pad).or_default();
            entry.extend(loose.into_iter().map(|(_, f)| f));
        }
        for (pad, mut frames) in groups {
            if frames.is_empty() {
                continue;
            }
            frames.sort_by_key(|f| f.number);
            frames.dedup_by_key(|f| f.number);
            out.push(Sequence {
                dir: dir.to_path_buf(),
                head: head.clone(),
                tail: tail.clone(),
                pad,
                frames,
            });
        }
    }
    out
}

/// Reads a folder and returns its sequences with the given name parts.
///
/// # Errors
/// The folder cannot be read.
pub fn scan(dir: &Path, head: &[u8], tail: &[u8]) -> std::io::Result<Vec<Sequence>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let b = name.as_bytes();
        if b.starts_with(head) && b.ends_with(tail) && b.len() > head.len() + tail.len() {
            names.push(name);
        }
    }
    Ok(group(dir, names.iter().map(OsString::as_os_str)))
}

/// How a sequence with missing frames is handed to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnGaps {
    /// Log the missing frames and run on the frames present, back to back.
    #[default]
    Warn,
    /// Record a failed job naming the missing frames; run nothing.
    Fail,
    /// Run on a view where each missing frame repeats the previous one, so timing is kept.
    Hold,
}

impl OnGaps {
    /// The name used in `rules.yaml` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            OnGaps::Warn => "warn",
            OnGaps::Fail => "fail",
            OnGaps::Hold => "hold",
        }
    }
}

impl Sequence {
    /// `sh010_comp_v001.####.tif` (`#` alone when unpadded).
    pub fn hashes_name(&self) -> OsString {
        let mut name = self.head.clone();
        name.extend(std::iter::repeat_n(b'#', self.pad.max(1)));
        name.extend_from_slice(&self.tail);
        OsString::from_vec(name)
    }

    /// The sequence's identity: its folder joined with [`Sequence::hashes_name`].
    pub fn hashes_path(&self) -> PathBuf {
        self.dir.join(self.hashes_name())
    }

    /// `sh010_comp_v001`: the head without its trailing separator.
    pub fn name(&self) -> &[u8] {
        self.head
            .strip_suffix(b".")
            .or_else(|| self.head.strip_suffix(b"_"))
            .unwrap_or(&self.head)
    }

    /// The path of one frame.
    pub fn frame_path(&self, frame: &Frame) -> PathBuf {
        self.dir.join(&frame.name)
    }

    /// Frames absent from `range` (first..=last present frames when `None`), as ranges.
    pub fn missing(&self, range: Option<(i64, i64)>) -> Vec<(i64, i64)> {
        let Some((first, last)) = range.or_else(|| self.span()) else {
            return Vec::new();
        };
        let mut gaps = Vec::new();
        let mut next = first;
        for f in self.frames.iter().map(|f| f.number) {
            if f < first || f > last {
                continue;
            }
            if f > next {
                gaps.push((next, f - 1));
            }
            next = f + 1;
        }
        if next <= last {
            gaps.push((next, last));
        }
        gaps
    }

    /// First and last frame present.
    pub fn span(&self) -> Option<(i64, i64)> {
        Some((self.frames.first()?.number, self.frames.last()?.number))
    }

    /// Drops frames outside `first..=last`.
    pub fn restrict(&mut self, first: i64, last: i64) {
        self.frames.retain(|f| (first..=last).contains(&f.number));
    }
}

/// `1001-1010,1013,1015-1020`.
pub fn format_ranges(ranges: &[(i64, i64)]) -> String {
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `1001-1048` (also `-10--5` and a single frame).
///
/// # Errors
/// A hint on the syntax.
pub fn parse_range(text: &str) -> Result<(i64, i64), String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a frame range; write FIRST-LAST, e.g. `1001-1048`");
    let split = text
        .char_indices()
        .skip(1)
        .find(|&(i, c)| c == '-' && text.as_bytes()[i - 1].is_ascii_digit())
        .map(|(i, _)| i);
    let (a, b) = match split {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, text),
    };
    let a: i64 = a.parse().map_err(|_| bad())?;
    let b: i64 = b.parse().map_err(|_| bad())?;
    if b < a {
        return Err(format!("`{text}`: the last frame comes before the first"));
    }
    Ok((a, b))
}

/// What one sequence job reads: the frames in order, and where ffmpeg finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// First frame number of the job (its timecode is this frame's).
    pub first: i64,
    /// Last frame number.
    pub last: i64,
    /// Frames the input holds (missing ones repeated under `hold`).
    pub count: usize,
    /// Missing frames, as ranges.
    pub missing: Vec<(i64, i64)>,
    /// printf pattern for ffmpeg's `-i`, absolute.
    pub pattern: PathBuf,
    /// The number to pass to `-start_number`: the first number in `pattern`.
    pub start: i64,
    /// Symlinks to create before the job (link, target), when ffmpeg needs a view.
    pub view: Option<View>,
}

/// A folder of symlinks numbered contiguously, made before a job and removed after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct View {
    /// The folder.
    #[serde(with = "crate::os::path_text::path")]
    pub dir: PathBuf,
    /// (link, target) pairs.
    #[serde(with = "crate::os::path_text::pairs")]
    pub links: Vec<(PathBuf, PathBuf)>,
}

impl View {
    /// Creates the folder and its links (replacing what a previous attempt left).
    ///
    /// # Errors
    /// The file system's.
    pub fn create(&self) -> std::io::Result<()> {
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir)?;
        for (link, target) in &self.links {
            std::os::unix::fs::symlink(target, link)?;
        }
        Ok(())
    }

    /// Removes the folder.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Escapes `%` for ffmpeg's image2 pattern.
fn printf_escape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if b == b'%' {
            out.push(b'%');
        }
        out.push(b);
    }
    out
}

/// Works out what a job over `seq` reads. `range` is the expected range (from `expect:`), and
/// `view_dir` where a view goes if one is needed.
pub fn reading(
    seq: &Sequence,
    range: Option<(i64, i64)>,
    on_gaps: OnGaps,
    view_dir: &Path,
) -> Option<Reading> {
    reading_with(seq, range, on_gaps, view_dir, false)
}

/// [`reading`], with a view even for contiguous frames when `only_these` is set: `seq` was cut
/// down to fewer frames than its folder holds (a rule's `frames:`), and ffmpeg reading the
/// folder's pattern would carry on past the last frame kept.
pub fn reading_with(
    seq: &Sequence,
    range: Option<(i64, i64)>,
    on_gaps: OnGaps,
    view_dir: &Path,
    only_these: bool,
) -> Option<Reading> {
    let (span_first, span_last) = seq.span()?;
    let missing = seq.missing(range);
    let (first, last) = match (on_gaps, range) {
        (OnGaps::Hold, Some(r)) => r,
        _ => (span_first, span_last),
    };
    let frames: Vec<&Frame> = match on_gaps {
        OnGaps::Hold => {
            // Every number in first..=last: the frame, else the one before (the first present
            // when the range starts with a gap).
            let mut out = Vec::new();
            let mut present = seq.frames.iter().peekable();
            let mut held = &seq.frames[0];
            for n in first..=last {
                while let Some(f) = present.peek() {
                    if f.number > n {
                        break;
                    }
                    held = f;
                    present.next();
                }
                out.push(held);
            }
            out
        }
        _ => seq.frames.iter().collect(),
    };
    let contiguous = frames.len() as i64 == last - first + 1
        && frames.iter().zip(first..).all(|(f, n)| f.number == n);
    if contiguous && first >= 0 && !only_these {
        let mut name = printf_escape(&seq.head);
        name.extend_from_slice(if seq.pad == 0 {
            b"%d".as_slice()
        } else {
            b"%0"
        });
        if seq.pad > 0 {
            name.extend_from_slice(format!("{}d", seq.pad).as_bytes());
        }
        name.extend_from_slice(&printf_escape(&seq.tail));
        let dir = OsStr::from_bytes(&printf_escape(seq.dir.as_os_str().as_bytes())).to_owned();
        return Some(Reading {
            first,
            last,
            count: frames.len(),
            missing,
            pattern: PathBuf::from(dir).join(OsString::from_vec(name)),
            start: first,
            view: None,
        });
    }
    // A view: numbered from the first frame, or from 0 when that is negative.
    let start = first.max(0);
    let ext: Vec<u8> = match seq.tail.iter().rposition(|&b| b == b'.') {
        Some(dot) => seq.tail[dot + 1..]
            .iter()
            .copied()
            .filter(u8::is_ascii_alphanumeric)
            .collect(),
        None => Vec::new(),
    };
    let ext = String::from_utf8_lossy(&ext).into_owned();
    let suffix = if ext.is_empty() {
        String::new()
    } else {
        format!(".{ext}")
    };
    let links = frames
        .iter()
        .zip(start..)
        .map(|(f, n)| {
            (
                view_dir.join(format!("f.{n:09}{suffix}")),
                seq.frame_path(f),
            )
        })
        .collect();
    let dir = OsStr::from_bytes(&printf_escape(view_dir.as_os_str().as_bytes())).to_owned();
    Some(Reading {
        first: frames.first().map_or(first, |f| {
            if on_gaps == OnGaps::Hold {
                first
            } else {
                f.number
            }
        }),
        last,
        count: frames.len(),
        missing,
        pattern: PathBuf::from(dir).join(format!("f.%09d{suffix}")),
        start,
        view: Some(View {
            dir: view_dir.to_path_buf(),
            links,
        }),
    })
}

/// The variables a sequence rule adds (route binds them, see `route::plan`).
pub const VARIABLES: &[&str] = &[
    "seq.first",
    "seq.last",
    "seq.count",
    "seq.range",
    "seq.pattern",
    "seq.start",
    "seq.hashes",
    "seq.name",
    "seq.missing",
];

#[cfg(test)]
mod tests;
