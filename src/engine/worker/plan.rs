//! A job's portable plan: what a worker on another machine needs to run it without the rules
//! file, stored with the job (the store keeps it as opaque text). The watcher that planned the
//! job wrote absolute paths of its own mounts into the argv, the product and the sequence view;
//! a worker maps each of its roots (and output folders) to where that tree is mounted on the
//! worker (`--map shots=/mnt/shots`, Tdarr's path translators), refusing a job whose paths it
//! cannot map. Without a `--map`, a worker uses the watcher's own path only where its mounts
//! match the facts the watcher recorded ([`super::mounts`]).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deliver::ale::{AleClip, AleSheet};
use crate::deliver::copy::{TransferKind, TransferPlan};
use crate::deliver::hash::HashKind;
use crate::deliver::publish::OutputPaths;
use crate::deliver::verify::Expectations;
use crate::exec::runner::JobSpec;
use crate::media::sequence::View;
use crate::rules::NotifyTarget;
use crate::store::queue::ClaimedJob;

use super::mounts::{self, LocalMounts, MountFact, Unmapped, WatcherMounts};
use super::path_text::{escape, unescape};

/// The plan's format; a worker refuses plans of a newer one. A plan that needs nothing of a
/// later format is written as format 1, so older workers keep taking it.
const FORMAT: u32 = 4;

/// Format 2: a KeyKode header check's perforations per frame and stock codes, and an ALE
/// beside the product, which a format-1 worker would silently drop.
const FORMAT_EDITORIAL: u32 = 2;

/// Format 3: a `copy:`/`move:`, which an older worker would silently skip (a job without
/// commands would then succeed having delivered nothing).
const FORMAT_TRANSFER: u32 = 3;

/// Format 4: mount facts, when a folder they cover is empty on the watcher. An older worker
/// ignores the facts and takes an empty folder for an unmounted mount point, declining the job
/// until it fails; refusing the format, it says to upgrade instead. Facts of non-empty folders
/// travel in plans of the older formats: an older worker judges those folders as before.
const FORMAT_MOUNTS: u32 = 4;
/// Format 4 also carries the rule's `notify:` targets, which an older worker would silently
/// not tell (the same release as the mount facts, hence the same number).
const FORMAT_NOTIFY: u32 = 4;
/// Format 4 also carries `verify: {decode: true}`, which an older worker would silently skip,
/// publishing a product whose frames it never decoded.
const FORMAT_DECODE: u32 = 4;

/// What the watcher knew when it planned the job, beyond its argv.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortablePlan {
    /// The plan's format: 1, or the lowest later one whose features it carries.
    pub format: u32,
    /// The watcher's roots: (name, path on the watcher), escaped text (`%` and non-UTF-8 bytes escaped).
    pub roots: Vec<(String, String)>,
    /// Output folders outside the roots, on the watcher.
    pub outputs: Vec<String>,
    /// The product's final and temp paths, on the watcher.
    pub output: Option<(String, String)>,
    /// Longest the job may run, ms.
    pub timeout_ms: Option<u64>,
    /// Attempts after the first.
    pub retries: u32,
    /// Wait before the first retry, ms (doubling after).
    pub backoff_ms: u64,
    /// `verify:` checks.
    pub verify: Option<Vec<(String, String)>>,
    /// `verify: {decode: true}`: the product must decode, frame by frame.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decode: bool,
    /// A sequence's view folder and its links, on the watcher.
    pub view: Option<(String, Vec<(String, String)>)>,
    /// Perforations per frame of the rule's film format, for a DPX header's KeyKode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perfs_per_frame: Option<u32>,
    /// The rule's KeyKode stock codes (manufacturer, film type), for a header's KeyKode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_codes: Option<(u32, u32)>,
    /// The ALE published beside the product: its path on the watcher (escaped as `roots`) and rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ale: Option<PortableAle>,
    /// The rule's `copy:`/`move:`, its paths on the watcher (escaped as `roots`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<PortableTransfer>,
    /// The mounts of `roots` and `outputs` on the watcher: where a worker may use the same
    /// paths without a `--map`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountFact>,
    /// The rule's `notify:` targets: the node that runs the job tells them of its end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<PortableNotify>,
    /// Whether ffmpeg steps report their progress (`progress: ffmpeg`); an older worker that
    /// ignores it only shows none, so it needs no new format.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progress: bool,
    /// Frames the input holds, when the watcher knew (a sequence): the progress total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_frames: Option<u64>,
}

/// A [`TransferPlan`] in text form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortableTransfer {
    /// `copy` or `move`.
    pub kind: String,
    /// The destination file on the watcher, escaped text.
    pub to: String,
    /// The hash names (`xxh64`...).
    pub hashes: Vec<String>,
    /// The ASC MHL folder on the watcher, escaped text.
    pub mhl_root: Option<String>,
}

/// An [`AleSheet`] with its path in text form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortableAle {
    /// The ALE's final path on the watcher, escaped text (`%` and non-UTF-8 bytes escaped).
    pub path: String,
    /// `FPS`.
    pub fps: String,
    /// `VIDEO_FORMAT`.
    pub video_format: String,
    /// The rows.
    pub clips: Vec<AleClip>,
}

impl PortablePlan {
    /// The plan of a job the watcher planned as `spec`, under `roots` and `outputs`.
    pub fn of(
        spec: &JobSpec,
        roots: &[(String, PathBuf)],
        outputs: &[PathBuf],
        retries: u32,
        backoff: Duration,
    ) -> PortablePlan {
        let ale = spec
            .output
            .as_ref()
            .and_then(|o| o.ale.as_ref())
            .map(|sheet| PortableAle {
                path: escape(&sheet.final_path),
                fps: sheet.fps.clone(),
                video_format: sheet.video_format.clone(),
                clips: sheet.clips.clone(),
            });
        let perfs_per_frame = spec.verify.as_ref().and_then(|v| v.perfs_per_frame);
        let stock_codes = spec.verify.as_ref().and_then(|v| v.stock_codes);
        let transfer = spec.transfer.as_ref().map(|t| PortableTransfer {
            kind: t.kind.as_str().to_string(),
            to: escape(&t.to),
            hashes: t.hashes.iter().map(|h| h.as_str().to_string()).collect(),
            mhl_root: t.mhl_root.as_ref().map(|r| escape(r)),
        });
        let decode = spec.verify.as_ref().is_some_and(|v| v.decode);
        PortablePlan {
            notify: Vec::new(),
            progress: spec.progress,
            total_frames: spec.total_frames,
            format: if decode {
                FORMAT_DECODE
            } else if transfer.is_some() {
                FORMAT_TRANSFER
            } else if ale.is_some() || perfs_per_frame.is_some() || stock_codes.is_some() {
                FORMAT_EDITORIAL
            } else {
                1
            },
            decode,
            transfer,
            mounts: Vec::new(),
            perfs_per_frame,
            stock_codes,
            ale,
            roots: roots.iter().map(|(n, p)| (n.clone(), escape(p))).collect(),
            outputs: outputs.iter().map(|p| escape(p)).collect(),
            output: spec
                .output
                .as_ref()
                .map(|o| (escape(&o.final_path), escape(&o.temp_path))),
            timeout_ms: spec.timeout.map(|t| t.as_millis() as u64),
            retries,
            backoff_ms: backoff.as_millis() as u64,
            verify: spec.verify.as_ref().map(|v| v.checks.clone()),
            view: spec.view.as_ref().map(|v| {
                (
                    escape(&v.dir),
                    v.links
                        .iter()
                        .map(|(l, t)| (escape(l), escape(t)))
                        .collect(),
                )
            }),
        }
    }

    /// The plan with the watcher's mount facts of its folders (raising its format when an
    /// older worker would misjudge one of them, see `FORMAT_MOUNTS`).
    #[must_use]
    pub fn with_mounts(mut self, mounts: &WatcherMounts) -> PortablePlan {
        self.mounts = mounts.facts.clone();
        if mounts.any_empty && !self.mounts.is_empty() {
            self.format = self.format.max(FORMAT_MOUNTS);
        }
        self
    }

    /// The plan with the rule's `notify:` targets, told by whichever node runs the job.
    pub fn notifying(mut self, targets: &[NotifyTarget]) -> PortablePlan {
        self.notify = targets.iter().map(PortableNotify::of).collect();
        if !self.notify.is_empty() {
            self.format = self.format.max(FORMAT_NOTIFY);
        }
        self
    }

    /// The watcher's mount fact of one of its folders.
    fn mount_of(&self, watcher: &Path) -> Option<&MountFact> {
        self.mounts.iter().find(|f| unescape(&f.path) == watcher)
    }

    /// The watcher's roots: name and path on the watcher.
    pub fn root_paths(&self) -> Vec<(String, PathBuf)> {
        self.roots
            .iter()
            .map(|(name, path)| (name.clone(), unescape(path)))
            .collect()
    }

    /// As stored with the job.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read back from the job.
    ///
    /// # Errors
    /// A plan this build cannot read.
    pub fn from_text(text: &str) -> Result<PortablePlan, String> {
        let plan: PortablePlan =
            serde_json::from_str(text).map_err(|e| format!("unreadable job plan: {e}"))?;
        if plan.format > FORMAT {
            return Err(format!(
                "the job was planned by a newer shotrouter (plan format {}); upgrade this worker",
                plan.format
            ));
        }
        Ok(plan)
    }
}

/// Where this worker finds each of the watcher's trees: (watcher path, local path) pairs.
#[derive(Debug, Clone, Default)]
pub struct PathMap {
    /// `--map` entries: a root's name or an absolute path on the watcher, and the local path.
    pub entries: Vec<(String, PathBuf)>,
}

impl PathMap {
    /// The local path of a watcher root or output folder: a `--map` for its name or its path,
    /// else the same path when this worker's mounts match the watcher's `fact` of it.
    fn local(
        &self,
        name: Option<&str>,
        watcher: &Path,
        fact: Option<&MountFact>,
        here: &LocalMounts,
    ) -> Result<PathBuf, Unmapped> {
        let by_name = name.and_then(|n| self.entries.iter().find(|(k, _)| k == n));
        let by_path = self.entries.iter().find(|(k, _)| Path::new(k) == watcher);
        match by_name.or(by_path) {
            Some((_, local)) => Ok(local.clone()),
            None => mounts::check(watcher, fact, here).map(|()| watcher.to_path_buf()),
        }
    }

    /// Each root of `plan` and whether this worker can map it (those it claims jobs of).
    pub fn mappable_roots(&self, plan: &PortablePlan) -> Vec<(String, bool)> {
        let roots = plan.root_paths();
        let here = LocalMounts::read(roots.iter().map(|(_, path)| path.as_path()));
        roots
            .into_iter()
            .map(|(name, path)| {
                let fact = plan.mount_of(&path);
                let ok = self.local(Some(&name), &path, fact, &here).is_ok();
                (name, ok)
            })
            .collect()
    }
}

/// How a failed attempt is tried again, from the rule the watcher planned with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Attempts after the first.
    pub retries: u32,
    /// Wait before the first retry (doubling after).
    pub backoff: Duration,
}

/// Builds what the runner needs from a claimed job: every watcher path mapped to this machine,
/// with how a failed attempt is retried and whom its end is told.
///
/// # Errors
/// A root or output folder this worker cannot map, a missing input, an unreadable plan: the
/// worker declines the job, leaving it to another node.
pub fn job_spec(
    job: &ClaimedJob,
    map: &PathMap,
    state_dir: &Path,
) -> Result<(JobSpec, Retries, Vec<Arc<NotifyTarget>>), String> {
    let plan = PortablePlan::from_text(&job.plan)?;
    let retries = Retries {
        retries: plan.retries,
        backoff: Duration::from_millis(plan.backoff_ms),
    };
    let folders: Vec<PathBuf> = plan
        .roots
        .iter()
        .map(|(_, text)| text)
        .chain(&plan.outputs)
        .map(|text| unescape(text))
        .collect();
    // Read after the folders were opened, so automounted shares show as mounted.
    let here = LocalMounts::read(folders.iter().map(PathBuf::as_path));
    let notify = plan
        .notify
        .iter()
        .filter_map(|n| n.to_target().transpose())
        .map(|t| t.map(Arc::new))
        .collect::<Result<_, _>>()?;
    let mut pairs: Vec<(PathBuf, PathBuf)> = Vec::new();
    // Folders this worker cannot use, and why: named when a path under one cannot be mapped.
    let mut unmapped: Vec<(PathBuf, Unmapped)> = Vec::new();
    let mut input_root = None;
    for (name, text) in &plan.roots {
        let watcher = unescape(text);
        match map.local(Some(name), &watcher, plan.mount_of(&watcher), &here) {
            Ok(local) => {
                if name == &job.input.root {
                    input_root = Some(local.clone());
                }
                pairs.push((watcher, local));
            }
            Err(why) if name == &job.input.root => {
                return Err(format!(
                    "root `{name}` ({}) is not mounted on this worker: {why}; give --map {name}=PATH",
                    watcher.display()
                ));
            }
            Err(why) => unmapped.push((watcher, why)),
        }
    }
    for text in &plan.outputs {
        let watcher = unescape(text);
        match map.local(None, &watcher, plan.mount_of(&watcher), &here) {
            Ok(local) => pairs.push((watcher, local)),
            Err(why) => unmapped.push((watcher, why)),
        }
    }
    let root = input_root
        .ok_or_else(|| format!("the job's root `{}` is not in its plan", job.input.root))?;
    let id = job.claim.id.to_string();
    let view_dir = state_dir.join("views").join(&id);
    if let Some((dir, _)) = &plan.view {
        pairs.push((unescape(dir), view_dir.clone()));
    }
    // Longest first, so a root nested in another maps by its own entry.
    pairs.sort_by_key(|(w, _)| std::cmp::Reverse(w.as_os_str().len()));
    let mapped = |p: &Path| -> Result<PathBuf, String> {
        pairs
            .iter()
            .find_map(|(w, l)| p.strip_prefix(w).ok().map(|rest| l.join(rest)))
            .ok_or_else(|| match unmapped
                .iter()
                .filter(|(w, _)| p.starts_with(w))
                .max_by_key(|(w, _)| w.as_os_str().len()) {
                Some((folder, why)) => format!(
                    "`{}` is under `{}`, which this worker cannot use: {why}; mount it, or give --map {}=PATH",
                    p.display(),
                    folder.display(),
                    folder.display()
                ),
                None => format!(
                    "`{}` is outside every tree this worker can map; give --map",
                    p.display()
                ),
            })
    };
    let path = root.join(&job.input.rel);
    let input_gone = if plan.view.is_some() {
        !path.parent().is_some_and(Path::is_dir)
    } else {
        std::fs::symlink_metadata(&path).is_err()
    };
    if input_gone {
        return Err(format!(
            "input `{}` is missing on this worker",
            path.display()
        ));
    }
    let ale = match &plan.ale {
        Some(ale) => Some(AleSheet {
            final_path: mapped(&unescape(&ale.path))?,
            fps: ale.fps.clone(),
            video_format: ale.video_format.clone(),
            clips: ale.clips.clone(),
        }),
        None => None,
    };
    let output = match &plan.output {
        Some((final_path, temp_path)) => Some(OutputPaths {
            final_path: mapped(&unescape(final_path))?,
            temp_path: mapped(&unescape(temp_path))?,
            ale,
        }),
        None => None,
    };
    let view = match &plan.view {
        Some((_, links)) => Some(View {
            dir: view_dir,
            links: links
                .iter()
                .map(|(l, t)| Ok((mapped(&unescape(l))?, mapped(&unescape(t))?)))
                .collect::<Result<_, String>>()?,
        }),
        None => None,
    };
    let transfer = match &plan.transfer {
        Some(t) => Some(TransferPlan {
            kind: match t.kind.as_str() {
                "copy" => TransferKind::Copy,
                "move" => TransferKind::Move,
                other => return Err(format!("unknown delivery `{other}` in the job's plan")),
            },
            to: mapped(&unescape(&t.to))?,
            hashes: t
                .hashes
                .iter()
                .map(|h| {
                    HashKind::parse(h)
                        .ok_or_else(|| format!("unknown hash `{h}` in the job's plan"))
                })
                .collect::<Result<_, _>>()?,
            mhl_root: match &t.mhl_root {
                Some(root) => Some(mapped(&unescape(root))?),
                None => None,
            },
        }),
        None => None,
    };
    let steps = job
        .steps
        .iter()
        .map(|argv| argv.iter().map(|arg| map_arg(arg, &pairs)).collect())
        .collect();
    let spec = JobSpec {
        transfer,
        log_path: state_dir
            .join("logs")
            .join(&job.rule)
            .join(format!("{id}.log")),
        id,
        rule: job.rule.clone(),
        path,
        steps,
        output,
        allowed_roots: pairs.iter().map(|(_, l)| l.clone()).collect(),
        timeout: plan.timeout_ms.map(Duration::from_millis),
        attempt: job.claim.attempt,
        claim: Some(job.claim),
        view,
        verify: plan.verify.map(|checks| Expectations {
            checks,
            perfs_per_frame: plan.perfs_per_frame,
            stock_codes: plan.stock_codes,
            decode: plan.decode,
        }),
        progress: plan.progress,
        total_frames: plan.total_frames,
    };
    Ok((spec, retries, notify))
}

/// An argument with every watcher path in it mapped: the whole argument, or each place where a
/// path starts inside it (at its start, or after `=`, `:`, `,` or a space: `-i=/mnt/shots/a.tif`,
/// `{out}` inside a longer one) with a mapped folder and a `/`. At each such place the longest
/// folder that matches decides, even when it maps to itself, so a shorter one never rewrites a
/// path inside a longer one; text that merely contains a folder's name elsewhere
/// (`--lut=/luts/shots/x`) is left alone.
fn map_arg(arg: &OsString, pairs: &[(PathBuf, PathBuf)]) -> OsString {
    for (watcher, local) in pairs {
        if arg.as_os_str() == watcher.as_os_str() {
            return local.clone().into_os_string();
        }
    }
    let with_slash = |p: &Path| {
        let mut bytes = p.as_os_str().as_bytes().to_vec();
        if bytes.last() != Some(&b'/') {
            bytes.push(b'/');
        }
        bytes
    };
    // Longest first (the caller sorts them), so the first match at a place is the deepest.
    let folders: Vec<(Vec<u8>, Vec<u8>)> = pairs
        .iter()
        .map(|(w, l)| (with_slash(w), with_slash(l)))
        .collect();
    let bytes = arg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let starts_path = at == 0 || matches!(bytes[at - 1], b'=' | b':' | b',' | b' ');
        let found = starts_path
            .then(|| {
                folders
                    .iter()
                    .find(|(from, _)| bytes[at..].starts_with(from))
            })
            .flatten();
        match found {
            Some((from, to)) => {
                out.extend_from_slice(to);
                at += from.len();
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    OsString::from_vec(out)
}

mod notify;
pub use notify::PortableNotify;

#[cfg(test)]
mod tests;
