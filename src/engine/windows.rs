//! Rules' `window:` on the watcher: outside its windows a rule's jobs wait in the queue, each
//! with the reason "waiting for window 19:00–07:00" recorded for `jobs` and `job`, and start
//! once the (local) clock enters one; `shotrouter run-now` lets chosen jobs start anyway. The
//! clock is [`crate::rules::clock`], which tests replace.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::rules::schedule::{open_at, waiting_reason};
use crate::store::queue::Write;

use super::Engine;
use super::node::outbox::Then;

/// How often the windows are checked: a job starts within this of its window opening.
pub(super) const WINDOW_CHECK: Duration = Duration::from_secs(1);

impl Engine {
    /// Closes the rules outside their windows, opens the others, and records why held jobs
    /// wait (and that they no longer do): per rule when its window changes, per job for jobs
    /// queued since.
    pub(super) fn check_windows(&mut self, now: Instant) {
        if now < self.planned.next_window_check {
            return;
        }
        self.planned.next_window_check = now + WINDOW_CHECK;
        let windowed = self.set.file.rules.iter().filter(|r| !r.windows.is_empty());
        let mut closed: HashMap<String, String> = HashMap::new();
        let mut minute = None;
        for rule in windowed {
            let minute = *minute.get_or_insert_with(crate::rules::clock::local_minute);
            if !open_at(&rule.windows, minute) {
                closed.insert(rule.name.clone(), waiting_reason(&rule.windows));
            }
        }
        if self
            .planned
            .queue
            .set_closed(closed.keys().cloned().collect())
        {
            let mut outside: Vec<&str> = closed.keys().map(String::as_str).collect();
            outside.sort_unstable();
            tracing::info!(outside = %outside.join(","), "rules' windows changed");
        }
        let mut writes = Vec::new();
        // Per rule, one statement when its window closes or opens (and at the first look after
        // a start, which clears a reason a previous life left): a backlog of any size, and the
        // jobs left to workers, get their reason at once.
        let mut changed: HashSet<String> = HashSet::new();
        if self.node.store.is_some() {
            let rules: HashSet<String> = self
                .set
                .file
                .rules
                .iter()
                .filter(|r| !r.windows.is_empty())
                .map(|r| r.name.clone())
                .chain(self.planned.window_recorded.keys().cloned())
                .collect();
            for rule in rules {
                let reason = closed.get(&rule).cloned();
                if self.planned.window_recorded.get(&rule) != Some(&reason) {
                    writes.push(Write::HoldRule {
                        rule: rule.clone(),
                        reason: reason.clone(),
                    });
                    self.planned.window_recorded.insert(rule.clone(), reason);
                    changed.insert(rule);
                }
            }
        }
        // Jobs queued here since: their own reason, and a job let run now loses it.
        let mut marked = HashSet::new();
        for (id, rule, run_now) in self.planned.queue.waiting_ids() {
            let known = changed.contains(rule);
            match closed.get(rule) {
                Some(reason) if !run_now => {
                    marked.insert(id);
                    if !known && !self.planned.held_for_window.contains(&id) {
                        writes.push(Write::Hold {
                            id,
                            reason: Some(reason.clone()),
                        });
                    }
                }
                _ if !known && self.planned.held_for_window.contains(&id) => {
                    writes.push(Write::Hold { id, reason: None });
                }
                _ => {}
            }
        }
        self.planned.held_for_window = marked;
        if self.node.store.is_none() {
            return;
        }
        for write in writes {
            self.node.committer.push(write, Then::Nothing);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::schedule::{Window, waiting_reason};

    /// `status` finds held jobs by the reason's start.
    #[test]
    fn the_recorded_reason_starts_as_the_store_looks_for_it() {
        let windows = [Window::parse("19:00-07:00").expect("window")];
        let reason = waiting_reason(&windows);
        assert!(
            reason.starts_with(crate::store::control::WINDOW_REASON),
            "{reason}"
        );
    }
}
