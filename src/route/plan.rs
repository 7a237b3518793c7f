//! Turns "rule R matched file F" into a concrete job: its variables, where its product goes,
//! and each step's argv. All variable binding lives here (path parts, `vars:`, captures,
//! `{seq.*}`, `{probe.*}`, `{timecode}`, `{keykode}` and its parts, `{frame.*}`, `{avid.*}`,
//! `{out}`), and so does the ALE a sequence job publishes beside its product; the layers below
//! only compute values. `explain` and the daemon share this, so what `explain` shows is
//! exactly what runs.
//!
//! Products are written to a hidden temp name beside the final one that keeps its extension
//! (ffmpeg picks the container from it), and renamed into place only on success.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::deliver::ale::{AleClip, AleSheet};
use crate::deliver::copy::TransferPlan;
use crate::deliver::publish::OutputPaths;
use crate::exec::plan::{JobPlan, PortableLineage, PortableNotify};
use crate::media::probe::{self, Probed};
use crate::media::sequence::{self, OnGaps, Reading, Sequence};
use crate::route::cut::{CutIndex, ShotCut};
use crate::route::matcher::{RuleSet, path_bindings};
use crate::rules::FrameScope;
use crate::rules::normalize;
use crate::rules::template::{Bindings, MissingVariable};

/// A job ready to run: its one plan (the value stored with the job and run by any node),
/// and what `explain` and the log show of how it was made.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Index of the rule in the rule set.
    pub rule: usize,
    /// Every variable, including `{out}` when the rule has an output.
    pub vars: Bindings,
    /// A sequence's missing frames, as ranges (empty when complete or not a sequence).
    pub missing: Vec<(i64, i64)>,
    /// What runs.
    pub job: JobPlan,
}

/// The frames a sequence job runs on, and where its view would go.
#[derive(Debug, Clone, Copy)]
pub struct SequenceInput<'a> {
    /// The frames.
    pub sequence: &'a Sequence,
    /// Folder for this job's view, if it needs one.
    pub view_dir: &'a Path,
}

/// Why a matched rule cannot become a job for this file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A variable has no value for this file.
    #[error(transparent)]
    Missing(#[from] MissingVariable),
    /// The output would land outside the watch roots and the `outputs:` folders.
    #[error("output `{}` is outside the watch roots and `outputs:` folders ({})", output.display(), allowed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    OutsideRoots {
        /// The output, normalized.
        output: PathBuf,
        /// Where outputs may go.
        allowed: Vec<PathBuf>,
    },
    /// The output template expanded to a folder, not a file.
    #[error("output `{}` names no file", .0.display())]
    NoFileName(PathBuf),
    /// `expect:` did not expand to a frame range.
    #[error("expect: {0}")]
    Expect(String),
    /// Frames are missing and the rule says `on_gaps: fail`.
    #[error("missing frames {} (on_gaps: fail)", sequence::format_ranges(.0))]
    Gaps(Vec<(i64, i64)>),
    /// No frame of the expected range is present.
    #[error("no frame of the sequence is present")]
    NoFrames,
    /// `probe: true` and ffprobe cannot read the input.
    #[error("probe: {0}")]
    Probe(String),
    /// The KeyKode of the job's first frame is out of range.
    #[error("keykode: {0}")]
    KeyKode(String),
    /// The ALE cannot be made for this job.
    #[error("ale: {0}")]
    Ale(String),
    /// The rule's `frames:` leaves this frame out (not a failure: the job is recorded skipped).
    #[error("{0}")]
    Skipped(String),
}

/// Plans rule `rule_index` for the file `root`/`rel` (a sequence's first frame when
/// `sequence` is given); `job_tag` makes the temp name unique per job; `cuts` give the file's
/// shot's `{cut.*}` and, by the rule's `frames:`, which frames it runs on.
///
/// The rule's regex runs once: its `shot` capture finds the cut before any variable is bound,
/// so a frame `frames:` leaves out costs a hash look-up and a few compares, and no bindings.
///
/// # Errors
/// See [`PlanError`].
pub fn plan(
    set: &RuleSet,
    rule_index: usize,
    root: &Path,
    rel: &Path,
    job_tag: &str,
    sequence: Option<SequenceInput<'_>>,
    cuts: &CutIndex,
) -> Result<Plan, PlanError> {
    let rule = &set.file.rules[rule_index];
    let captures = rule
        .regex
        .as_ref()
        .and_then(|r| r.captures(rel.as_os_str().as_bytes()));
    // Only a rule with `frames:` or a `{cut.*}` variable needs its shot's cut.
    let needs_cut = rule.frames != FrameScope::All || set.uses_cut_variables(rule_index);
    let shot_cut = match (needs_cut, set.shot_group(rule_index)) {
        (true, Some(group)) => shot_cut(cuts, captures.as_ref(), group),
        _ => None,
    };
    if let Some((shot, cut)) = shot_cut
        && rule.sequence.is_none()
        && rule.frames != FrameScope::All
        && let Some(frame) = crate::route::cut::frame_of(rel)
    {
        let class = cut.classify(frame);
        if !rule.frames.allows(class) {
            return Err(PlanError::Skipped(cut.describe(shot, frame, class)));
        }
    }
    let mut vars = bindings_of(set, rule, root, rel, captures.as_ref());
    let cut = shot_cut.map(|(_, cut)| cut);
    if let Some(cut) = cut
        && set.uses_cut_variables(rule_index)
    {
        cut.bind(&mut vars);
    }
    let mut frames_known = None;
    if rule.probe {
        let input = root.join(rel);
        let what = format!("the input `{}`", input.display());
        let probed = probe::probe(&input, &what).map_err(PlanError::Probe)?;
        bind_probe(&mut vars, &probed);
        frames_known = probed.frames;
    }
    let mut view = None;
    let mut missing = Vec::new();
    // A sequence job's first frame and frame count: the clip an ALE describes.
    let mut clip = None;
    let first_frame = match (sequence, &rule.sequence) {
        (Some(input), Some(seq_rule)) => {
            let range = expect_range(rule, &vars)?;
            let mut frames = input.sequence.clone();
            if let Some((first, last)) = range {
                frames.restrict(first, last);
            }
            // The frames the rule's `frames:` allows by the shot's cut, read through a view.
            let by_cut = match cut {
                Some(cut) if rule.frames != FrameScope::All => {
                    frames
                        .frames
                        .retain(|f| rule.frames.allows(cut.classify(f.number)));
                    true
                }
                _ => false,
            };
            let reading =
                sequence::reading_with(&frames, range, seq_rule.on_gaps, input.view_dir, by_cut)
                    .ok_or(PlanError::NoFrames)?;
            if seq_rule.on_gaps == OnGaps::Fail && !reading.missing.is_empty() {
                return Err(PlanError::Gaps(reading.missing));
            }
            bind_sequence(&mut vars, &frames, &reading);
            missing = reading.missing.clone();
            clip = Some((reading.first, reading.count));
            frames_known = Some(reading.count as u64);
            view = reading.view;
            Some(reading.first)
        }
        _ => vars
            .get("frame")
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|f| f.parse::<i64>().ok()),
    };
    if let (Some(spec), Some(first)) = (&rule.timecode, first_frame) {
        vars.insert("timecode", spec.at(first, first));
    }
    if let (Some(spec), Some(first)) = (&rule.keykode, first_frame) {
        let keykode = spec.at(first, first).map_err(PlanError::KeyKode)?;
        vars.insert("keykode", keykode.to_string());
        for (name, value) in keykode.parts(spec.codes) {
            vars.insert(name, value);
        }
    }
    bind_frame(&mut vars, rule, first_frame)?;
    if let Some(avid) = &rule.avid {
        for (name, value) in avid.variables() {
            vars.insert(name, value);
        }
    }
    // Declared inputs name files beside the matched one: no `{out}` yet, like the product.
    let inputs = match &rule.inputs {
        Some(declared) => declared
            .paths
            .iter()
            .map(|t| Ok(normalize(&root.join(PathBuf::from(t.expand(&vars)?)))))
            .collect::<Result<Vec<_>, PlanError>>()?,
        None => Vec::new(),
    };
    let output = match &rule.output {
        Some(template) => {
            let expanded = PathBuf::from(template.expand(&vars)?);
            let final_path = normalize(&root.join(expanded));
            let allowed: Vec<PathBuf> = allowed_output_roots(set);
            if !allowed
                .iter()
                .any(|a| final_path.starts_with(a) && final_path != *a)
            {
                return Err(PlanError::OutsideRoots {
                    output: final_path,
                    allowed,
                });
            }
            let temp_path = temp_path(&final_path, job_tag)
                .ok_or_else(|| PlanError::NoFileName(final_path.clone()))?;
            vars.insert("out", temp_path.as_os_str().as_bytes());
            let ale = match (&rule.ale, clip) {
                (Some(template), Some((first, count))) => {
                    let path = normalize(&root.join(PathBuf::from(template.expand(&vars)?)));
                    Some(ale_sheet(rule, path, &final_path, first, count)?)
                }
                _ => None,
            };
            Some(OutputPaths {
                final_path,
                temp_path,
                ale,
            })
        }
        None => None,
    };
    let steps = rule
        .steps
        .iter()
        .map(|step| {
            step.iter()
                .map(|t| t.expand(&vars))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let verify = rule.verify.as_ref().map(|v| v.expand(&vars)).transpose()?;
    let verify = verify.map(|mut v| {
        v.perfs_per_frame = rule
            .keykode
            .as_ref()
            .and_then(|k| u32::try_from(k.start.format.perfs_per_frame()).ok());
        v.stock_codes = rule
            .keykode
            .as_ref()
            .and_then(|k| k.codes)
            .map(|c| (u32::from(c.mfg), u32::from(c.film_type)));
        v
    });
    let transfer = match &rule.transfer {
        Some(t) => Some(transfer_plan(set, t, root, &vars)?),
        None => None,
    };
    Ok(Plan {
        rule: rule_index,
        vars,
        missing,
        job: JobPlan {
            steps,
            output,
            view,
            verify,
            transfer,
            timeout: rule.timeout,
            retries: rule.retries,
            backoff: rule.backoff,
            progress: rule.progress.is_some(),
            thumbnail: rule.thumbnail && rule.output.is_some(),
            total_frames: frames_known,
            notify: rule
                .notify_targets(&set.file)
                .iter()
                .map(PortableNotify::of)
                .collect(),
            slurm: rule.slurm.clone().map(|mut request| {
                // A task past the rule's `timeout:` is ended by Slurm, when no `time:` says otherwise.
                if request.time_minutes.is_none() {
                    request.time_minutes = rule.timeout.map(|t| t.as_secs().div_ceil(60).max(1));
                }
                request
            }),
            inputs,
            work_hash: rule.work_hash.clone(),
            openlineage: PortableLineage::of(&set.file),
        },
    })
}

/// A `copy:`/`move:` for this job: `to:` expanded, made absolute (relative to the watch root),
/// kept inside the allowed roots, and its ASC MHL folder found: the first folder below the
/// allowed root the destination lies in (the root itself for a file directly in it).
fn transfer_plan(
    set: &RuleSet,
    rule: &crate::rules::TransferRule,
    root: &Path,
    vars: &Bindings,
) -> Result<TransferPlan, PlanError> {
    let to = normalize(&root.join(PathBuf::from(rule.to.expand(vars)?)));
    let allowed = allowed_output_roots(set);
    let Some(base) = allowed
        .iter()
        .filter(|a| to.starts_with(a) && to != **a)
        .max_by_key(|a| a.as_os_str().len())
    else {
        return Err(PlanError::OutsideRoots {
            output: to,
            allowed,
        });
    };
    if to.file_name().is_none() {
        return Err(PlanError::NoFileName(to));
    }
    let mhl_root = rule.mhl.then(|| {
        let below = to.strip_prefix(base).unwrap_or(Path::new(""));
        let mut parts = below.components();
        match (parts.next(), parts.next()) {
            (Some(first), Some(_)) => base.join(first),
            _ => base.clone(),
        }
    });
    Ok(TransferPlan {
        kind: rule.kind,
        to,
        hashes: rule.hashes.clone(),
        mhl_root,
    })
}

/// The shot the rule's `shot` capture (group `group`) names and its cut, when a cut shows it.
fn shot_cut<'c, 'h>(
    cuts: &'c CutIndex,
    captures: Option<&regex::bytes::Captures<'h>>,
    group: usize,
) -> Option<(&'h str, &'c ShotCut)> {
    if cuts.is_empty() {
        return None;
    }
    // `None` for a capture that did not take part in the match.
    let shot = std::str::from_utf8(captures?.get(group)?.as_bytes()).ok()?;
    cuts.get(shot).map(|c| (shot, &**c))
}

/// The variables every job of a rule has: the file's path parts, `{rule}`, `vars:` and the
/// regex's named captures.
pub fn bindings(set: &RuleSet, rule_index: usize, root: &Path, rel: &Path) -> Bindings {
    let rule = &set.file.rules[rule_index];
    let captures = rule
        .regex
        .as_ref()
        .and_then(|r| r.captures(rel.as_os_str().as_bytes()));
    bindings_of(set, rule, root, rel, captures.as_ref())
}

/// [`bindings`] with the rule's regex already run on `rel`.
fn bindings_of(
    set: &RuleSet,
    rule: &crate::rules::Rule,
    root: &Path,
    rel: &Path,
    captures: Option<&regex::bytes::Captures<'_>>,
) -> Bindings {
    let mut vars = path_bindings(root, rel);
    vars.insert("rule", rule.name.as_bytes());
    for (name, value) in &set.file.vars {
        vars.insert(name.clone(), value.as_bytes());
    }
    if let (Some(regex), Some(captures)) = (&rule.regex, captures) {
        for name in regex.capture_names().flatten() {
            if let Some(m) = captures.name(name) {
                vars.insert(name, m.as_bytes());
            }
        }
    }
    vars
}

/// The ALE of a sequence job whose product is `product`: one clip, `count` frames from
/// `first`, named after the product; `End` and `KN End` are those of the frame after the last.
///
/// # Errors
/// The ALE is not beside the product, or the last KeyKode is out of range.
fn ale_sheet(
    rule: &crate::rules::Rule,
    path: PathBuf,
    product: &Path,
    first: i64,
    count: usize,
) -> Result<AleSheet, PlanError> {
    if path.parent() != product.parent() || path.file_name().is_none() {
        return Err(PlanError::Ale(format!(
            "`{}` is not beside the product `{}`; write it in the same folder, e.g. `ale: \"{{dir}}/{{seq.name}}.ale\"` with `output:` in `{{dir}}`",
            path.display(),
            product.display()
        )));
    }
    if path == product {
        return Err(PlanError::Ale(format!(
            "`{}` is the product itself; give the ALE its own name, e.g. with `.ale`",
            path.display()
        )));
    }
    let Some(tc) = &rule.timecode else {
        return Err(PlanError::Ale("the rule has no `timecode:`".into()));
    };
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let after = first.saturating_add(count);
    let keykode = match &rule.keykode {
        Some(spec) => {
            let at = |frame| spec.at(frame, first).map(|k| k.to_string());
            let start = at(first).map_err(PlanError::KeyKode)?;
            let end = at(after).map_err(PlanError::KeyKode)?;
            let duration = spec
                .start
                .format
                .feet_frames(count)
                .unwrap_or_else(|| count.to_string());
            Some([start, end, duration])
        }
        None => None,
    };
    let lossy = |p: Option<&std::ffi::OsStr>| p.map(|s| s.to_string_lossy().into_owned());
    let name = lossy(product.file_stem()).unwrap_or_default();
    let mut fps = tc.counting.rate.to_string();
    if fps.contains('/') {
        fps = format!("{:.3}", tc.counting.rate.fps());
    }
    Ok(AleSheet {
        final_path: path,
        fps,
        video_format: "1080".to_string(),
        clips: vec![AleClip {
            tape: name.clone(),
            name,
            source_file: lossy(product.file_name()).unwrap_or_default(),
            start: tc.at(first, first),
            end: tc.at(after, first),
            keykode,
        }],
    })
}

/// Adds `{frame.timecode}` and `{frame.keykode}`: the labels of the file's own frame number
/// (`{frame}`), where `{timecode}`/`{keykode}` are those of the job's first frame. A file name
/// without a frame number binds neither, and a rule using them fails to plan, naming it.
///
/// # Errors
/// The frame's KeyKode is out of range.
pub fn bind_frame(
    vars: &mut Bindings,
    rule: &crate::rules::Rule,
    first_frame: Option<i64>,
) -> Result<(), PlanError> {
    let Some(frame) = vars
        .get("frame")
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| f.parse::<i64>().ok())
    else {
        return Ok(());
    };
    let first = first_frame.unwrap_or(frame);
    if let Some(spec) = &rule.timecode {
        vars.insert("frame.timecode", spec.at(frame, first));
    }
    if let Some(spec) = &rule.keykode {
        let keykode = spec.at(frame, first).map_err(PlanError::KeyKode)?;
        vars.insert("frame.keykode", keykode.to_string());
    }
    Ok(())
}

/// Adds the `{seq.*}` variables (every name in [`sequence::VARIABLES`]) for a job over `seq`.
pub fn bind_sequence(vars: &mut Bindings, seq: &Sequence, reading: &Reading) {
    vars.insert("seq.first", reading.first.to_string());
    vars.insert("seq.last", reading.last.to_string());
    vars.insert("seq.count", reading.count.to_string());
    vars.insert("seq.range", format!("{}-{}", reading.first, reading.last));
    vars.insert("seq.pattern", reading.pattern.as_os_str().as_bytes());
    vars.insert("seq.start", reading.start.to_string());
    vars.insert("seq.hashes", seq.hashes_path().as_os_str().as_bytes());
    vars.insert("seq.name", seq.name());
    vars.insert("seq.missing", sequence::format_ranges(&reading.missing));
}

/// Adds the `{probe.*}` variables (names in [`probe::PROBE_VARIABLES`]) that have a value: a
/// file without timecode has no `{probe.timecode}`, and a rule using it then fails to plan,
/// naming the variable.
pub fn bind_probe(vars: &mut Bindings, probed: &Probed) {
    let mut put = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            vars.insert(name, value);
        }
    };
    put("probe.timecode", probed.timecode.clone());
    put("probe.fps", probed.fps.map(|r| r.fraction()));
    put("probe.width", probed.width.map(|n| n.to_string()));
    put("probe.height", probed.height.map(|n| n.to_string()));
    put("probe.frames", probed.frames.map(|n| n.to_string()));
    put("probe.codec", probed.codec.clone());
    put("probe.pix_fmt", probed.pix_fmt.clone());
}

/// A sequence rule's `expect:` range for a job with these variables.
///
/// # Errors
/// The template has no value, or its value is not a range.
pub fn expect_range(
    rule: &crate::rules::Rule,
    vars: &Bindings,
) -> Result<Option<(i64, i64)>, PlanError> {
    let Some(template) = rule.sequence.as_ref().and_then(|s| s.expect.as_ref()) else {
        return Ok(None);
    };
    let text = template.expand(vars)?;
    sequence::parse_range(&text.to_string_lossy())
        .map(Some)
        .map_err(PlanError::Expect)
}

/// The watch roots and the `outputs:` folders: the only places a product may be published.
pub fn allowed_output_roots(set: &RuleSet) -> Vec<PathBuf> {
    set.file
        .watch
        .iter()
        .map(|w| w.path.clone())
        .chain(set.file.outputs.iter().cloned())
        .collect()
}

/// `dir/.name.TAG.ext` for `dir/name.ext` (see [`publish::temp_beside`]). A claimed job's
/// attempt runs under a name made from its claim instead ([`publish::claim_tag`]).
///
/// [`publish::temp_beside`]: crate::deliver::publish::temp_beside
/// [`publish::claim_tag`]: crate::deliver::publish::claim_tag
pub fn temp_path(final_path: &Path, tag: &str) -> Option<PathBuf> {
    crate::deliver::publish::temp_beside(final_path, tag)
}

#[cfg(test)]
mod tests;
