//! A worker's side of a job's plan: the [`StoredPlan`] a watcher queued, made runnable here.
//! A worker maps each of the watcher's roots and output folders to
//! where that tree is mounted on the worker (`--map shots=/mnt/shots`, Tdarr's path
//! translators) and rewrites every path of the plan in one place ([`JobPlan::map_paths`](crate::exec::plan::JobPlan::map_paths)),
//! refusing a job whose paths it cannot map. Without a `--map`, a worker uses the watcher's own
//! path only where its mounts match the facts the watcher recorded ([`mounts`]).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::exec::runner::JobSpec;
use crate::rules::NotifyTarget;
use crate::store::queue::ClaimedJob;

use super::super::mounts::{self, LocalMounts, MountFact, Unmapped};
use super::super::stored_plan::StoredPlan;

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
    pub fn mappable_roots(&self, plan: &StoredPlan) -> Vec<(String, bool)> {
        let roots = plan.roots.clone();
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

/// The job's declared inputs as its watcher planned them (read again from the plan only when it
/// has some).
pub fn planned_inputs(job: &ClaimedJob) -> Vec<PathBuf> {
    if !job.plan.contains("\"inputs\"") {
        return Vec::new();
    }
    StoredPlan::from_text(&job.plan, &job.steps).map_or_else(|_| Vec::new(), |p| p.job.inputs)
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
    let plan = StoredPlan::from_text(&job.plan, &job.steps)?;
    let retries = Retries {
        retries: plan.job.retries,
        backoff: plan.job.backoff,
    };
    let folders: Vec<PathBuf> = plan
        .roots
        .iter()
        .map(|(_, path)| path.clone())
        .chain(plan.outputs.iter().cloned())
        .collect();
    // Read after the folders were opened, so automounted shares show as mounted.
    let here = LocalMounts::read(folders.iter().map(PathBuf::as_path));
    let notify = plan
        .job
        .notify
        .iter()
        .filter_map(|n| n.to_target().transpose())
        .map(|t| t.map(Arc::new))
        .collect::<Result<_, _>>()?;
    let mut pairs: Vec<(PathBuf, PathBuf)> = Vec::new();
    // Folders this worker cannot use, and why: named when a path under one cannot be mapped.
    let mut unmapped: Vec<(PathBuf, Unmapped)> = Vec::new();
    let mut input_root = None;
    for (name, watcher) in &plan.roots {
        match map.local(Some(name), watcher, plan.mount_of(watcher), &here) {
            Ok(local) => {
                if name == &job.input.root {
                    input_root = Some(local.clone());
                }
                pairs.push((watcher.clone(), local));
            }
            Err(why) if name == &job.input.root => {
                return Err(format!(
                    "root `{name}` ({}) is not mounted on this worker: {why}; give --map {name}=PATH",
                    watcher.display()
                ));
            }
            Err(why) => unmapped.push((watcher.clone(), why)),
        }
    }
    for watcher in &plan.outputs {
        match map.local(None, watcher, plan.mount_of(watcher), &here) {
            Ok(local) => pairs.push((watcher.clone(), local)),
            Err(why) => unmapped.push((watcher.clone(), why)),
        }
    }
    let root = input_root
        .ok_or_else(|| format!("the job's root `{}` is not in its plan", job.input.root))?;
    let id = job.claim.id.to_string();
    // A sequence's view goes into this worker's own state folder.
    if let Some(view) = &plan.job.view {
        pairs.push((view.dir.clone(), state_dir.join("views").join(&id)));
    }
    // Longest first, so a root nested in another maps by its own entry.
    pairs.sort_by_key(|(w, _)| std::cmp::Reverse(w.as_os_str().len()));
    let mapped = |p: &Path| -> Result<PathBuf, String> {
        pairs
            .iter()
            .find_map(|(w, l)| {
                p.strip_prefix(w).ok().map(|rest| {
                    if rest.as_os_str().is_empty() {
                        l.clone()
                    } else {
                        l.join(rest)
                    }
                })
            })
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
    let input_gone = if plan.job.view.is_some() {
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
    let run = plan.job.map_paths(mapped, |arg| map_arg(arg, &pairs))?;
    let spec = JobSpec {
        log_path: state_dir
            .join("logs")
            .join(&job.rule)
            .join(format!("{id}.log")),
        id,
        rule: job.rule.clone(),
        path,
        plan: run,
        allowed_roots: pairs.iter().map(|(_, l)| l.clone()).collect(),
        attempt: job.claim.attempt,
        claim: Some(job.claim),
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

#[cfg(test)]
mod tests;
