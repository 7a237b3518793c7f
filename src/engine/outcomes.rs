//! What the workers report: a step's start (recorded with the claim's token; a cancelled or
//! superseded claim stops the attempt), and an attempt's end (done, failed, or retried after
//! an exponential backoff), each written in the engine's next group commit; both are told as
//! OpenLineage events (`lineage`) when the plan asks.

use std::time::{Duration, Instant};

use crate::exec::executor::{AttemptId, Finished, Report};
use crate::exec::progress::StepProgress;
use crate::exec::runner::{JobSpec, Outcome};
use crate::rules;
use crate::source::{FileEvent, Origin, SourceEvent};
use crate::store::queue::{Answer, Claim, Ending, Write};
use crate::store::{JobId, JobProgress};

use super::Engine;
use super::fair_queue::Pending;
use super::node::outbox::Then;
use super::node::pacing::{progress_due, retry_delay};
use super::node::telling::Telling;
use super::notify::About;
use crate::rules::NotifyEvent;

impl Engine {
    /// Handles a worker's report; while stopping, ends are recorded without retries or chains.
    pub(super) fn on_report(&mut self, report: Report) {
        match report {
            Report::Started {
                claim,
                job,
                temp_output,
                run,
            } => {
                self.attempts.running.insert(claim.id, (job, claim));
                self.readout.started(&claim.id.to_string());
                self.lineage_started(&claim);
                self.node.committer.push(
                    Write::Started {
                        claim,
                        run,
                        temp_output,
                    },
                    Then::Started(job),
                );
            }
            Report::Progress { id, progress } => {
                self.readout.progress(&id, progress);
                self.record_progress(&id, progress);
            }
            Report::Finished(finished) => self.on_finished(*finished),
        }
    }

    /// Writes how far a running attempt got to the store, at most once per
    /// [`PROGRESS_EVERY`] and only when its frame moved ([`progress_due`]), where
    /// `shotrouter job`, the API of any node and the dashboard read it (the telemetry snapshot
    /// shows every block on this node at once).
    fn record_progress(&mut self, id: &str, step: StepProgress) {
        let Some(&(_, claim)) = id
            .parse()
            .ok()
            .and_then(|id| self.attempts.running.get(&id))
        else {
            return;
        };
        let now = Instant::now();
        if !progress_due(self.attempts.written.get(&claim.id).copied(), &step, now) {
            return;
        }
        self.attempts.written.insert(claim.id, (now, step.frame));
        let progress = JobProgress {
            frame: step.frame,
            total_frames: step.total_frames,
            fps_milli: step.fps_milli,
        };
        self.node
            .committer
            .push_progress(Write::Progress { claim, progress });
    }

    fn on_finished(&mut self, finished: Finished) {
        let stopping = self.node.stopping;
        let Finished {
            spec,
            outcome,
            duration,
            facts,
        } = finished;
        self.planned.queue.release(&spec.rule);
        if let Some(claim) = spec.claim {
            self.attempts.running.remove(&claim.id);
            self.attempts.written.remove(&claim.id);
        }
        self.lineage_ended(&spec, &outcome, duration);
        // A step over within 1 ms was never reported started: it started `duration` ago.
        let started_at_ms = self
            .readout
            .active
            .get(&spec.id)
            .and_then(|j| j.started_at_ms)
            .or_else(|| Some(crate::store::now_ms() - duration.as_millis() as i64));
        self.readout.finished(&spec.id);
        self.note_duration(duration);
        let about = |reason: Option<String>| About {
            job: &spec.id,
            rule: &spec.rule,
            path: &spec.path,
            attempt: spec.attempt,
            reason,
            started_at_ms,
            duration: Some(duration),
        };
        self.readout.timings.observe_job(&spec.rule, duration);
        let mut tellings = Vec::new();
        if matches!(
            &outcome,
            Outcome::Failed(crate::exec::runner::Failure::Deliver(
                crate::deliver::DeliverError::Verify(_)
            ))
        ) {
            self.readout.counters.verify_failed += 1;
            let reason = match &outcome {
                Outcome::Failed(failure) => Some(failure.to_string()),
                _ => None,
            };
            tellings.extend(self.telling(NotifyEvent::VerifyFailed, about(reason)));
        }
        let rule = self
            .set
            .index_of(&spec.rule)
            .map(|i| &self.set.file.rules[i]);
        let retries = rule.map_or(0, |r| r.retries);
        let backoff = rule.map_or(rules::DEFAULT_BACKOFF, |r| r.backoff);
        let ms = duration.as_millis() as u64;
        let ending = match &outcome {
            Outcome::Succeeded { published } => {
                tracing::info!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), status = "ok", duration_ms = ms, "end");
                self.readout.counters.succeeded += 1;
                tellings.extend(self.telling(NotifyEvent::Done, about(None)));
                self.record_use(&spec, &facts);
                self.conform_after_publish(&spec, published.as_deref());
                // In --once there is no watcher to see the product land: route it here so
                // chains (frames → movie → SAN copy) complete.
                if self.options.once
                    && let Some(product) = published
                    && let Some((root, rel)) = self.locate(product)
                {
                    let _ = self.feedback.send(SourceEvent::File(FileEvent {
                        root,
                        rel,
                        kind: rules::EventKind::MovedTo,
                        origin: Origin::Event,
                    }));
                }
                Ending::Done
            }
            Outcome::Failed(failure) => {
                let reason = failure.to_string();
                tracing::warn!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), status = %reason, duration_ms = ms, attempt = spec.attempt, log = %spec.log_path.display(), "end");
                if spec.attempt <= retries {
                    let delay = if stopping {
                        Duration::ZERO
                    } else {
                        retry_delay(backoff, spec.attempt)
                    };
                    let not_before = crate::store::now_ms() + delay.as_millis() as i64;
                    // The attempt's `verify_failed` goes at once: its end is not final.
                    for telling in tellings {
                        telling.send(&self.node.notifier);
                    }
                    return self.retry(spec, reason, not_before, delay, stopping);
                }
                self.readout.counters.failed += 1;
                tellings.extend(self.telling(NotifyEvent::Failed, about(Some(reason.clone()))));
                Ending::Failed { reason }
            }
            // Killed by this node's stop: queued again for the next start.
            Outcome::Cancelled if stopping => {
                tracing::info!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), status = "interrupted", "end");
                Ending::Interrupted
            }
            Outcome::Cancelled => {
                tracing::warn!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), status = "cancelled", "end");
                self.readout.counters.failed += 1;
                tellings.extend(self.telling(NotifyEvent::Failed, about(Some("cancelled".into()))));
                Ending::Cancelled
            }
        };
        let inputs = (ending == Ending::Done && !spec.plan.inputs.is_empty())
            .then(|| spec.plan.inputs.clone());
        self.end(spec, ending, tellings);
        if let Some(inputs) = inputs {
            self.recheck_inputs(&inputs, &facts);
        }
    }

    /// Records an attempt's end for good; its notices go once the store took it.
    fn end(&mut self, spec: JobSpec, ending: Ending, tellings: Vec<Telling>) {
        self.planned.outstanding = self.planned.outstanding.saturating_sub(1);
        if let Some(bar) = &self.readout.progress {
            bar.inc(1);
        }
        match spec.claim {
            Some(claim) => self.node.committer.push(
                Write::Finish { claim, ending },
                Then::Ended(Box::new(spec), tellings),
            ),
            None => {
                for telling in tellings {
                    telling.send(&self.node.notifier);
                }
            }
        }
    }

    /// Queues a failed attempt again after its backoff (at once while stopping: the next
    /// start runs it).
    fn retry(
        &mut self,
        spec: JobSpec,
        reason: String,
        not_before: i64,
        delay: Duration,
        stopping: bool,
    ) {
        self.readout.counters.retried += 1;
        let at = Instant::now() + delay;
        match spec.claim {
            Some(claim) => {
                let ending = Ending::Retry { reason, not_before };
                let then = if stopping {
                    Then::Ended(Box::new(spec), Vec::new())
                } else {
                    Then::Retry(Box::new(spec), at)
                };
                if stopping {
                    self.planned.outstanding = self.planned.outstanding.saturating_sub(1);
                }
                self.node
                    .committer
                    .push(Write::Finish { claim, ending }, then);
            }
            None if stopping => {
                self.planned.outstanding = self.planned.outstanding.saturating_sub(1)
            }
            None => self.requeue(spec, at),
        }
    }

    fn requeue(&mut self, spec: JobSpec, at: Instant) {
        tracing::info!(job = %spec.id, rule = %spec.rule, retry_in_ms = at.saturating_duration_since(Instant::now()).as_millis() as u64, "will retry");
        let id = spec.claim.map(|c| c.id).filter(|id| *id >= 0);
        let spec = JobSpec {
            attempt: spec.attempt + 1,
            claim: None,
            ..spec
        };
        self.planned.queue.delay(Pending { id, spec }, at);
    }

    /// Acts on the store's answer to a write, once committed.
    pub(super) fn apply(&mut self, then: Then, answer: Answer) {
        match (then, answer) {
            (Then::Nothing, _) => {}
            (
                Then::Enqueued { mut spec, reserved },
                Answer::Enqueued {
                    id,
                    claim,
                    superseded,
                },
            ) => {
                self.planned.ledger.forget(&spec.rule, &spec.path);
                self.stop_superseded(&superseded, id, &spec);
                if id >= 0 {
                    self.adopt(&mut spec, id);
                }
                match claim {
                    Some(claim) => {
                        spec.claim = (id >= 0).then_some(claim);
                        spec.attempt = claim.attempt;
                        self.note_lineage(&spec);
                        self.hand_over(*spec);
                    }
                    None if self.node.stopping || self.leaves_to_workers(&spec.rule) => {
                        if reserved {
                            self.planned.queue.release(&spec.rule);
                        }
                        // Recorded as queued: the next start, or a worker, runs it.
                        self.planned.outstanding = self.planned.outstanding.saturating_sub(1);
                    }
                    None => {
                        if reserved {
                            self.planned.queue.release(&spec.rule);
                        }
                        self.planned.queue.push(Pending {
                            id: (id >= 0).then_some(id),
                            spec: *spec,
                        });
                    }
                }
            }
            (Then::Enqueued { spec, reserved }, answer) => {
                self.planned.ledger.forget(&spec.rule, &spec.path);
                // A duplicate (this version already has a job) or a move the store followed.
                // A slot taken for it is freed.
                if let Answer::Moved { from } = answer {
                    tracing::info!(rule = %spec.rule, path = %spec.path.display(), from = %from.rel.display(), from_root = %from.root, "moved: this content already succeeded under its old name; the store follows it, nothing runs");
                } else {
                    tracing::debug!(rule = %spec.rule, path = %spec.path.display(), "the store already has this version");
                }
                if reserved {
                    self.planned.queue.release(&spec.rule);
                } else {
                    self.planned.queue.forget_unqueued(&spec.rule);
                }
                self.planned.outstanding = self.planned.outstanding.saturating_sub(1);
                if let Some(bar) = &self.readout.progress {
                    bar.inc(1);
                }
            }
            (Then::Claimed(mut spec), Answer::Claimed(claim)) => {
                spec.claim = (claim.id >= 0).then_some(claim);
                spec.attempt = claim.attempt;
                self.note_lineage(&spec);
                self.hand_over(*spec);
            }
            (Then::Claimed(spec), _) => {
                tracing::info!(job = %spec.id, rule = %spec.rule, "not claimable any more (cancelled, or claimed elsewhere); skipped");
                self.planned.queue.release(&spec.rule);
                if let Ok(id) = spec.id.parse() {
                    self.planned.known.remove(&id);
                }
                self.planned.outstanding = self.planned.outstanding.saturating_sub(1);
                if let Some(bar) = &self.readout.progress {
                    bar.inc(1);
                }
            }
            (Then::Started(job), answer) => {
                super::node::liveness::on_started(&*self.node.executor, job, &answer);
            }
            (Then::Waiting(spec, wait), Answer::Enqueued { id, superseded, .. }) => {
                self.planned.ledger.forget(&spec.rule, &spec.path);
                self.stop_superseded(&superseded, id, &spec);
                self.watch_waiting(id, &spec.rule, wait);
            }
            (Then::Waiting(spec, _), _) => {
                self.planned.ledger.forget(&spec.rule, &spec.path);
            }
            (Then::Released(_), _) => self.released(),
            (Then::InputUsers(path), Answer::Users(users)) => self.input_users(&path, users),
            (Then::InputUsers(_), _) => {}
            (Then::Retry(spec, at), Answer::Ok) => self.requeue(*spec, at),
            (Then::Retry(spec, _), answer) => {
                tracing::info!(
                    job = %spec.id,
                    store_said = answer.word(),
                    "not retried: cancelled by a user, or claimed again elsewhere"
                );
                self.forget(&spec);
                self.planned.outstanding = self.planned.outstanding.saturating_sub(1);
            }
            (Then::Ended(spec, tellings), answer) => {
                if let Answer::Stale { current } = answer {
                    tracing::error!(job = %spec.id, current_token = current, "end not recorded: the job was claimed again meanwhile");
                }
                super::node::telling::tell_after_end(tellings, &answer, &self.node.notifier);
                self.forget(&spec);
            }
        }
    }

    /// Follows how long attempts take (a moving average) and claims as many ahead as the
    /// workers start within one group commit: dozens for a flood of quick copies, none beyond
    /// one per worker for encodes that take minutes.
    fn note_duration(&mut self, duration: Duration) {
        let typical = match self.planned.typical_attempt {
            Some(typical) => (typical * 7 + duration) / 8,
            None => duration,
        };
        self.planned.typical_attempt = Some(typical);
        let jobs = self.set.file.jobs;
        let per_window = super::node::outbox::COMMIT_WINDOW.as_nanos() * jobs as u128
            / typical.as_nanos().max(1);
        self.planned
            .queue
            .set_prefetch(jobs + usize::try_from(per_window).unwrap_or(usize::MAX / 2));
    }

    /// Stops the attempts of jobs a newer version of their input superseded: the store already
    /// refuses their publish, so killing them only saves the machine's time.
    fn stop_superseded(&mut self, superseded: &[JobId], by: JobId, spec: &JobSpec) {
        for old in superseded {
            let running = self.attempts.running.get(old).map(|(job, _)| *job);
            tracing::info!(job = old, superseded_by = by, rule = %spec.rule, path = %spec.path.display(), running = running.is_some(), "superseded: a newer version of its input arrived");
            if let Some(handle) = running {
                self.node.executor.cancel(handle);
            }
        }
    }

    /// The claims this engine holds (handed to the executor, or running), each with its
    /// attempt once started: what the node loop checks for lost claims and hands back.
    pub(super) fn held_claims(&self) -> Vec<(JobId, Option<(AttemptId, Claim)>)> {
        let mut held: Vec<_> = self
            .attempts
            .running
            .iter()
            .map(|(id, run)| (*id, Some(*run)))
            .collect();
        held.extend(
            self.readout
                .active
                .keys()
                .filter_map(|id| id.parse::<JobId>().ok())
                .filter(|id| !self.attempts.running.contains_key(id))
                .map(|id| (id, None)),
        );
        held
    }

    fn forget(&mut self, spec: &JobSpec) {
        if let Some(claim) = spec.claim {
            self.planned.known.remove(&claim.id);
        }
    }

    /// The watch root and relative path of an absolute path under a root.
    pub(super) fn locate(&self, path: &std::path::Path) -> Option<(usize, std::path::PathBuf)> {
        let (root, rel) = self.set.locate(path)?;
        let index = self.set.file.watch.iter().position(|w| w.path == root)?;
        Some((index, rel.to_path_buf()))
    }
}
