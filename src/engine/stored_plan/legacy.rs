//! Plans written by earlier releases (formats 1 to 4, "portable plans"): read, never written,
//! so a job queued before an upgrade still runs. This file is frozen: new keys go into
//! [`JobPlan`] alone.

use std::ffi::OsString;
use std::time::Duration;

use serde::Deserialize;

use crate::deliver::ale::{AleClip, AleSheet};
use crate::deliver::copy::{TransferKind, TransferPlan};
use crate::deliver::hash::HashKind;
use crate::deliver::publish::OutputPaths;
use crate::deliver::verify::Expectations;
use crate::exec::plan::{JobPlan, PortableNotify};
use crate::media::sequence::View;
use crate::os::path_text::unescape;

use super::super::mounts::MountFact;
use super::StoredPlan;

/// What the watcher knew when it planned the job, beyond its argv.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct PortablePlan {
    /// The plan's format: 1, or the lowest later one whose features it carries.
    format: u32,
    /// The watcher's roots: (name, path on the watcher), escaped text (`%` and non-UTF-8 bytes escaped).
    roots: Vec<(String, String)>,
    /// Output folders outside the roots, on the watcher.
    outputs: Vec<String>,
    /// The product's final and temp paths, on the watcher.
    output: Option<(String, String)>,
    /// Longest the job may run, ms.
    timeout_ms: Option<u64>,
    /// Attempts after the first.
    retries: u32,
    /// Wait before the first retry, ms (doubling after).
    backoff_ms: u64,
    /// `verify:` checks.
    verify: Option<Vec<(String, String)>>,
    /// `verify: {decode: true}`: the product must decode, frame by frame.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    decode: bool,
    /// A sequence's view folder and its links, on the watcher.
    view: Option<(String, Vec<(String, String)>)>,
    /// Perforations per frame of the rule's film format, for a DPX header's KeyKode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    perfs_per_frame: Option<u32>,
    /// The rule's KeyKode stock codes (manufacturer, film type), for a header's KeyKode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stock_codes: Option<(u32, u32)>,
    /// The ALE published beside the product: its path on the watcher (escaped as `roots`) and rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ale: Option<PortableAle>,
    /// The rule's `copy:`/`move:`, its paths on the watcher (escaped as `roots`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transfer: Option<PortableTransfer>,
    /// The mounts of `roots` and `outputs` on the watcher: where a worker may use the same
    /// paths without a `--map`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mounts: Vec<MountFact>,
    /// The rule's `notify:` targets: the node that runs the job tells them of its end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    notify: Vec<PortableNotify>,
    /// Whether ffmpeg steps report their progress (`progress: ffmpeg`); an older worker that
    /// ignores it only shows none, so it needs no new format.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    progress: bool,
    /// Frames the input holds, when the watcher knew (a sequence): the progress total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total_frames: Option<u64>,
}

/// A [`TransferPlan`] in text form.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct PortableTransfer {
    /// `copy` or `move`.
    kind: String,
    /// The destination file on the watcher, escaped text.
    to: String,
    /// The hash names (`xxh64`...).
    hashes: Vec<String>,
    /// The ASC MHL folder on the watcher, escaped text.
    mhl_root: Option<String>,
}

/// An [`AleSheet`] with its path in text form.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct PortableAle {
    /// The ALE's final path on the watcher, escaped text (`%` and non-UTF-8 bytes escaped).
    path: String,
    /// `FPS`.
    fps: String,
    /// `VIDEO_FORMAT`.
    video_format: String,
    /// The rows.
    clips: Vec<AleClip>,
}

/// A plan of an earlier release as today's, its argv from the job's `steps` (those plans did
/// not carry it).
pub(super) fn read(text: &str, steps: &[Vec<OsString>]) -> Result<StoredPlan, String> {
    let old: PortablePlan =
        serde_json::from_str(text).map_err(|e| format!("unreadable job plan: {e}"))?;
    let ale = old.ale.map(|ale| AleSheet {
        final_path: unescape(&ale.path),
        fps: ale.fps,
        video_format: ale.video_format,
        clips: ale.clips,
    });
    let transfer = match old.transfer {
        Some(t) => Some(TransferPlan {
            kind: match t.kind.as_str() {
                "copy" => TransferKind::Copy,
                "move" => TransferKind::Move,
                other => return Err(format!("unknown delivery `{other}` in the job's plan")),
            },
            to: unescape(&t.to),
            hashes: t
                .hashes
                .iter()
                .map(|h| {
                    HashKind::parse(h)
                        .ok_or_else(|| format!("unknown hash `{h}` in the job's plan"))
                })
                .collect::<Result<_, _>>()?,
            mhl_root: t.mhl_root.as_deref().map(unescape),
        }),
        None => None,
    };
    Ok(StoredPlan {
        format: old.format,
        roots: old
            .roots
            .iter()
            .map(|(name, path)| (name.clone(), unescape(path)))
            .collect(),
        outputs: old.outputs.iter().map(|p| unescape(p)).collect(),
        mounts: old.mounts,
        job: JobPlan {
            steps: steps.to_vec(),
            output: old.output.map(|(final_path, temp_path)| OutputPaths {
                final_path: unescape(&final_path),
                temp_path: unescape(&temp_path),
                ale,
            }),
            view: old.view.map(|(dir, links)| View {
                dir: unescape(&dir),
                links: links
                    .iter()
                    .map(|(l, t)| (unescape(l), unescape(t)))
                    .collect(),
            }),
            verify: old.verify.map(|checks| Expectations {
                checks,
                perfs_per_frame: old.perfs_per_frame,
                stock_codes: old.stock_codes,
                decode: old.decode,
            }),
            transfer,
            timeout: old.timeout_ms.map(Duration::from_millis),
            retries: old.retries,
            backoff: Duration::from_millis(old.backoff_ms),
            progress: old.progress,
            thumbnail: false,
            total_frames: old.total_frames,
            notify: old.notify,
            slurm: None,
            inputs: Vec::new(),
            work_hash: String::new(),
            openlineage: None,
        },
    })
}
