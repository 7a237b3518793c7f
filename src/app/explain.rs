//! `shotrouter explain`: what a path would trigger, and why other rules would not. Runs nothing.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use std::collections::HashSet;
use std::ffi::OsString;

use crate::media::sequence::{self, Sequence};
use crate::os::quote::shell_quote;
use crate::route::cut::CutIndex;
use crate::route::matcher::RuleSet;
use crate::route::plan;
use crate::rules::{self, EventKind};

/// Where views would go; `explain` creates nothing, this only fills `{seq.pattern}`.
const EXPLAIN_VIEWS: &str = "$STATE/views/JOB";

/// A sequence found for a sequence rule: (rule index, the sequence, the frame names given).
type Grouped = (usize, Sequence, HashSet<OsString>);

/// What one path would trigger.
#[derive(Debug, Serialize)]
pub struct PathReport {
    /// The path as given, made absolute.
    pub path: String,
    /// Its watch root, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Rules that fire, in order.
    pub matches: Vec<MatchReport>,
    /// Rules that do not fire and why (only with `-v`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkipReport>,
    /// Why nothing could be routed (outside the roots, ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A declared input of a job, as `explain` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputReport {
    /// The path, expanded (lossy UTF-8).
    pub path: String,
    /// Whether it is there now.
    pub present: bool,
}

/// One rule that fires.
#[derive(Debug, Serialize)]
pub struct MatchReport {
    /// Rule name.
    pub rule: String,
    /// Every variable's value.
    pub vars: std::collections::BTreeMap<String, String>,
    /// Where the product is published (`{out}` is its hidden temp name while the job runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Each step's argv.
    pub steps: Vec<Vec<String>>,
    /// Its declared `inputs:`, expanded, each with whether it is there now (a missing one
    /// makes the job wait for it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputReport>,
    /// Why the commands cannot be built for this file, e.g. no frame number for `{frame}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a sequence rule: the sequence this file is a frame of (the job is the sequence's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<SequenceSummary>,
    /// What the product must be before it is published (`verify:`), expanded for this job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<std::collections::BTreeMap<String, String>>,
    /// Longest the job may run (`timeout:`), e.g. `10m`; absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// The frame against its shot's cut, for a rule that names its shot (a `shot` capture).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut: Option<super::explain_cut::CutReport>,
    /// Quiet time after the last write before the job fires (`settle:`), e.g. `2s`.
    pub settle: String,
    /// How many times a failed job is tried again (`retries:`).
    pub retries: u32,
    #[serde(skip)]
    display_steps: Vec<String>,
    /// Whether an earlier path already showed this sequence's job (text output shows it once).
    #[serde(skip)]
    repeat: bool,
}

/// How the given paths grouped into one sequence.
#[derive(Debug, Clone, Serialize)]
pub struct SequenceSummary {
    /// `…/sh010_comp_v001.####.tif`.
    pub sequence: String,
    /// Frame numbers among the given paths, as ranges.
    pub frames: String,
    /// How many of its frames were given.
    pub count: usize,
    /// How many more frames of it are already in its folder (the daemon's job has them too).
    pub found: usize,
    /// Missing frames, as ranges (empty when complete).
    pub missing: String,
}

/// One rule that does not fire.
#[derive(Debug, Serialize)]
pub struct SkipReport {
    /// Rule name.
    pub rule: String,
    /// Why.
    pub reason: String,
}

/// Explains each path against a compiled rule set and the cuts in the store (`cuts`).
pub fn explain(
    set: &RuleSet,
    cuts: &CutIndex,
    paths: &[PathBuf],
    event: EventKind,
    verbose: bool,
) -> Vec<PathReport> {
    let absolute: Vec<PathBuf> = paths.iter().map(|p| rules::absolute(p)).collect();
    let sequences = group_sequences(set, &absolute, event);
    let mut shown = std::collections::HashSet::new();
    absolute
        .iter()
        .map(|p| {
            let mut report = explain_one(set, cuts, p, event, verbose, &sequences);
            for m in &mut report.matches {
                if let Some(summary) = &m.sequence {
                    m.repeat = !shown.insert((m.rule.clone(), summary.sequence.clone()));
                }
            }
            report
        })
        .collect()
}

/// Sequences among the given paths, per sequence rule: (rule index, sequence, names given).
/// Each sequence's folder is listed too, so one frame given shows the sequence the daemon would
/// fire on, with the frames already there.
fn group_sequences(set: &RuleSet, paths: &[PathBuf], event: EventKind) -> Vec<Grouped> {
    let mut by_folder: std::collections::BTreeMap<(usize, PathBuf), HashSet<OsString>> =
        Default::default();
    for path in paths {
        let Some((_, rel)) = set.locate(path) else {
            continue;
        };
        if set.is_ignored(rel) {
            continue;
        }
        for index in set.route(rel, event) {
            if set.file.rules[index].sequence.is_some()
                && let (Some(dir), Some(name)) = (path.parent(), path.file_name())
            {
                by_folder
                    .entry((index, dir.to_path_buf()))
                    .or_default()
                    .insert(name.to_os_string());
            }
        }
    }
    by_folder
        .into_iter()
        .flat_map(|((index, dir), given)| {
            let mut names: Vec<OsString> = given.iter().cloned().collect();
            names.extend(
                folder_frames(set, index, &dir, event).filter(|name| !given.contains(name)),
            );
            sequence::group(&dir, names.iter().map(|n| n.as_os_str()))
                .into_iter()
                .map(|s| (index, s, given.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The files already in `dir` that rule `index` would take (not ignored, routed to it).
fn folder_frames<'a>(
    set: &'a RuleSet,
    index: usize,
    dir: &Path,
    event: EventKind,
) -> impl Iterator<Item = OsString> + 'a {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    let dir = dir.to_path_buf();
    entries.filter_map(move |entry| {
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            return None;
        }
        let path = dir.join(entry.file_name());
        let (_, rel) = set.locate(&path)?;
        (!set.is_ignored(rel) && set.route(rel, event).contains(&index)).then(|| entry.file_name())
    })
}

/// Whether any path was under no watch root, or any matched rule could not build its commands:
/// `explain` then exits 1, so a script can tell "this would fail" from "this is fine".
pub fn any_failed(reports: &[PathReport]) -> bool {
    reports.iter().any(|r| {
        (r.root.is_none() && r.note.is_some()) || r.matches.iter().any(|m| m.error.is_some())
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn explain_one(
    set: &RuleSet,
    cuts: &CutIndex,
    path: &Path,
    event: EventKind,
    verbose: bool,
    sequences: &[Grouped],
) -> PathReport {
    let mut report = PathReport {
        path: lossy(path.as_os_str().as_bytes()),
        root: None,
        matches: Vec::new(),
        skipped: Vec::new(),
        note: None,
    };
    let Some((root, rel)) = set.locate(path) else {
        let roots = set.roots_text();
        report.note = Some(format!("not under any watch root ({})", roots));
        return report;
    };
    report.root = Some(lossy(root.as_os_str().as_bytes()));
    if set.is_ignored(rel) {
        report.note = Some(format!(
            "ignored: matches an `ignore` glob ({})",
            set.file.ignore.join(", ")
        ));
        return report;
    }
    let fired = set.route(rel, event);
    for &index in &fired {
        let rule = &set.file.rules[index];
        let mut m = MatchReport {
            rule: rule.name.clone(),
            vars: Default::default(),
            output: None,
            steps: Vec::new(),
            inputs: Vec::new(),
            error: None,
            sequence: None,
            verify: None,
            cut: super::explain_cut::cut_report(cuts, rule, rel),
            timeout: rule
                .timeout
                .map(|t| humantime::format_duration(t).to_string()),
            settle: humantime::format_duration(rule.settle).to_string(),
            retries: rule.retries,
            display_steps: Vec::new(),
            repeat: false,
        };
        let name = path.file_name().unwrap_or_default();
        let sequence = sequences
            .iter()
            .find(|(i, s, _)| {
                *i == index
                    && Some(s.dir.as_path()) == path.parent()
                    && s.frames.iter().any(|f| f.name == name)
            })
            .map(|(_, s, given)| (s, given));
        let planned = match (&set.file.rules[index].sequence, sequence) {
            (Some(_), Some((seq, given))) => {
                let first = rel.with_file_name(&seq.frames[0].name);
                let count = seq
                    .frames
                    .iter()
                    .filter(|f| given.contains(&f.name))
                    .count();
                m.sequence = Some(SequenceSummary {
                    sequence: lossy(seq.hashes_path().as_os_str().as_bytes()),
                    frames: sequence::format_ranges(&ranges_of(seq)),
                    count,
                    found: seq.frames.len() - count,
                    missing: sequence::format_ranges(&seq.missing(None)),
                });
                let input = plan::SequenceInput {
                    sequence: seq,
                    view_dir: Path::new(EXPLAIN_VIEWS),
                };
                plan::plan(set, index, root, &first, "JOB", Some(input), cuts)
            }
            (Some(_), None) => Err(plan::PlanError::NoFrames),
            (None, _) => plan::plan(set, index, root, rel, "JOB", None, cuts),
        };
        match planned {
            Ok(plan) => {
                m.vars = plan
                    .vars
                    .iter()
                    .map(|(k, v)| (k.to_string(), lossy(v)))
                    .collect();
                m.verify = plan.job.verify.map(|v| {
                    let decode = v.decode.then(|| ("decode".to_string(), "true".to_string()));
                    v.checks.into_iter().chain(decode).collect()
                });
                m.output = plan
                    .job
                    .output
                    .map(|o| lossy(o.final_path.as_os_str().as_bytes()));
                m.inputs = plan
                    .job
                    .inputs
                    .iter()
                    .map(|p| InputReport {
                        path: lossy(p.as_os_str().as_bytes()),
                        present: p.exists(),
                    })
                    .collect();
                for argv in plan.job.steps {
                    m.display_steps.push(
                        argv.iter()
                            .map(|a| shell_quote(a.as_bytes()))
                            .collect::<Vec<_>>()
                            .join(" "),
                    );
                    m.steps
                        .push(argv.iter().map(|a| lossy(a.as_bytes())).collect());
                }
            }
            // The cut line says why; a frame left out is not an error.
            Err(plan::PlanError::Skipped(_)) => {}
            Err(e) => m.error = Some(e.to_string()),
        }
        report.matches.push(m);
    }
    if verbose {
        let stopper = fired.last().filter(|&&i| set.file.rules[i].stop).copied();
        for (index, rule) in set.file.rules.iter().enumerate() {
            if fired.contains(&index) {
                continue;
            }
            let reason = why_not(set, index, rel, event, stopper);
            report.skipped.push(SkipReport {
                rule: rule.name.clone(),
                reason,
            });
        }
    }
    report
}

fn why_not(
    set: &RuleSet,
    index: usize,
    rel: &Path,
    event: EventKind,
    stopper: Option<usize>,
) -> String {
    let rule = &set.file.rules[index];
    let glob_ok = rule.globs.is_empty()
        || rule
            .globs
            .iter()
            .any(|g| rules::compile_glob(g).is_ok_and(|g| g.compile_matcher().is_match(rel)));
    if !glob_ok {
        let mut reason = format!("no glob matches ({})", rule.globs.join(", "));
        if rule.globs.iter().all(|g| !g.contains('/')) && rel.components().count() > 1 {
            let _ = write!(
                reason,
                "; globs match the whole path under the root, so write `**/{}`",
                rule.globs[0]
            );
        }
        return reason;
    }
    if let Some(regex) = &rule.regex
        && !regex.is_match(rel.as_os_str().as_bytes())
    {
        return format!(
            "regex `{}` does not match `{}`",
            regex.as_str(),
            rel.display()
        );
    }
    if !rule.events.contains(event) {
        return format!("does not fire on {event:?} events (see `on:`)");
    }
    match stopper {
        Some(s) if s < index => format!(
            "skipped: rule `{}` matched first and has `stop: true`",
            set.file.rules[s].name
        ),
        _ => "not reached".into(),
    }
}

/// The frame numbers of a sequence as contiguous ranges.
fn ranges_of(seq: &Sequence) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for n in seq.frames.iter().map(|f| f.number) {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == n => *last = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// The human-readable form of a report.
pub fn render_text(reports: &[PathReport], set: &RuleSet) -> String {
    let mut out = String::new();
    for report in reports {
        let _ = writeln!(out, "{}", report.path);
        if let Some(note) = &report.note {
            let _ = writeln!(out, "  {note}");
        } else if report.matches.is_empty() {
            let _ = writeln!(out, "  no rule matches");
        }
        for m in &report.matches {
            let line = set
                .file
                .rules
                .iter()
                .find(|r| r.name == m.rule)
                .map_or(0, |r| r.line);
            let _ = writeln!(
                out,
                "  match {} ({}:{line})",
                m.rule,
                set.file.path.display()
            );
            if let Some(seq) = &m.sequence {
                let missing = if seq.missing.is_empty() {
                    String::new()
                } else {
                    format!(", missing {}", seq.missing)
                };
                let found = if seq.found == 0 {
                    String::new()
                } else {
                    format!(", {} more in the folder", seq.found)
                };
                let _ = writeln!(
                    out,
                    "    sequence: {} frames {} ({} given{found}{missing})",
                    shell_quote(seq.sequence.as_bytes()),
                    seq.frames,
                    seq.count
                );
                if m.repeat {
                    let _ = writeln!(out, "    one job for the whole sequence: shown above");
                    continue;
                }
            }
            let vars: Vec<String> = m
                .vars
                .iter()
                .map(|(k, v)| format!("{k}={}", shell_quote(v.as_bytes())))
                .collect();
            if let Some(cut) = &m.cut {
                let _ = writeln!(out, "    {}", super::explain_cut::render(cut));
            }
            let _ = writeln!(out, "    vars: {}", vars.join(" "));
            if let Some(output) = &m.output {
                let _ = writeln!(out, "    output: {}", shell_quote(output.as_bytes()));
            }
            for input in &m.inputs {
                let state = if input.present {
                    "present"
                } else {
                    "missing: the job would wait for it"
                };
                let _ = writeln!(
                    out,
                    "    input: {} ({state})",
                    shell_quote(input.path.as_bytes())
                );
            }
            if let Some(verify) = &m.verify {
                let checks: Vec<String> = verify
                    .iter()
                    .map(|(k, v)| format!("{k}={}", shell_quote(v.as_bytes())))
                    .collect();
                let _ = writeln!(out, "    verify: {}", checks.join(" "));
            }
            let _ = writeln!(
                out,
                "    settle: {}, timeout: {}, retries: {}",
                m.settle,
                m.timeout.as_deref().unwrap_or("none"),
                m.retries
            );
            if let Some(error) = &m.error {
                let _ = writeln!(out, "    error: {error}");
            }
            for (i, step) in m.display_steps.iter().enumerate() {
                let label = if m.display_steps.len() == 1 {
                    "run".to_string()
                } else {
                    format!("step {}", i + 1)
                };
                let _ = writeln!(out, "    {label}: {step}");
            }
        }
        for s in &report.skipped {
            let _ = writeln!(out, "  skip  {}: {}", s.rule, s.reason);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::os::quote::shell_quote;

    #[test]
    fn quoting_is_round_trip_safe_for_display() {
        let cases: [(&[u8], &str); 6] = [
            (b"plain/path-1.tif", "plain/path-1.tif"),
            (b"a b", "'a b'"),
            (b"it's", r"'it'\''s'"),
            (b"$(touch pwned)", "'$(touch pwned)'"),
            (b"new\nline", r"$'new\nline'"),
            (b"bad\xff", r"$'bad\xff'"),
        ];
        for (input, want) in cases {
            assert_eq!(shell_quote(input), want);
        }
    }
}
