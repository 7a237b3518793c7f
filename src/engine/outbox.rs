//! The writes of one burst of work, committed to the store in one transaction (group commit),
//! each paired with what the engine does once the store has answered it.
//!
//! Nothing is handed to a worker before its claim is committed. A step's start and the same
//! attempt's end in one burst become one write: the start is dropped (the end records both).

use std::time::Instant;

use crate::exec::runner::JobSpec;
use crate::store::queue::{Answer, Claim, Ending, Write};

/// What to do with the store's answer to a write.
#[derive(Debug)]
pub enum Then {
    /// Nothing.
    Nothing,
    /// A new job: run it if claimed, else let it wait its turn in the fair queue. `reserved`:
    /// a slot was taken for it (a claim was asked for), to give back if none is granted.
    Enqueued {
        /// The planned job.
        spec: Box<JobSpec>,
        /// Whether a slot was taken for it.
        reserved: bool,
    },
    /// A waiting job was claimed: run it.
    Claimed(Box<JobSpec>),
    /// A step started in the pool's job `job`: stop it if the claim is cancelled or stale.
    Started(u64),
    /// An attempt failed and is to be retried at `at`.
    Retry(Box<JobSpec>, Instant),
    /// An attempt ended for good.
    Ended(Box<JobSpec>),
}

/// Writes waiting for the next commit.
#[derive(Debug, Default)]
pub struct Outbox {
    writes: Vec<Option<Write>>,
    then: Vec<Then>,
}

impl Outbox {
    /// Adds a write.
    pub fn push(&mut self, write: Write, then: Then) {
        if let Write::Finish { claim, .. } = &write {
            self.drop_started(*claim);
        }
        self.writes.push(Some(write));
        self.then.push(then);
    }

    /// A start not yet written is superseded by the attempt's end.
    fn drop_started(&mut self, finished: Claim) {
        for write in self.writes.iter_mut().rev() {
            if matches!(write, Some(Write::Started { claim, .. }) if *claim == finished) {
                *write = None;
            }
        }
    }

    /// Puts back what [`take`](Self::take) took, after a commit failed (nothing was written).
    pub fn restore(&mut self, writes: Vec<Write>, plan: Vec<(bool, Then)>) {
        let mut writes = writes.into_iter();
        let (mut old_writes, mut old_then) = (Vec::new(), Vec::new());
        for (sent, then) in plan {
            old_writes.push(if sent { writes.next() } else { None });
            old_then.push(then);
        }
        old_writes.append(&mut self.writes);
        old_then.append(&mut self.then);
        self.writes = old_writes;
        self.then = old_then;
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Takes the writes to commit and what to do with each answer, in order; dropped writes
    /// are answered `Ok` without reaching the store.
    pub fn take(&mut self) -> (Vec<Write>, Vec<(bool, Then)>) {
        let writes = std::mem::take(&mut self.writes);
        let then = std::mem::take(&mut self.then);
        let mut kept = Vec::with_capacity(writes.len());
        let mut plan = Vec::with_capacity(writes.len());
        for (write, then) in writes.into_iter().zip(then) {
            plan.push((write.is_some(), then));
            kept.extend(write);
        }
        (kept, plan)
    }
}

/// The answer a write gets when no store records jobs: everything is granted at once.
pub fn unrecorded(write: &Write) -> Answer {
    match write {
        Write::Enqueue { claim, .. } => Answer::Enqueued {
            id: -1,
            claim: claim.then_some(Claim {
                id: -1,
                token: 0,
                attempt: 1,
            }),
        },
        Write::Claim { id } => Answer::Claimed(Claim {
            id: *id,
            token: 0,
            attempt: 1,
        }),
        _ => Answer::Ok,
    }
}

/// Whether an attempt's end asks for a retry (the store's answer then says whether it may).
pub fn is_retry(ending: &Ending) -> bool {
    matches!(ending, Ending::Retry { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: i64) -> Claim {
        Claim {
            id,
            token: 1,
            attempt: 1,
        }
    }

    #[test]
    fn an_end_drops_its_own_unwritten_start_only() {
        let mut outbox = Outbox::default();
        for id in [1, 2] {
            outbox.push(
                Write::Started {
                    claim: claim(id),
                    group: None,
                    temp_output: None,
                },
                Then::Started(id as u64),
            );
        }
        outbox.push(
            Write::Finish {
                claim: claim(1),
                ending: Ending::Done,
            },
            Then::Nothing,
        );
        let (writes, plan) = outbox.take();
        assert_eq!(writes.len(), 2, "job 1's start is folded into its end");
        assert!(matches!(writes[0], Write::Started { claim, .. } if claim.id == 2));
        assert_eq!(
            plan.iter().map(|(sent, _)| *sent).collect::<Vec<_>>(),
            [false, true, true]
        );
        assert!(outbox.is_empty());
    }
}
