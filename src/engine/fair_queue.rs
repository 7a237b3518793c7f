//! The fair queue: planned jobs waiting for a slot, per rule, and the slots in use.
//!
//! Jobs of a higher priority (the rule's `priority:`, or a job's own after `shotrouter bump`)
//! start first. Rules of one priority take turns (round-robin), so ten thousand frames for one
//! rule do not starve the SAN copy of another; within a rule jobs keep their arrival order. A slot is free while fewer
//! than `jobs` run plus a few claimed and ready, as many as the executor starts within one
//! group commit (see [`FairQueue::set_prefetch`]), so it never waits on the store between two
//! short jobs and a node never hoards long ones another node could run. A plain data
//! structure: the engine passes the clock in.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use crate::exec::runner::JobSpec;
use crate::store::JobId;

/// Most claimed jobs a node keeps ready beside its running ones.
const MAX_PREFETCH: usize = 64;

/// A planned job waiting for a slot: its store id when it is recorded.
#[derive(Debug)]
pub struct Pending {
    /// The job's id in the store.
    pub id: Option<JobId>,
    /// What it runs.
    pub spec: JobSpec,
}

/// Jobs waiting for a slot, per rule, and the slots in use.
#[derive(Debug, Default)]
pub struct FairQueue {
    queues: BTreeMap<String, VecDeque<Pending>>,
    rotation: usize,
    delayed: Vec<(Instant, Pending)>,
    in_use: HashMap<String, usize>,
    in_use_total: usize,
    /// New jobs per rule whose record (without a claim) is not committed yet: they are ahead
    /// of any job that arrives after them.
    unqueued: HashMap<String, usize>,
    limit: usize,
    prefetch: usize,
    rule_limits: HashMap<String, usize>,
    /// Each rule's `priority:` (absent: 0).
    priorities: HashMap<String, i32>,
    /// Jobs whose priority is not their rule's (bumped), by store id, with their rule.
    bumped: HashMap<JobId, (String, i32)>,
    /// Rules paused (`shotrouter pause --rule`): their jobs wait.
    paused_rules: HashSet<String>,
    /// This node is paused (`shotrouter pause --node`): nothing takes a slot.
    paused_node: bool,
    /// Rules outside their `window:` now: their jobs wait, except those run now.
    closed: HashSet<String>,
    /// Jobs `shotrouter run-now` lets start outside their rule's window, with their rule.
    run_now: HashMap<JobId, String>,
    /// Rules whose jobs run on the farm: they take the farm's slots (`slurm.max_jobs`), not
    /// this node's.
    farm_rules: HashSet<String>,
    farm_limit: usize,
    farm_in_use: usize,
    /// Slots taken in the farm's lane, per rule: a slot goes back to the lane it came from,
    /// even when a reload moved its rule between lanes meanwhile.
    farm_taken: HashMap<String, usize>,
    /// Jobs whose run a previous life of this node left going (a farm task to adopt): they
    /// are taken first, paused, outside their window or not, since they already run.
    following: HashSet<JobId>,
}

impl FairQueue {
    /// A queue for `jobs` workers with per-rule `concurrency` limits.
    pub fn new(jobs: usize, rule_limits: HashMap<String, usize>) -> FairQueue {
        FairQueue {
            limit: jobs,
            prefetch: jobs,
            rule_limits,
            ..FairQueue::default()
        }
    }

    /// Applies new limits after a reload.
    pub fn set_limits(&mut self, jobs: usize, rule_limits: HashMap<String, usize>) {
        self.limit = jobs;
        self.rule_limits = rule_limits;
        self.set_prefetch(self.prefetch);
    }

    /// How many claimed jobs may wait ready beside the running ones: at least one per worker,
    /// more when jobs are short (enough for the workers to start until the next commit).
    pub fn set_prefetch(&mut self, prefetch: usize) {
        self.prefetch = prefetch.clamp(self.limit.max(1), MAX_PREFETCH);
    }

    /// The pauses in force, read from the store at each poll; whether they changed.
    pub fn set_paused(&mut self, node: bool, rules: HashSet<String>) -> bool {
        let changed = node != self.paused_node || rules != self.paused_rules;
        self.paused_node = node;
        self.paused_rules = rules;
        changed
    }

    /// The rules outside their window now; whether that changed.
    pub fn set_closed(&mut self, closed: HashSet<String>) -> bool {
        let changed = closed != self.closed;
        self.closed = closed;
        changed
    }

    /// Whether `rule` is outside its window now.
    pub fn is_closed(&self, rule: &str) -> bool {
        self.closed.contains(rule)
    }

    /// Lets a queued job start outside its rule's window (`shotrouter run-now`); whether this
    /// queue holds it.
    pub fn run_now(&mut self, id: JobId) -> bool {
        match self.rule_of(id) {
            Some(rule) => {
                self.run_now.insert(id, rule);
                true
            }
            None => false,
        }
    }

    /// What the store says of a job just queued here (of `rule`): its priority and whether it
    /// is run now, noted without looking for it (a restart queues thousands).
    pub fn note_queued(&mut self, id: JobId, rule: &str, priority: i32, run_now: bool) {
        if priority != self.rule_priority(rule) {
            self.bumped.insert(id, (rule.to_string(), priority));
        }
        if run_now {
            self.run_now.insert(id, rule.to_string());
        }
    }

    /// Jobs whose run still goes on from a previous life of this node (farm tasks followed
    /// after a restart): picked before anything else, whatever holds their rule, so the
    /// executor adopts their runs instead of cancelling them once they waited too long.
    pub fn follow(&mut self, ids: impl IntoIterator<Item = JobId>) {
        self.following.extend(ids);
    }

    /// The recorded jobs waiting for a slot, with their rule, and whether each may start
    /// outside its window.
    pub fn waiting_ids(&self) -> impl Iterator<Item = (JobId, &str, bool)> {
        self.queues.values().flatten().filter_map(|p| {
            p.id.map(|id| (id, p.spec.rule.as_str(), self.run_now.contains_key(&id)))
        })
    }

    /// Whether jobs of `rule` wait for a resume (the rule or this node is paused).
    pub fn is_paused(&self, rule: &str) -> bool {
        self.paused_node || self.paused_rules.contains(rule)
    }

    /// Each rule's `priority:`, after a start or a reload.
    pub fn set_priorities(&mut self, priorities: HashMap<String, i32>) {
        self.priorities = priorities;
    }

    /// Gives a queued job its own priority (`shotrouter bump`); whether this queue holds it
    /// and its priority changed.
    pub fn set_priority(&mut self, id: JobId, priority: i32) -> bool {
        let Some(rule) = self.rule_of(id) else {
            return false;
        };
        let before = self
            .bumped
            .get(&id)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| self.rule_priority(&rule));
        if self.rule_priority(&rule) == priority {
            self.bumped.remove(&id);
        } else {
            self.bumped.insert(id, (rule, priority));
        }
        before != priority
    }

    /// The rule of a job this queue holds (waiting for a slot or for its retry), by store id.
    fn rule_of(&self, id: JobId) -> Option<String> {
        self.queues
            .values()
            .flatten()
            .chain(self.delayed.iter().map(|(_, p)| p))
            .find(|p| p.id == Some(id))
            .map(|p| p.spec.rule.clone())
    }

    fn rule_priority(&self, rule: &str) -> i32 {
        self.priorities.get(rule).copied().unwrap_or(0)
    }

    fn priority_of(&self, pending: &Pending) -> i32 {
        pending
            .id
            .and_then(|id| self.bumped.get(&id).map(|(_, p)| *p))
            .unwrap_or_else(|| self.rule_priority(&pending.spec.rule))
    }

    /// The first of a rule's highest-priority jobs, and that priority. Only bumped jobs
    /// differ from their rule's, so without any the front is it.
    /// A rule's backlog is scanned only when one of its own jobs was bumped or run now (the
    /// maps are small), never because of another rule's.
    fn best_of(&self, rule: &str) -> Option<(usize, i32)> {
        let queue = self.queues.get(rule)?;
        let closed = self.closed.contains(rule);
        let bumped = self.bumped.values().any(|(r, _)| r == rule);
        if !bumped && !closed {
            return queue.front().map(|_| (0, self.rule_priority(rule)));
        }
        // A closed rule's backlog may be long: with no job of it run now, none is looked at.
        if closed && !self.run_now.values().any(|r| r == rule) {
            return None;
        }
        queue
            .iter()
            .enumerate()
            // Outside its window, only the jobs run now may start.
            .filter(|(_, p)| !closed || p.id.is_some_and(|id| self.run_now.contains_key(&id)))
            .map(|(i, p)| (i, self.priority_of(p)))
            .fold(None, |best, (i, p)| match best {
                Some((_, b)) if b >= p => best,
                _ => Some((i, p)),
            })
    }

    /// Which rules run on the farm, and how many of their jobs may be in flight there.
    pub fn set_farm(&mut self, rules: HashSet<String>, limit: usize) {
        self.farm_rules = rules;
        self.farm_limit = limit;
    }

    /// Slots: the workers plus the claimed jobs ready to start.
    fn capacity(&self) -> usize {
        self.limit + self.prefetch
    }

    /// Whether the lane `rule` runs in (this node's slots, or the farm's) has a slot free.
    fn lane_has_room(&self, rule: &str) -> bool {
        if self.farm_rules.contains(rule) {
            self.farm_in_use < self.farm_limit
        } else {
            self.in_use_total.saturating_sub(self.farm_in_use) < self.capacity()
        }
    }

    fn rule_has_room(&self, rule: &str) -> bool {
        if self.is_paused(rule) {
            return false;
        }
        let limit = self.rule_limits.get(rule).copied().unwrap_or(usize::MAX);
        self.in_use.get(rule).copied().unwrap_or(0) < limit
    }

    /// Whether a new job of `rule` may take a slot at once (nothing of its rule waits ahead).
    pub fn has_slot_now(&self, rule: &str) -> bool {
        !self.closed.contains(rule)
            && self.lane_has_room(rule)
            && self.rule_has_room(rule)
            && self.queues.get(rule).is_none_or(VecDeque::is_empty)
            && self.unqueued.get(rule).copied().unwrap_or(0) == 0
    }

    /// A new job of `rule` is being recorded without a claim: later ones wait behind it.
    pub fn note_unqueued(&mut self, rule: &str) {
        *self.unqueued.entry(rule.to_string()).or_default() += 1;
    }

    /// Its record is committed (it joins the queue, or was a duplicate).
    pub fn forget_unqueued(&mut self, rule: &str) {
        if let Some(n) = self.unqueued.get_mut(rule) {
            *n = n.saturating_sub(1);
        }
    }

    /// Takes a slot for a job of `rule`.
    pub fn reserve(&mut self, rule: &str) {
        *self.in_use.entry(rule.to_string()).or_default() += 1;
        self.in_use_total += 1;
        if self.farm_rules.contains(rule) {
            self.farm_in_use += 1;
            *self.farm_taken.entry(rule.to_string()).or_default() += 1;
        }
    }

    /// Gives back a slot of `rule` (its job ended, or its claim was refused).
    pub fn release(&mut self, rule: &str) {
        if let Some(n) = self.in_use.get_mut(rule)
            && *n > 0
        {
            *n -= 1;
            self.in_use_total -= 1;
            if let Some(taken) = self.farm_taken.get_mut(rule)
                && *taken > 0
            {
                *taken -= 1;
                self.farm_in_use = self.farm_in_use.saturating_sub(1);
            }
        }
    }

    /// Queues a job behind the others of its rule.
    pub fn push(&mut self, pending: Pending) {
        self.queues
            .entry(pending.spec.rule.clone())
            .or_default()
            .push_back(pending);
    }

    /// Queues a job to wait until `at` (a retry's backoff, a queued job's `not_before`).
    pub fn delay(&mut self, pending: Pending, at: Instant) {
        self.delayed.push((at, pending));
    }

    /// The earliest delayed job's time.
    pub fn next_delayed(&self) -> Option<Instant> {
        self.delayed.iter().map(|(at, _)| *at).min()
    }

    /// The next job allowed to take a slot now, with the slot taken.
    pub fn pick(&mut self, now: Instant) -> Option<Pending> {
        let mut index = 0;
        while index < self.delayed.len() {
            if self.delayed[index].0 <= now {
                let (_, pending) = self.delayed.swap_remove(index);
                self.push(pending);
            } else {
                index += 1;
            }
        }
        if let Some(pending) = self.pick_followed() {
            return Some(pending);
        }
        let rules: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(r, _)| r.clone())
            .collect();
        // Each rule with room: its best job. The highest priority wins; rules of that
        // priority take turns.
        let best: Vec<Option<(usize, i32)>> = rules
            .iter()
            .map(|rule| {
                (self.lane_has_room(rule) && self.rule_has_room(rule))
                    .then(|| self.best_of(rule))
                    .flatten()
            })
            .collect();
        let top = best.iter().flatten().map(|(_, p)| *p).max()?;
        for offset in 0..rules.len() {
            let at = (self.rotation + offset) % rules.len();
            let Some((index, priority)) = best[at] else {
                continue;
            };
            if priority == top {
                let rule = &rules[at];
                self.rotation = (at + 1) % rules.len();
                let pending = self.queues.get_mut(rule).and_then(|q| q.remove(index))?;
                if let Some(id) = pending.id {
                    self.bumped.remove(&id);
                    self.run_now.remove(&id);
                }
                self.reserve(rule);
                return Some(pending);
            }
        }
        None
    }

    /// A waiting job whose run already goes on, with its slot taken (even past a limit: it
    /// is in flight anyway).
    fn pick_followed(&mut self) -> Option<Pending> {
        if self.following.is_empty() {
            return None;
        }
        let found = self.queues.iter().find_map(|(rule, queue)| {
            queue
                .iter()
                .position(|p| p.id.is_some_and(|id| self.following.contains(&id)))
                .map(|index| (rule.clone(), index))
        });
        let Some((rule, index)) = found else {
            // Those not waiting here (another node's root, dropped) are forgotten, so a long
            // backlog is not scanned at each pick for them.
            let delayed: HashSet<JobId> = self.delayed.iter().filter_map(|(_, p)| p.id).collect();
            self.following.retain(|id| delayed.contains(id));
            return None;
        };
        let pending = self.queues.get_mut(&rule)?.remove(index)?;
        if let Some(id) = pending.id {
            self.following.remove(&id);
            self.bumped.remove(&id);
            self.run_now.remove(&id);
        }
        self.reserve(&rule);
        Some(pending)
    }

    /// Jobs waiting for a slot (not those waiting out a retry's backoff).
    pub fn waiting(&self) -> impl Iterator<Item = &JobSpec> {
        self.queues.values().flatten().map(|p| &p.spec)
    }

    /// Jobs waiting, delayed ones included.
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum::<usize>() + self.delayed.len()
    }

    /// Whether no job waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The jobs that wait only for a resume or for their rule's window, per rule: (rule,
    /// paused, how many). A job of a closed rule that is run now is not held, nor is one
    /// waiting for its retry.
    pub fn held(&self) -> Vec<(&str, bool, usize)> {
        self.queues
            .iter()
            .filter_map(|(rule, queue)| {
                let count = if self.is_paused(rule) {
                    queue.len()
                } else if self.closed.contains(rule) {
                    queue
                        .iter()
                        .filter(|p| !p.id.is_some_and(|id| self.run_now.contains_key(&id)))
                        .count()
                } else {
                    0
                };
                (count > 0).then(|| (rule.as_str(), self.is_paused(rule), count))
            })
            .collect()
    }

    /// Jobs waiting for a retry.
    pub fn delayed_len(&self) -> usize {
        self.delayed.len()
    }

    /// Removes every waiting job.
    pub fn drain(&mut self) -> Vec<Pending> {
        self.bumped.clear();
        self.following.clear();
        self.run_now.clear();
        let mut all: Vec<Pending> = std::mem::take(&mut self.queues)
            .into_values()
            .flatten()
            .collect();
        all.extend(
            std::mem::take(&mut self.delayed)
                .into_iter()
                .map(|(_, p)| p),
        );
        all
    }
}

#[cfg(test)]
mod tests;
