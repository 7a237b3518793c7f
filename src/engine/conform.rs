//! The `conform:` block at work: the watcher keeps each cut's sequence review up to date.
//!
//! A cut is conformed again when a job of the block's `from` rule is done for a shot the cut
//! shows, or when the cut gets a new revision (noticed where the [`CutIndex`] is reloaded).
//! Each trigger (re)starts the cut's `settle` wait, so a burst of publishes makes one conform.
//!
//! A conform is a job like any other: recorded in the store under rule `conform` with the
//! movie as its path, claimed, logged, fenced and published temp→final by the runner, told
//! to `notify:`. Its one step runs this same binary as `shotrouter conform`, which writes the
//! movie to the job's temp output and the `.otio` beside the final movie. Each conform is a
//! new version of the movie's record (as a re-rendered file is), so `shotrouter file MOVIE`
//! lists every conform of it and a newer one supersedes an older one still queued.
//!
//! [`CutIndex`]: crate::route::cut::CutIndex

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::deliver::publish::OutputPaths;
use crate::exec::plan::JobPlan;
use crate::exec::runner::JobSpec;
use crate::os::version::FileVersion;
use crate::route::plan::{allowed_output_roots, temp_path};
use crate::rules::conform::{CONFORM_RULE, ConformSettings};
use crate::store::Location;
use crate::store::queue::{NewJob, QueuedJob, RootedPath, Write};

use super::Engine;
use super::fair_queue::Pending;
use super::node::outbox::Then;
use super::settle::Debouncer;

/// The cuts as conform sees them, and the conforms waiting for their burst to end.
#[derive(Debug, Default)]
pub struct Conforms {
    /// Each cut's latest revision and the shots it shows; `None` before the first read.
    cuts: Option<HashMap<String, (i64, HashSet<String>)>>,
    /// The cuts waiting for their settle, each with when its first trigger came.
    due: Debouncer<String, Instant>,
}

/// A burst that never pauses is conformed at the latest this many settles after its first
/// trigger: a trickle of publishes every 20 s must not put a 30 s settle off for ever.
pub const MOST_SETTLES: u32 = 10;

impl Conforms {
    /// The earliest conform due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.next_deadline()
    }

    /// (Re)starts `cut`'s settle at `now`: due `settle` after the last trigger, and no later
    /// than [`MOST_SETTLES`] settles after the first one of the burst.
    pub fn trigger(&mut self, cut: &str, now: Instant, settle: Duration) {
        let first = self.due.remove(&cut.to_string()).unwrap_or(now);
        let deadline = (now + settle).min(first + settle * MOST_SETTLES);
        self.due.push(cut.to_string(), deadline, first);
    }

    /// The cuts whose settle is over, taken.
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut due: Vec<String> = self
            .due
            .drain_ready(now)
            .into_iter()
            .map(|(cut, _)| cut)
            .collect();
        due.sort();
        due
    }
}

impl Engine {
    fn conform_settings(&self) -> Option<&ConformSettings> {
        self.set.file.conform.as_ref()
    }

    /// Reads every cut's latest revision; with `trigger`, a cut that is new or has a newer
    /// revision than last read is conformed (after `settle`). The first read only learns:
    /// a watcher's start is no reason to conform.
    pub(super) fn conform_read_cuts(&mut self, trigger: bool, now: Instant) {
        let Some(settings) = self.conform_settings().cloned() else {
            return;
        };
        if self.node.store.is_none() {
            return;
        }
        // The revisions the watcher routes by (read once, at its store poll).
        let read: HashMap<String, (i64, HashSet<String>)> = self
            .cuts
            .revisions
            .iter()
            .filter(|r| settings.covers(&r.name))
            .map(|r| {
                let shots = r.present().map(|s| s.shot.clone()).collect();
                (r.name.clone(), (r.revision, shots))
            })
            .collect();
        if trigger && let Some(before) = &self.conforms.cuts {
            let changed: Vec<String> = read
                .iter()
                .filter(|(name, (rev, _))| before.get(*name).is_none_or(|(r, _)| r != rev))
                .map(|(name, _)| name.clone())
                .collect();
            for name in changed {
                tracing::info!(cut = %name, "conform: a new revision of the cut; conforming after the settle");
                self.conforms.trigger(&name, now, settings.settle);
            }
        }
        self.conforms.cuts = Some(read);
    }

    /// At start: a cut whose movie is missing (a revision imported while the watcher was
    /// stopped, with `{cut.revision}` in `output`; a movie deleted) is conformed after the
    /// settle. A movie that exists is taken as up to date.
    pub(super) fn conform_missing_movies(&mut self, now: Instant) {
        let Some(settings) = self.conform_settings().cloned() else {
            return;
        };
        let missing: Vec<String> = self
            .conforms
            .cuts
            .iter()
            .flatten()
            .filter(|(name, (rev, _))| {
                settings
                    .output_for(name, *rev)
                    .is_ok_and(|movie| !movie.exists())
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in missing {
            tracing::info!(cut = %name, "conform: the cut's movie is missing; conforming after the settle");
            self.conforms.trigger(&name, now, settings.settle);
        }
    }

    /// A job ended well: when its rule is the block's `from`, every cut showing its shot is
    /// conformed after the settle (pushed back if already waiting).
    pub(super) fn conform_after_publish(&mut self, spec: &JobSpec, published: Option<&Path>) {
        let Some(settings) = self.conform_settings() else {
            return;
        };
        if spec.rule != settings.from {
            return;
        }
        let settle = settings.settle;
        let Some(naming) = self.set.file.cuts.as_ref().map(|c| &c.naming) else {
            return;
        };
        let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(shot) = published
            .and_then(name_of)
            .and_then(|n| naming.shot_in(&n))
            .or_else(|| name_of(&spec.path).and_then(|n| naming.shot_in(&n)))
        else {
            return;
        };
        if self.conforms.cuts.is_none() {
            self.conform_read_cuts(false, Instant::now());
        }
        let now = Instant::now();
        let cuts: Vec<String> = self
            .conforms
            .cuts
            .iter()
            .flatten()
            .filter(|(_, (_, shots))| shots.contains(&shot))
            .map(|(name, _)| name.clone())
            .collect();
        for cut in cuts {
            tracing::debug!(cut = %cut, shot = %shot, "conform: a shot of the cut was published");
            self.conforms.trigger(&cut, now, settle);
        }
    }

    /// Queues the conforms whose settle is over.
    pub(super) fn fire_due_conforms(&mut self, now: Instant) {
        for cut in self.conforms.take_due(now) {
            if self.conform_settings().is_some_and(|s| s.covers(&cut)) {
                self.queue_conform(&cut);
            }
        }
    }

    /// Records and queues the conform of `cut`'s latest revision, as a job of rule `conform`.
    fn queue_conform(&mut self, cut: &str) {
        let Some(spec) = self.plan_conform(cut) else {
            return;
        };
        self.planned.outstanding += 1;
        self.readout.counters.planned += 1;
        if self.node.store.is_none() {
            self.planned.queue.push(Pending { id: None, spec });
            return;
        }
        let claim = !self.options.no_run && self.planned.queue.has_slot_now(CONFORM_RULE);
        if claim {
            self.planned.queue.reserve(CONFORM_RULE);
        } else if !self.options.no_run {
            self.planned.queue.note_unqueued(CONFORM_RULE);
        }
        let rule_hash = self
            .conform_settings()
            .map(ConformSettings::definition_hash)
            .unwrap_or_default();
        let job = NewJob {
            rule: CONFORM_RULE.to_string(),
            rule_hash,
            input: self.rooted_anywhere(&spec.path),
            version: conform_version(self.conformed_revision(cut)),
            steps: spec.plan.steps.clone(),
            output: spec.plan.output.as_ref().map(|o| o.final_path.clone()),
            unplannable: None,
            skipped: None,
            follow_moves: false,
            baseline_runs: true,
            tags: Vec::new(),
            concurrency: None,
            priority: 0,
            plan: self.stored_plan(&spec),
            waiting: None,
        };
        tracing::info!(cut = %cut, output = %spec.path.display(), "conform queued");
        self.node.committer.push(
            Write::Enqueue {
                job: Box::new(job),
                claim,
            },
            Then::Enqueued {
                spec: Box::new(spec),
                reserved: claim,
            },
        );
    }

    fn conformed_revision(&self, cut: &str) -> i64 {
        self.conforms
            .cuts
            .as_ref()
            .and_then(|c| c.get(cut))
            .map_or(0, |(rev, _)| *rev)
    }

    /// The job that conforms `cut`'s latest revision: one step, `shotrouter conform`, writing
    /// the job's temp output; `None` (logged) when the movie's name cannot be made.
    fn plan_conform(&mut self, cut: &str) -> Option<JobSpec> {
        let settings = self.conform_settings()?.clone();
        let revision = self.conformed_revision(cut);
        let output = match settings.output_for(cut, revision) {
            Ok(output) => output,
            Err(e) => {
                tracing::error!(cut = %cut, error = %e, "cannot name the conformed movie");
                return None;
            }
        };
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                tracing::error!(error = %e, "conform: cannot find this program to run it");
                return None;
            }
        };
        self.planned.next_job += 1;
        let id = format!("{}-{}", self.planned.run_tag, self.planned.next_job);
        let temp = temp_path(&output, &format!("sr{id}"))?;
        let mut argv: Vec<OsString> = vec![
            exe.into(),
            "conform".into(),
            cut.into(),
            "--from".into(),
            settings.from.clone().into(),
            "--output".into(),
            temp.clone().into(),
            "--otio".into(),
            output.with_extension("otio").into(),
            "--codec".into(),
            settings.codec.as_arg().into(),
            "--rules".into(),
            crate::rules::absolute(&self.options.rules_path).into(),
        ];
        argv.extend(store_args(&self.options.location));
        let mut allowed = allowed_output_roots(&self.set);
        allowed.extend(output.parent().map(Path::to_path_buf));
        Some(JobSpec {
            log_path: self
                .options
                .state_dir
                .join("logs")
                .join(CONFORM_RULE)
                .join(format!("{id}.log")),
            id,
            rule: CONFORM_RULE.to_string(),
            path: output.clone(),
            plan: JobPlan {
                steps: vec![argv],
                output: Some(OutputPaths {
                    final_path: output,
                    temp_path: temp,
                    ale: None,
                }),
                ..JobPlan::default()
            },
            allowed_roots: allowed,
            attempt: 1,
            claim: None,
        })
    }

    /// A conform job queued in the store (a start after a stop, `shotrouter retry`/`rerun`):
    /// planned again for the cut whose movie it is now, else dropped with the reason.
    pub(super) fn resume_conform(&mut self, job: QueuedJob) {
        if self.conforms.cuts.is_none() {
            self.conform_read_cuts(false, Instant::now());
        }
        let path = self.path_of(&job.input);
        let cut = self.conform_settings().and_then(|settings| {
            self.conforms
                .cuts
                .iter()
                .flatten()
                .find_map(|(name, (rev, _))| {
                    (settings.output_for(name, *rev).ok().as_ref() == Some(&path))
                        .then(|| name.clone())
                })
        });
        // Planned here, it is not also conformed for a missing movie.
        if let Some(cut) = &cut {
            self.conforms.due.remove(cut);
        }
        let Some(mut spec) = cut.and_then(|cut| self.plan_conform(&cut)) else {
            let reason = format!(
                "no cut's conform makes `{}` now (no `conform:` block, or the cut has a newer revision)",
                path.display()
            );
            tracing::warn!(job = job.id, %reason, "conform job dropped");
            self.node
                .committer
                .push(Write::Drop { id: job.id, reason }, Then::Nothing);
            return;
        };
        let plan = self.stored_plan(&spec);
        let rule_hash = self
            .conform_settings()
            .map(ConformSettings::definition_hash)
            .unwrap_or_default();
        self.node.committer.push(
            Write::Replan {
                id: job.id,
                rule_hash,
                steps: spec.plan.steps.clone(),
                output: spec.plan.output.as_ref().map(|o| o.final_path.clone()),
                plan,
            },
            Then::Nothing,
        );
        self.adopt(&mut spec, job.id);
        spec.attempt = job.attempts + 1;
        tracing::info!(job = job.id, path = %spec.path.display(), "resuming queued conform");
        self.planned.outstanding += 1;
        self.planned.queue.push(Pending {
            id: Some(job.id),
            spec,
        });
    }

    /// The store's name for an absolute path: under the watch root holding it, else under no
    /// root (the store shows such a path as it is).
    fn rooted_anywhere(&self, path: &Path) -> RootedPath {
        match self.locate(path) {
            Some((root, rel)) => self.rooted(root, &rel),
            None => RootedPath {
                root: String::new(),
                rel: path.to_path_buf(),
            },
        }
    }

    fn path_of(&self, rooted: &RootedPath) -> PathBuf {
        self.set
            .file
            .watch
            .iter()
            .find(|w| w.name == rooted.root)
            .map_or_else(|| rooted.rel.clone(), |w| w.path.join(&rooted.rel))
    }
}

/// A conform's version of its movie's record: the revision conformed and when it was asked
/// for, so each conform is a job of its own in the movie's history.
fn conform_version(revision: i64) -> FileVersion {
    FileVersion {
        dev: 0,
        ino: revision.max(0) as u64,
        size: 0,
        mtime_ns: crate::store::now_ms() as i128 * 1_000_000,
    }
}

/// How the conform step finds the store this watcher uses: its state folder, or the
/// PostgreSQL database by its URL without the password (never on a command line: the step
/// takes `PGPASSWORD` or the password file from the environment it inherits).
fn store_args(location: &Location) -> Vec<OsString> {
    match location {
        Location::Folder(dir) => vec!["--state".into(), crate::rules::absolute(dir).into()],
        Location::Postgres(pg) => vec![
            "--store".into(),
            pg.to_string().replacen(":***@", "@", 1).into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Conforms, MOST_SETTLES};

    const SETTLE: Duration = Duration::from_secs(30);

    #[test]
    fn a_burst_makes_one_conform_after_its_last_trigger() {
        let t0 = Instant::now();
        let mut c = Conforms::default();
        for i in 0..10 {
            c.trigger("seq", t0 + Duration::from_secs(i * 5), SETTLE);
        }
        c.trigger("other", t0, SETTLE);
        let last = t0 + Duration::from_secs(45);
        assert_eq!(c.next_deadline(), Some(t0 + SETTLE), "`other` first");
        assert_eq!(c.take_due(t0 + SETTLE), ["other"]);
        assert!(
            c.take_due(last + SETTLE - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(c.take_due(last + SETTLE), ["seq"]);
        assert!(c.take_due(last + SETTLE * 100).is_empty(), "taken once");
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn a_burst_that_never_pauses_is_conformed_all_the_same() {
        let t0 = Instant::now();
        let mut c = Conforms::default();
        let mut now = t0;
        while now < t0 + SETTLE * (MOST_SETTLES + 5) {
            c.trigger("seq", now, SETTLE);
            now += Duration::from_secs(20);
        }
        assert_eq!(c.next_deadline(), Some(t0 + SETTLE * MOST_SETTLES));
    }
}
