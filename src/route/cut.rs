//! Routing by the cut: which shot a file is (the rule's `shot` capture), its frame number (the
//! sequence parser's), the shot's ranges in the latest cut that shows it, and what a rule's
//! `frames:` makes of the frame. The index is built from stored revisions and swapped whole;
//! classifying a frame is a hash look-up and a few integer compares.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use crate::edit::{FrameClass, ItemRange, ShotRange};
use crate::media::sequence::{FrameName, Sequence};
use crate::rules::Rule;
use crate::rules::template::Bindings;
use crate::store::StoreError;
use crate::store::cuts::{CutRevision, CutStore};

/// A shot's ranges in the latest revision of the most recently imported cut that shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShotCut {
    /// The cut's name.
    pub cut: String,
    /// Its latest revision.
    pub revision: i64,
    /// The shot's frames there (items included: a shot used twice has a handle between).
    pub range: ShotRange,
}

impl ShotCut {
    /// Where `frame` falls.
    pub fn classify(&self, frame: i64) -> FrameClass {
        let r = &self.range;
        // Most frames of a show are far from any cut edge: the common answer costs two compares.
        if frame < r.head_in || frame > r.tail_out {
            FrameClass::Outside
        } else {
            r.classify(frame)
        }
    }

    /// Sets `{cut.head_in}`, `{cut.in}`, `{cut.out}`, `{cut.tail_out}`, `{cut.name}`,
    /// `{cut.revision}`.
    pub fn bind(&self, vars: &mut Bindings) {
        let r = &self.range;
        vars.insert("cut.head_in", r.head_in.to_string());
        vars.insert("cut.in", r.cut_in.to_string());
        vars.insert("cut.out", r.cut_out.to_string());
        vars.insert("cut.tail_out", r.tail_out.to_string());
        vars.insert("cut.name", self.cut.as_bytes());
        vars.insert("cut.revision", self.revision.to_string());
    }

    /// Why `frame` of `shot` is left out, or what it is: ``frame 1003 of `sh010` is a handle
    /// (cut 1009-1056, cut `reel1` rev 2)``.
    pub fn describe(&self, shot: &str, frame: i64, class: FrameClass) -> String {
        let r = &self.range;
        let what = match class {
            FrameClass::InCut => "in the cut",
            FrameClass::Handle => "a handle",
            FrameClass::Outside => "outside the cut",
        };
        format!(
            "frame {frame} of `{shot}` is {what} (cut {}-{}, handles {}-{}, cut `{}` rev {})",
            r.cut_in, r.cut_out, r.head_in, r.tail_out, self.cut, self.revision
        )
    }
}

/// Every shot's [`ShotCut`], by shot name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutIndex {
    shots: HashMap<String, Arc<ShotCut>>,
}

impl CutIndex {
    /// The index of `revisions` (each cut's latest): a shot shown by several cuts takes the
    /// most recently imported one.
    pub fn of(revisions: &[CutRevision]) -> CutIndex {
        let mut latest: Vec<&CutRevision> = revisions.iter().collect();
        latest.sort_by_key(|r| (r.imported_at, r.revision));
        let mut shots = HashMap::new();
        for revision in latest {
            for s in revision.present() {
                let range = ShotRange {
                    head_in: s.head_in,
                    cut_in: s.cut_in,
                    cut_out: s.cut_out,
                    tail_out: s.tail_out,
                    source_in: s.source_in,
                    items: s
                        .items
                        .iter()
                        .enumerate()
                        .map(|(item, i)| ItemRange {
                            item,
                            first: i.first.min(i.last),
                            last: i.first.max(i.last),
                        })
                        .collect(),
                };
                let shot = ShotCut {
                    cut: revision.name.clone(),
                    revision: revision.revision,
                    range,
                };
                shots.insert(s.shot.clone(), Arc::new(shot));
            }
        }
        CutIndex { shots }
    }

    /// The latest revision of every cut in `store`, indexed.
    ///
    /// # Errors
    /// Database errors; a stored revision that does not read back.
    pub fn load(store: &dyn CutStore) -> Result<CutIndex, StoreError> {
        Ok(CutIndex::of(&store.latest_revisions()?))
    }

    /// `shot`'s cut, if any cut shows it.
    pub fn get(&self, shot: &str) -> Option<&Arc<ShotCut>> {
        self.shots.get(shot)
    }

    /// Whether no cut shows any shot.
    pub fn is_empty(&self) -> bool {
        self.shots.is_empty()
    }
}

/// The shot `rel` belongs to by `rule`'s `shot` capture (`None` without one, no match, or a
/// capture that is not UTF-8: cuts name shots in text). Borrowed from `rel`: no allocation.
pub fn shot_of<'a>(rule: &Rule, rel: &'a Path) -> Option<&'a str> {
    let regex = rule.regex.as_ref()?;
    // Checked first: a rule without the capture costs no second run of its regex.
    if !regex.capture_names().flatten().any(|c| c == "shot") {
        return None;
    }
    let captures = regex.captures(rel.as_os_str().as_bytes())?;
    let shot = captures.name("shot")?;
    std::str::from_utf8(&rel.as_os_str().as_bytes()[shot.range()]).ok()
}

/// The frame number in `rel`'s file name, as the sequence parser reads it.
pub fn frame_of(rel: &Path) -> Option<i64> {
    let bytes = rel.as_os_str().as_bytes();
    // An arrival's name is what follows its last `/`; `Path::file_name` parses every
    // component to say so, and is kept for the odd path (`a/`, `a/.`, `..`).
    let name = match bytes.rsplit(|&b| b == b'/').next() {
        Some(name) if !matches!(name, b"" | b"." | b"..") => name,
        _ => rel.file_name()?.as_bytes(),
    };
    FrameName::number(name)
}

/// Drops the frames of `sequence` (whose first frame is `rel`) that `rule`'s `frames:` leaves
/// out, before the job is planned, so `{seq.*}`, timecode and KeyKode describe what is kept.
/// Returns the cut it went by and how many frames it dropped; `None` when it kept them all
/// by rule (`frames: all`, no shot, no cut yet).
pub fn restrict_sequence(
    index: &CutIndex,
    rule: &Rule,
    rel: &Path,
    sequence: &mut Sequence,
) -> Option<(Arc<ShotCut>, usize)> {
    if rule.frames == crate::rules::FrameScope::All {
        return None;
    }
    let cut = index.get(shot_of(rule, rel)?)?.clone();
    let before = sequence.frames.len();
    sequence
        .frames
        .retain(|f| rule.frames.allows(cut.classify(f.number)));
    Some((cut, before - sequence.frames.len()))
}

/// What a rule's `frames:` makes of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Processed: `frames: all`, no shot, no frame number, or no cut yet for the shot.
    Unlimited,
    /// The frame is in the allowed range.
    Allowed(FrameClass),
    /// The frame is left out; the reason says why.
    Skipped(String),
}

/// What `rule` does with the file `rel`, by the cut of its shot.
pub fn verdict(index: &CutIndex, rule: &Rule, rel: &Path) -> Verdict {
    if rule.frames == crate::rules::FrameScope::All || index.is_empty() {
        return Verdict::Unlimited;
    }
    let (Some(shot), Some(frame)) = (shot_of(rule, rel), frame_of(rel)) else {
        return Verdict::Unlimited;
    };
    let Some(cut) = index.get(shot) else {
        return Verdict::Unlimited;
    };
    let class = cut.classify(frame);
    if rule.frames.allows(class) {
        Verdict::Allowed(class)
    } else {
        Verdict::Skipped(cut.describe(shot, frame, class))
    }
}

#[cfg(test)]
mod tests;
