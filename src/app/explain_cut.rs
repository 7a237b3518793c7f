//! What `explain` says of a frame and the cut: for a rule that names its shot (a `shot`
//! capture), whether the frame is in the cut, a handle or outside (with the ranges and the cut
//! it is from), whether the rule's `frames:` runs it, or that the shot has no cut yet.

use std::path::Path;

use serde::Serialize;

use crate::edit::FrameClass;
use crate::route::cut::{CutIndex, frame_of, shot_of};
use crate::rules::{FrameScope, Rule};

/// A frame against its shot's cut.
#[derive(Debug, Clone, Serialize)]
pub struct CutReport {
    /// The shot, by the rule's `shot` capture.
    pub shot: String,
    /// The frame number in the file name.
    pub frame: i64,
    /// `in`, `handle`, `outside`, or `none` when no cut shows the shot yet.
    pub class: &'static str,
    /// The rule's `frames:`.
    pub frames: &'static str,
    /// Whether the rule runs on this frame.
    pub runs: bool,
    /// Where the frame falls, and by which cut; or that the shot is processed as `all`.
    pub detail: String,
}

/// The cut line of a match, when the rule names a shot and the file has a frame number.
pub fn cut_report(cuts: &CutIndex, rule: &Rule, rel: &Path) -> Option<CutReport> {
    let shot = shot_of(rule, rel)?.to_string();
    let frame = frame_of(rel)?;
    let frames = rule.frames.as_str();
    Some(match cuts.get(&shot) {
        Some(cut) => {
            let class = cut.classify(frame);
            CutReport {
                detail: cut.describe(&shot, frame, class),
                class: match class {
                    FrameClass::InCut => "in",
                    FrameClass::Handle => "handle",
                    FrameClass::Outside => "outside",
                },
                shot,
                frame,
                frames,
                runs: rule.frames.allows(class),
            }
        }
        None => CutReport {
            detail: format!("no cut shows `{shot}` yet: processed as `all`"),
            class: "none",
            shot,
            frame,
            frames,
            runs: true,
        },
    })
}

/// `cut: handle; frame 1003 of `sh010` is a handle (...); not run (`frames: in_cut`)`.
pub fn render(report: &CutReport) -> String {
    let verdict = match (report.runs, report.frames) {
        (false, frames) => format!("; skipped (`frames: {frames}`)"),
        (true, frames) if frames != FrameScope::All.as_str() && report.class != "none" => {
            format!("; runs (`frames: {frames}`)")
        }
        _ => String::new(),
    };
    format!("cut: {}; {}{verdict}", report.class, report.detail)
}
