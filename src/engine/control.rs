//! What people change about when the watcher's jobs start: the rules' `priority:`, and the
//! pauses (`shotrouter pause`) read from the store at each poll.

use std::collections::HashMap;

use crate::store::control::PauseTarget;

use super::Engine;

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
