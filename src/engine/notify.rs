//! When to notify (`notify:` in rules.yaml): a job done, failed for good (after its last retry,
//! cancelled, or impossible to plan), an attempt whose product failed `verify:`, and a job
//! queued longer than a target's `stuck_after` (in this engine, or in the store for workers: a
//! worker tells the ends of the jobs it runs itself). The engine only decides and queues;
//! [`Notifier`](crate::exec::notifier::Notifier) delivers on its own thread, so a webhook that
//! is down never holds up a job or the loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::exec::notifier::Notice;
use crate::rules::{NotifyEvent, NotifyTarget};
use crate::store::now_ms;

use super::Engine;
use super::node::telling::Telling;

/// How often queued jobs are checked for `stuck` (when some target asks for it), at most: a
/// shorter `stuck_after` is checked four times within it.
pub const STUCK_CHECK: Duration = Duration::from_secs(1);

/// How often queued jobs are checked for `stuck`, at least.
const STUCK_CHECK_MIN: Duration = Duration::from_millis(50);

/// Most jobs queued for workers read from the store at one look for `stuck` (the oldest).
const STUCK_READ: usize = 1000;

/// What the engine knows of an attempt when it notifies about it.
pub(super) struct About<'a> {
    pub job: &'a str,
    pub rule: &'a str,
    pub path: &'a Path,
    pub attempt: u32,
    pub reason: Option<String>,
    pub started_at_ms: Option<i64>,
    pub duration: Option<Duration>,
}

impl Engine {
    /// The targets of `rule` that want `event`.
    fn targets(&self, rule: &str, event: NotifyEvent) -> Vec<Arc<NotifyTarget>> {
        let all = match self.set.index_of(rule) {
            Some(i) => self.set.file.rules[i].notify_targets(&self.set.file),
            None => &self.set.file.notify[..],
        };
        all.iter()
            .filter(|t| t.wants(event))
            .map(|t| Arc::new(t.clone()))
            .collect()
    }

    /// Queues a notification of `event` for every target of the job's rule that wants it.
    pub(super) fn notify(&self, event: NotifyEvent, about: About<'_>) {
        if let Some(telling) = self.telling(event, about) {
            telling.send(&self.node.notifier);
        }
    }

    /// What [`notify`](Self::notify) would send, to send once the store recorded the end it
    /// tells of; `None` when no target wants `event`.
    pub(super) fn telling(&self, event: NotifyEvent, about: About<'_>) -> Option<Telling> {
        let targets = self.targets(about.rule, event);
        if targets.is_empty() {
            return None;
        }
        let mut notice = Notice::new(event, about.job, about.rule, about.path);
        notice.attempt = about.attempt;
        notice.reason = about.reason;
        notice.node = self.node.name.clone();
        notice.at_ms = now_ms();
        notice.started_at_ms = about.started_at_ms;
        notice.duration_ms = about.duration.map(|d| d.as_millis() as u64);
        Some(Telling::new(notice, targets))
    }

    /// How often to look for stuck jobs; `None` when no target asks for `stuck`.
    fn stuck_check_every(&self) -> Option<Duration> {
        let rules = self.set.file.rules.iter();
        self.set
            .file
            .notify
            .iter()
            .chain(rules.flat_map(|r| r.notify.iter().flatten()))
            .filter(|t| t.wants(NotifyEvent::Stuck))
            .map(|t| (t.stuck_after / 4).clamp(STUCK_CHECK_MIN, STUCK_CHECK))
            .min()
    }

    /// The jobs this watcher queued in the store for workers (rules it leaves to them whose
    /// targets want `stuck`, under the roots it owns, not waiting out a retry's backoff) that no
    /// worker has claimed yet: its engine holds none of them, so the store is asked for them,
    /// only while some target asks for `stuck`, and for at most [`STUCK_READ`].
    fn queued_for_workers(&self) -> Vec<(String, String, PathBuf, u32)> {
        let Some(store) = self.node.store.as_ref() else {
            return Vec::new();
        };
        // This engine never queues these itself, so none is counted twice.
        let rules: Vec<String> = self
            .set
            .file
            .rules
            .iter()
            .filter(|r| self.leaves_to_workers(&r.name))
            .filter(|r| {
                r.notify_targets(&self.set.file)
                    .iter()
                    .any(|t| t.wants(NotifyEvent::Stuck))
            })
            .map(|r| r.name.clone())
            .collect();
        if rules.is_empty() {
            return Vec::new();
        }
        let queued = match store.queued_due(&rules, now_ms(), STUCK_READ) {
            Ok(queued) => queued,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the jobs queued for workers");
                return Vec::new();
            }
        };
        queued
            .into_iter()
            .filter_map(|job| {
                let root = self
                    .set
                    .file
                    .watch
                    .iter()
                    .find(|w| w.name == job.input.root)?;
                Some((
                    job.id.to_string(),
                    job.rule,
                    root.path.join(&job.input.rel),
                    job.attempts + 1,
                ))
            })
            .collect()
    }

    /// Looks at the jobs waiting for a slot (and claimed ones waiting for a worker, and those
    /// queued in the store for `shotrouter worker`s): each target is told once per job that
    /// has waited longer than its `stuck_after`.
    pub(super) fn check_stuck(&mut self, now: Instant) {
        let Some(every) = self.stuck_check_every() else {
            self.stuck.since.clear();
            self.stuck.next_check = None;
            return;
        };
        if self.stuck.next_check.is_some_and(|at| now < at) {
            return;
        }
        self.stuck.next_check = Some(now + every);
        let mut waiting: Vec<(String, String, PathBuf, u32)> = self
            .planned
            .queue
            .waiting()
            .map(|s| (s.id.clone(), s.rule.clone(), s.path.clone(), s.attempt))
            .collect();
        waiting.extend(self.queued_for_workers());
        waiting.extend(
            self.readout
                .active
                .values()
                .filter(|j| j.started_at_ms.is_none())
                .map(|j| {
                    (
                        j.id.clone(),
                        j.rule.clone(),
                        j.path.clone().into(),
                        j.attempt,
                    )
                }),
        );
        let mut since = std::mem::take(&mut self.stuck.since);
        let mut kept = HashMap::with_capacity(waiting.len());
        for (id, rule, path, attempt) in waiting {
            let (first, mut told) = since.remove(&id).unwrap_or((now, 0));
            let waited = now.saturating_duration_since(first);
            let targets = self.targets(&rule, NotifyEvent::Stuck);
            let mut due = Vec::new();
            for (i, target) in targets.into_iter().enumerate().take(64) {
                if told & (1 << i) == 0 && waited >= target.stuck_after {
                    told |= 1 << i;
                    due.push(target);
                }
            }
            if !due.is_empty() {
                tracing::warn!(job = %id, rule = %rule, waited_s = waited.as_secs(), "job is stuck in the queue");
                let mut notice = Notice::new(NotifyEvent::Stuck, &id, &rule, &path);
                notice.attempt = attempt;
                notice.reason = Some(format!(
                    "queued for {}",
                    humantime::format_duration(Duration::from_secs(waited.as_secs()))
                ));
                notice.node = self.node.name.clone();
                notice.at_ms = now_ms();
                self.node.notifier.send(notice, &due);
            }
            kept.insert(id, (first, told));
        }
        self.stuck.since = kept;
    }
}
