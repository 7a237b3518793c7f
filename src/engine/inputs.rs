//! Declared inputs (`inputs:` of a rule) in the watcher: a job whose inputs are not all there
//! waits for them (`waiting` in the store, not claimable), released the moment the last one
//! arrives complete (the watcher's event for a file under a root; a look every second for one
//! outside, which must hold still between two looks when the kernel cannot say who writes it),
//! and failed when [`wait_inputs`](crate::rules::DeclaredInputs::wait) runs out. A new version
//! of a file some job read as an input runs those jobs again or leaves their products stale,
//! as their rule's `on_input_change:` says. What a run used is recorded with its end.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::exec::lineage::RunFacts;
use crate::exec::runner::JobSpec;
use crate::os::lease::{self, Writers};
use crate::os::version::FileVersion;
use crate::rules::OnInputChange;
use crate::store::JobId;
use crate::store::lineage::WaitFor;
use crate::store::queue::{RuleDef, Write};

use super::Engine;
use super::node::outbox::Then;

/// How often the inputs of waiting jobs are looked at (those under a root also arrive by event).
pub const INPUT_POLL: Duration = Duration::from_secs(1);

/// The watcher's view of declared inputs.
#[derive(Debug, Default)]
pub struct InputWatch {
    /// Jobs waiting, by id.
    waiting: HashMap<JobId, WaitFor>,
    /// The waiting jobs of each input path.
    by_path: HashMap<PathBuf, Vec<JobId>>,
    /// Every path some job read as a declared input: a new version of one is news.
    read: HashSet<PathBuf>,
    /// Inputs that may be written with nobody to say so: the version of the last look.
    last_look: HashMap<PathBuf, FileVersion>,
    /// When the waiting jobs' inputs are looked at next.
    next_look: Option<Instant>,
}

impl InputWatch {
    /// When something here is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_look.filter(|_| !self.waiting.is_empty())
    }

    /// Jobs waiting for inputs.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn add(&mut self, id: JobId, wait: WaitFor, now: Instant) {
        for path in &wait.inputs {
            self.by_path.entry(path.clone()).or_default().push(id);
        }
        self.waiting.insert(id, wait);
        self.next_look.get_or_insert(now + INPUT_POLL);
    }

    fn remove(&mut self, id: JobId) -> Option<WaitFor> {
        let wait = self.waiting.remove(&id)?;
        for path in &wait.inputs {
            if let Some(ids) = self.by_path.get_mut(path) {
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    self.by_path.remove(path);
                    self.last_look.remove(path);
                }
            }
        }
        Some(wait)
    }
}

/// How long a file must have been left alone to count as complete when the kernel cannot say
/// whether someone writes it (a network file system): a delivery in progress touches it more
/// often than this.
const UNTOUCHED: Duration = Duration::from_secs(5);

/// Whether an input is there and complete: present, and nobody writing it. When the kernel
/// cannot say (NFS, SMB), it must be untouched for [`UNTOUCHED`] or have held still since the
/// last look.
fn is_complete(path: &Path, last_look: &mut HashMap<PathBuf, FileVersion>) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let Some(version) = FileVersion::from_metadata(&meta) else {
        return false;
    };
    match lease::writers(path) {
        Writers::None => true,
        Writers::Open => false,
        Writers::Unknown => {
            let untouched = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= UNTOUCHED);
            untouched || last_look.insert(path.to_path_buf(), version) == Some(version)
        }
    }
}

impl Engine {
    /// The planned job's declared inputs that are missing or still being written.
    pub(super) fn missing_inputs(&mut self, spec: &JobSpec) -> Vec<PathBuf> {
        let last_look = &mut self.inputs.last_look;
        spec.plan
            .inputs
            .iter()
            .filter(|p| !is_complete(p, last_look))
            .cloned()
            .collect()
    }

    /// What a job of rule `rule` waits for, until when.
    pub(super) fn wait_for(&self, rule: &str, missing: Vec<PathBuf>) -> WaitFor {
        let wait = self
            .set
            .index_of(rule)
            .and_then(|i| self.set.file.rules[i].inputs.as_ref())
            .map_or(crate::rules::inputs::DEFAULT_WAIT_INPUTS, |d| d.wait);
        WaitFor {
            inputs: missing,
            until_ms: crate::store::now_ms() + wait.as_millis() as i64,
        }
    }

    /// A job recorded `waiting` (or found waiting at start): watched for its inputs.
    pub(super) fn watch_waiting(&mut self, id: JobId, rule: &str, wait: WaitFor) {
        for path in &wait.inputs {
            self.inputs.read.insert(path.clone());
        }
        tracing::info!(job = id, rule = %rule, waits_for = %wait.describe(), "waiting for its inputs");
        self.inputs.add(id, wait, Instant::now());
    }

    /// A file arrived complete (or a scan found it): the jobs waiting for it may go, and the
    /// jobs that read another version of it run again or are stale.
    pub(super) fn input_arrived(&mut self, abs: &Path) {
        if let Some(ids) = self.inputs.by_path.get(abs).cloned() {
            // Its event says it is complete; the look's stillness check does not apply.
            if let Some(version) = FileVersion::of(abs) {
                self.inputs.last_look.insert(abs.to_path_buf(), version);
            }
            for id in ids {
                self.try_release(id, true);
            }
        }
        if self.inputs.read.contains(abs)
            && self.node.store.is_some()
            && let Some(version) = FileVersion::of(abs)
        {
            self.node.committer.push(
                Write::InputSeen {
                    path: abs.to_path_buf(),
                    version,
                },
                Then::InputUsers(abs.to_path_buf()),
            );
        }
    }

    /// Looks at the waiting jobs' inputs: releases those whose inputs are all there, fails
    /// those past their deadline.
    pub(super) fn look_at_inputs(&mut self, now: Instant) {
        if self.inputs.next_look.is_none_or(|at| now < at) {
            return;
        }
        self.inputs.next_look = Some(now + INPUT_POLL);
        let ids: Vec<JobId> = self.inputs.waiting.keys().copied().collect();
        for id in ids {
            self.try_release(id, false);
        }
    }

    fn try_release(&mut self, id: JobId, arrived: bool) {
        let Some(wait) = self.inputs.waiting.get(&id) else {
            return;
        };
        let last_look = &mut self.inputs.last_look;
        let missing: Vec<PathBuf> = wait
            .inputs
            .iter()
            .filter(|p| !is_complete(p, last_look))
            .cloned()
            .collect();
        if missing.is_empty() {
            self.inputs.remove(id);
            tracing::info!(job = id, "its inputs are there; queued");
            self.node
                .committer
                .push(Write::Release { id }, Then::Released(id));
            return;
        }
        if !arrived && crate::store::now_ms() >= wait.until_ms {
            let reason = format!(
                "input never came: {} (waited until the rule's `wait_inputs` ran out)",
                missing
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            self.inputs.remove(id);
            tracing::error!(job = id, %reason, "gave up waiting");
            self.readout.counters.failed += 1;
            self.node
                .committer
                .push(Write::GiveUp { id, reason }, Then::Nothing);
        }
    }

    /// The store released a job: look for it in the queue at once.
    pub(super) fn released(&mut self) {
        self.planned.next_poll = Instant::now();
    }

    /// The jobs whose last run read an older version of `path`: run again, or left stale,
    /// as their rule says.
    pub(super) fn input_users(&mut self, path: &Path, users: Vec<(JobId, String)>) {
        let mut rerun = Vec::new();
        for (id, rule) in users {
            let on_change = self
                .set
                .index_of(&rule)
                .and_then(|i| self.set.file.rules[i].inputs.as_ref())
                .map_or(OnInputChange::Rerun, |d| d.on_change);
            match on_change {
                OnInputChange::Rerun => {
                    tracing::info!(job = id, rule = %rule, input = %path.display(), "its input changed; running it again");
                    rerun.push(id);
                }
                OnInputChange::Stale => {
                    tracing::info!(job = id, rule = %rule, input = %path.display(), "its input changed; its products are stale (`shotrouter stale`)");
                }
            }
        }
        if !rerun.is_empty() {
            self.node
                .committer
                .push(Write::Rerun { ids: rerun }, Then::Released(0));
        }
    }

    /// Records what a successful run used; then, if an input changed while it ran, asks the
    /// store who read the old version (this job among them, once its end is recorded).
    pub(super) fn record_use(&mut self, spec: &JobSpec, facts: &RunFacts) {
        let Some(claim) = spec.claim else {
            return;
        };
        if !self.set.file.lineage.record {
            return;
        }
        let used = facts.to_use(&spec.plan.inputs, &spec.plan.work_hash);
        self.node.committer.push(
            Write::Used {
                claim,
                used: Box::new(used),
            },
            Then::Nothing,
        );
        for path in &spec.plan.inputs {
            self.inputs.read.insert(path.clone());
        }
    }

    /// After a run's end is written: an input whose version differs from the one the run read
    /// changed while it ran.
    pub(super) fn recheck_inputs(&mut self, planned: &[PathBuf], facts: &RunFacts) {
        for (path, read) in planned.iter().zip(&facts.inputs) {
            let now = FileVersion::of(path);
            if now.is_some() && now != *read {
                self.input_arrived(path);
            }
        }
    }

    /// At start: the jobs the store holds waiting, and the inputs jobs have read.
    pub(super) fn load_inputs(&mut self) {
        let Some(store) = self.node.store.as_ref() else {
            return;
        };
        let waiting = store.waiting_jobs();
        let read = store.declared_inputs();
        match read {
            Ok(paths) => {
                for at in paths {
                    let abs = match self.set.file.watch.iter().find(|w| w.name == at.root) {
                        Some(root) => root.path.join(&at.rel),
                        None if at.root.is_empty() => at.rel,
                        None => continue,
                    };
                    self.inputs.read.insert(abs);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the declared inputs from the store"),
        }
        match waiting {
            Ok(jobs) => {
                for job in jobs {
                    self.watch_waiting(job.id, &job.rule, job.wait);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the waiting jobs from the store"),
        }
    }

    /// Tells the store each rule's work hash and windows (at start and after a reload): the
    /// windows are for workers, so they are written even when lineage is not recorded.
    pub(super) fn record_rule_defs(&mut self) {
        if self.node.store.is_none() {
            return;
        }
        let defs = self
            .set
            .file
            .rules
            .iter()
            .map(|r| RuleDef {
                name: r.name.clone(),
                work_hash: r.work_hash.clone(),
                windows: crate::rules::schedule::list_text(&r.windows),
            })
            .collect();
        self.node
            .committer
            .push(Write::RuleDefs { defs }, Then::Nothing);
    }
}
