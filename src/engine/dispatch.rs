//! From a routed file to a claimed job in the executor's hands: planning, the store record,
//! the [`FairQueue`](super::fair_queue::FairQueue) and the claim.
//!
//! A job is claimed in the store before it is handed to the executor, and only while the fair
//! queue has a slot free. Retries wait in the queue, not in the executor.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::exec::runner::JobSpec;
use crate::media::sequence::Sequence;
use crate::os::version::FileVersion;
use crate::route::cut;
use crate::route::plan;
use crate::rules::OnRename;
use crate::store::JobId;
use crate::store::queue::{NewJob, QueuedJob, Write};

use super::Engine;
use super::fair_queue::Pending;
use super::node::outbox::Then;
use super::stored_plan::StoredPlan;

impl Engine {
    pub(super) fn dispatch(
        &mut self,
        index: usize,
        root: usize,
        rel: &Path,
        version: Option<FileVersion>,
    ) {
        self.dispatch_subject(index, root, rel, version, None);
    }

    /// Records and queues a job of rule `index` on a file, or on a sequence whose first frame
    /// is `rel`. A sequence is identified by its `####` path and a digest of its frames.
    pub(super) fn dispatch_subject(
        &mut self,
        index: usize,
        root: usize,
        rel: &Path,
        version: Option<FileVersion>,
        sequence: Option<Sequence>,
    ) {
        let set = self.set.clone();
        let rule = &set.file.rules[index];
        let identity_rel = match &sequence {
            Some(seq) => seq
                .hashes_path()
                .strip_prefix(&set.file.watch[root].path)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| seq.hashes_path()),
            None => rel.to_path_buf(),
        };
        let abs = set.file.watch[root].path.join(&identity_rel);
        if let Some(version) = version
            && !self.planned.ledger.record(&rule.name, &abs, version)
        {
            tracing::debug!(rule = %rule.name, path = %abs.display(), "this version was already dispatched");
            return;
        }
        let mut spec = match self.plan_job(index, root, rel, sequence.as_ref()) {
            Ok(spec) => spec,
            Err(plan::PlanError::Skipped(reason)) => {
                self.record_skipped(index, root, rel, version, reason);
                return;
            }
            Err(e) => {
                self.record_unplannable(index, root, &identity_rel, version, &e.to_string());
                return;
            }
        };
        spec.path = abs;
        // Declared inputs not all there: recorded waiting for them (only a store can hold it).
        let waiting = match (
            self.node.store.is_some() && version.is_some(),
            &spec.plan.inputs,
        ) {
            (true, inputs) if !inputs.is_empty() => {
                let missing = self.missing_inputs(&spec);
                (!missing.is_empty()).then(|| self.wait_for(&rule.name, missing))
            }
            _ => None,
        };
        if waiting.is_none() {
            self.planned.outstanding += 1;
            self.readout.counters.planned += 1;
            if let Some(bar) = &self.readout.progress {
                bar.inc_length(1);
            }
        }
        match (self.node.store.is_some(), version) {
            (true, Some(version)) => {
                let to_workers = self.leaves_to_workers(&rule.name) || waiting.is_some();
                let claim = !to_workers && self.planned.queue.has_slot_now(&rule.name);
                if claim {
                    self.planned.queue.reserve(&rule.name);
                } else if !to_workers {
                    self.planned.queue.note_unqueued(&rule.name);
                }
                let plan = self.stored_plan(&spec);
                let then_wait = waiting.clone();
                let job = NewJob {
                    rule: rule.name.clone(),
                    rule_hash: rule.definition_hash.clone(),
                    input: self.rooted(root, &identity_rel),
                    version,
                    steps: spec.plan.steps.clone(),
                    output: spec.plan.output.as_ref().map(|o| o.final_path.clone()),
                    unplannable: None,
                    skipped: None,
                    follow_moves: rule.on_rename == OnRename::Follow
                        && match &sequence {
                            Some(seq) => seq
                                .frames
                                .iter()
                                .all(|f| single_link(&seq.dir.join(&f.name))),
                            None => single_link(&spec.path),
                        },
                    baseline_runs: self.options.once,
                    tags: rule.tags.clone(),
                    concurrency: rule.concurrency.map(|n| n as u32),
                    priority: rule.priority,
                    plan,
                    waiting,
                };
                let then = match then_wait {
                    Some(wait) => Then::Waiting(Box::new(spec), wait),
                    None => Then::Enqueued {
                        spec: Box::new(spec),
                        reserved: claim,
                    },
                };
                self.node.committer.push(
                    Write::Enqueue {
                        job: Box::new(job),
                        claim,
                    },
                    then,
                );
            }
            // Deletions and runs without a store are not recorded.
            _ => self.planned.queue.push(Pending { id: None, spec }),
        }
    }

    /// A job that cannot be built (a variable without a value, `on_gaps: fail`): logged,
    /// counted failed, and recorded as a failed job so `shotrouter jobs --status failed` shows it.
    fn record_unplannable(
        &mut self,
        index: usize,
        root: usize,
        rel: &Path,
        version: Option<FileVersion>,
        reason: &str,
    ) {
        let rule = &self.set.file.rules[index];
        let path = self.set.file.watch[root].path.join(rel);
        tracing::error!(rule = %rule.name, path = %path.display(), error = %reason, "cannot build the job");
        self.readout.counters.failed += 1;
        self.notify(
            crate::rules::NotifyEvent::Failed,
            super::notify::About {
                job: "",
                rule: &rule.name,
                path: &path,
                attempt: 0,
                reason: Some(reason.to_string()),
                started_at_ms: None,
                duration: None,
            },
        );
        if let (true, Some(version)) = (self.node.store.is_some(), version) {
            let job = NewJob {
                rule: rule.name.clone(),
                rule_hash: rule.definition_hash.clone(),
                input: self.rooted(root, rel),
                version,
                steps: Vec::new(),
                output: None,
                unplannable: Some(reason.to_string()),
                skipped: None,
                follow_moves: false,
                baseline_runs: true,
                tags: Vec::new(),
                concurrency: None,
                priority: 0,
                plan: String::new(),
                waiting: None,
            };
            self.node.committer.push(
                Write::Enqueue {
                    job: Box::new(job),
                    claim: false,
                },
                Then::Nothing,
            );
        }
    }

    /// A frame the rule's `frames:` leaves out: logged, and recorded as a skipped job with the
    /// reason so `shotrouter jobs --status skipped` shows it. Nothing runs; not a failure.
    fn record_skipped(
        &mut self,
        index: usize,
        root: usize,
        rel: &Path,
        version: Option<FileVersion>,
        reason: String,
    ) {
        let rule = &self.set.file.rules[index];
        let path = self.set.file.watch[root].path.join(rel);
        tracing::info!(rule = %rule.name, path = %path.display(), reason = %reason, "skipped");
        if let (true, Some(version)) = (self.node.store.is_some(), version) {
            let job = NewJob {
                rule: rule.name.clone(),
                rule_hash: rule.definition_hash.clone(),
                input: self.rooted(root, rel),
                version,
                steps: Vec::new(),
                output: None,
                unplannable: None,
                skipped: Some(reason),
                follow_moves: false,
                baseline_runs: self.options.once,
                tags: Vec::new(),
                concurrency: None,
                priority: 0,
                plan: String::new(),
                waiting: None,
            };
            self.node.committer.push(
                Write::Enqueue {
                    job: Box::new(job),
                    claim: false,
                },
                Then::Nothing,
            );
        }
    }

    /// Plans rule `index` for a file (or a sequence starting at `rel`).
    pub(super) fn plan_job(
        &mut self,
        index: usize,
        root: usize,
        rel: &Path,
        sequence: Option<&Sequence>,
    ) -> Result<JobSpec, plan::PlanError> {
        let set = self.set.clone();
        let rule = &set.file.rules[index];
        let root_path = &set.file.watch[root].path;
        self.planned.next_job += 1;
        let id = format!("{}-{}", self.planned.run_tag, self.planned.next_job);
        // A farm task reads the view from the spool every farm node mounts, not this node's state.
        let views = match &rule.slurm {
            Some(request) => request.spool.join("views"),
            None => self.options.state_dir.join("views"),
        };
        let view_dir = views.join(&id);
        let input = sequence.map(|sequence| plan::SequenceInput {
            sequence,
            view_dir: &view_dir,
        });
        if rule.sequence.is_some() && input.is_none() {
            return Err(plan::PlanError::NoFrames);
        }
        let cuts = self.cuts.index.clone();
        let planned = plan::plan(
            &set,
            index,
            root_path,
            rel,
            &format!("sr{id}"),
            input,
            &cuts,
        )?;
        if !planned.missing.is_empty() {
            let on_gaps = rule
                .sequence
                .as_ref()
                .map_or("warn", |s| s.on_gaps.as_str());
            tracing::warn!(rule = %rule.name, path = %root_path.join(rel).display(), missing = %crate::media::sequence::format_ranges(&planned.missing), on_gaps, "sequence has missing frames");
        }
        Ok(JobSpec {
            log_path: self.log_path(&rule.name, &id),
            id,
            rule: rule.name.clone(),
            path: root_path.join(rel),
            plan: planned.job,
            allowed_roots: plan::allowed_output_roots(&set),
            attempt: 1,
            claim: None,
        })
    }

    /// The job's plan as the store keeps it: `spec`'s, with where this watcher's trees are,
    /// so any node can run it without the rules file.
    pub(super) fn stored_plan(&self, spec: &JobSpec) -> String {
        let roots = roots_of(&self.set);
        let folders: Vec<std::path::PathBuf> = roots
            .iter()
            .map(|(_, path)| path.clone())
            .chain(self.set.file.outputs.iter().cloned())
            .collect();
        StoredPlan::new(
            spec.plan.clone(),
            roots,
            self.set.file.outputs.clone(),
            &self.planned.mounts.get(&folders),
        )
        .to_text()
    }

    /// Whether this node leaves a rule's jobs to workers instead of running them itself:
    /// `watch --no-run`, or a rule with `tags:` (only workers hold tags).
    pub(super) fn leaves_to_workers(&self, rule: &str) -> bool {
        self.options.no_run
            || self
                .set
                .index_of(rule)
                .is_some_and(|i| !self.set.file.rules[i].tags.is_empty())
    }

    fn log_path(&self, rule: &str, id: &str) -> std::path::PathBuf {
        self.options
            .state_dir
            .join("logs")
            .join(rule)
            .join(format!("{id}.log"))
    }

    /// Names a job after its store id: its log file, and the set of jobs this engine holds.
    pub(super) fn adopt(&mut self, spec: &mut JobSpec, id: JobId) {
        spec.id = id.to_string();
        spec.log_path = self.log_path(&spec.rule, &spec.id);
        self.planned.known.insert(id);
    }

    /// Takes slots for waiting jobs: recorded ones are claimed first (handed over once the
    /// claim is committed), unrecorded ones go to a worker at once.
    pub(super) fn fill(&mut self, now: Instant) {
        if self.node.stopping {
            return;
        }
        while let Some(Pending { id, spec }) = self.planned.queue.pick(now) {
            match (id, self.node.store.is_some()) {
                (Some(id), true) => self
                    .node
                    .committer
                    .push(Write::Claim { id }, Then::Claimed(Box::new(spec))),
                _ => self.hand_over(spec),
            }
        }
    }

    /// Gives a claimed job to the workers; while stopping, gives the claim back instead (the
    /// job is queued for the next start).
    pub(super) fn hand_over(&mut self, spec: JobSpec) {
        if self.node.stopping {
            self.planned.outstanding = self.planned.outstanding.saturating_sub(1);
            if let Some(claim) = spec.claim {
                self.node.committer.push(
                    Write::Finish {
                        claim,
                        ending: crate::store::queue::Ending::Interrupted,
                    },
                    Then::Nothing,
                );
            }
            return;
        }
        self.readout.ready(&spec);
        self.node.executor.submit(spec);
    }

    /// Takes jobs queued in the store that this engine does not hold (resumed at start-up, or
    /// queued by `shotrouter retry`/`rerun`), planned again with the current rules.
    pub(super) fn resume_queued(&mut self, cursor: i64) {
        let Some(store) = self.node.store.as_ref() else {
            return;
        };
        let queued = match store.queued_since(cursor) {
            Ok(queued) => queued,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read queued jobs from the store");
                return;
            }
        };
        for job in queued {
            self.planned.cursor = self.planned.cursor.max(job.cursor);
            if self.planned.known.contains(&job.id) {
                // Seen again after a `bump`: the job keeps its place in line at its priority.
                if self.planned.queue.set_priority(job.id, job.priority) {
                    tracing::info!(job = job.id, priority = job.priority, "queued job bumped");
                }
                if job.run_now && self.planned.queue.run_now(job.id) {
                    tracing::info!(job = job.id, "queued job may start outside its window");
                }
                continue;
            }
            if self.leaves_to_workers(&job.rule) {
                continue;
            }
            if job.rule == crate::rules::conform::CONFORM_RULE && self.set.file.conform.is_some() {
                self.resume_conform(job);
            } else {
                self.resume(job);
            }
        }
    }

    fn resume(&mut self, job: QueuedJob) {
        let root = self
            .set
            .file
            .watch
            .iter()
            .position(|w| w.name == job.input.root);
        let Some(root) = root else {
            // Another watcher's tree (a shared store): its watcher or a worker runs it.
            tracing::debug!(job = job.id, root = %job.input.root, "queued job of a root this node does not watch; left to others");
            return;
        };
        let Some(index) = self.set.index_of(&job.rule) else {
            let reason = format!("rule `{}` is no longer in the rules", job.rule);
            tracing::error!(job = job.id, %reason, "cannot resume a queued job");
            self.node
                .committer
                .push(Write::Drop { id: job.id, reason }, Then::Nothing);
            return;
        };
        let rel = job.input.rel.clone();
        let planned = if self.set.file.rules[index].sequence.is_some() {
            let abs = self.set.file.watch[root].path.join(&rel);
            match super::sequences::reread_sequence(&abs) {
                Some(mut seq) => {
                    let first = rel.with_file_name(&seq.frames[0].name);
                    // The frames its `frames:` allows, as when it was first dispatched.
                    let rule = &self.set.file.rules[index];
                    cut::restrict_sequence(&self.cuts.index, rule, &first, &mut seq);
                    match seq.frames.first() {
                        Some(kept) => {
                            let first = rel.with_file_name(&kept.name);
                            self.plan_job(index, root, &first, Some(&seq))
                        }
                        None => Err(plan::PlanError::NoFrames),
                    }
                }
                None => Err(plan::PlanError::NoFrames),
            }
        } else {
            self.plan_job(index, root, &rel, None)
        };
        let mut spec = match planned {
            Ok(spec) => spec,
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(job = job.id, error = %reason, "cannot build the queued job");
                self.readout.counters.failed += 1;
                self.node
                    .committer
                    .push(Write::Drop { id: job.id, reason }, Then::Nothing);
                return;
            }
        };
        spec.path = self.set.file.watch[root].path.join(&rel);
        let missing = self.missing_inputs(&spec);
        if !missing.is_empty() {
            let wait = self.wait_for(&job.rule, missing);
            self.node.committer.push(
                Write::Wait {
                    id: job.id,
                    wait: wait.clone(),
                },
                Then::Nothing,
            );
            self.watch_waiting(job.id, &job.rule, wait);
            return;
        }
        let rule = &self.set.file.rules[index];
        let plan = self.stored_plan(&spec);
        self.node.committer.push(
            Write::Replan {
                id: job.id,
                rule_hash: rule.definition_hash.clone(),
                steps: spec.plan.steps.clone(),
                output: spec.plan.output.as_ref().map(|o| o.final_path.clone()),
                plan,
            },
            Then::Nothing,
        );
        self.adopt(&mut spec, job.id);
        spec.attempt = job.attempts + 1;
        tracing::info!(job = job.id, rule = %job.rule, path = %spec.path.display(), "resuming queued job");
        self.planned.outstanding += 1;
        if let Some(bar) = &self.readout.progress {
            bar.inc_length(1);
        }
        let wait = Duration::from_millis((job.not_before - crate::store::now_ms()).max(0) as u64);
        self.planned
            .queue
            .note_queued(job.id, &spec.rule, job.priority, job.run_now);
        let pending = Pending {
            id: Some(job.id),
            spec,
        };
        if wait > Duration::ZERO {
            self.planned.queue.delay(pending, Instant::now() + wait);
        } else {
            self.planned.queue.push(pending);
        }
    }
}

/// Whether `path` is the only name of its file: a file with other hard links (a publish
/// that links frames instead of copying them) was not moved, its old name still holds it.
fn single_link(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|m| m.nlink() <= 1)
}

/// Each watch root: its name and its path on this node.
pub(super) fn roots_of(set: &crate::route::matcher::RuleSet) -> Vec<(String, std::path::PathBuf)> {
    set.file
        .watch
        .iter()
        .map(|r| (r.name.clone(), r.path.clone()))
        .collect()
}

/// Each rule's `concurrency:`, the fair queue's per-rule limits.
pub(super) fn rule_limits(set: &crate::route::matcher::RuleSet) -> HashMap<String, usize> {
    set.file
        .rules
        .iter()
        .filter_map(|r| r.concurrency.map(|c| (r.name.clone(), c)))
        .collect()
}

/// The rules whose jobs run on the farm, and how many may be in flight there
/// (`slurm.max_jobs`).
pub(super) fn farm_lane(
    set: &crate::route::matcher::RuleSet,
) -> (std::collections::HashSet<String>, usize) {
    let rules = set
        .file
        .rules
        .iter()
        .filter(|r| r.slurm.is_some())
        .map(|r| r.name.clone())
        .collect();
    let limit = set
        .file
        .farm
        .as_ref()
        .map_or(crate::rules::farm::DEFAULT_FARM_MAX_JOBS, |f| f.max_jobs);
    (rules, limit)
}
