//! What people change about when the watcher's jobs start: the rules' `priority:`, and the
//! pauses (`shotrouter pause`) read from the store at each poll.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::store::control::PauseTarget;
use crate::store::queue::{DECLINE_MS, Ending, Write};

use super::Engine;
use super::node::outbox::Then;

impl Engine {
    /// Reads the pauses in force (`shotrouter pause`): a paused rule's jobs, or every job when
    /// this node is paused, wait in the queue; what runs finishes. Logged when it changes.
    pub(super) fn read_pauses(&mut self) {
        let Some(store) = self.node.store.as_ref() else {
            return;
        };
        let pauses = match store.paused() {
            Ok(pauses) => pauses,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the pauses from the store");
                return;
            }
        };
        let mut node = false;
        let mut rules = std::collections::HashSet::new();
        for pause in pauses {
            match pause {
                PauseTarget::Node(name) => node |= name == self.node.name,
                PauseTarget::Rule(name) => {
                    rules.insert(name);
                }
            }
        }
        let mut shown: Vec<&str> = rules.iter().map(String::as_str).collect();
        shown.sort_unstable();
        let shown = shown.join(",");
        if self.planned.queue.set_paused(node, rules) {
            tracing::info!(node_paused = node, paused_rules = %shown, "pauses changed");
            self.release_paused_claims();
        }
    }

    /// Gives back the claims of jobs handed to the executor but not started whose rule (or
    /// this node) is now paused: a drain must not start the few claimed ahead once a slot
    /// frees. They are queued in the store again, their attempt not counted, and wait here
    /// (as a declined job does, [`DECLINE_MS`]) for the resume; another node may take them.
    fn release_paused_claims(&mut self) {
        let unstarted = self.node.executor.drain_queued();
        let mut released = 0;
        for spec in unstarted {
            let held = self.planned.queue.is_paused(&spec.rule);
            match spec.claim {
                Some(claim) if held => {
                    released += 1;
                    self.readout.finished(&spec.id);
                    self.planned.queue.release(&spec.rule);
                    let at = Instant::now() + Duration::from_millis(DECLINE_MS as u64);
                    self.node.committer.push(
                        Write::Finish {
                            claim,
                            ending: Ending::Declined {
                                reason: "paused before it started".into(),
                            },
                        },
                        Then::Retry(Box::new(spec), at),
                    );
                }
                _ => self.node.executor.submit(spec),
            }
        }
        if released > 0 {
            tracing::info!(
                jobs = released,
                "claimed jobs not started given back: their rule or this node is paused"
            );
        }
    }
}

/// Each rule's `priority:` other than 0, the fair queue's order.
pub(super) fn rule_priorities(set: &crate::route::matcher::RuleSet) -> HashMap<String, i32> {
    set.file
        .rules
        .iter()
        .filter(|r| r.priority != 0)
        .map(|r| (r.name.clone(), r.priority))
        .collect()
}
