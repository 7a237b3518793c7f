//! The committer: a node's writes waiting in its [`Outbox`], committed in one transaction per
//! burst, and the policy for a commit the store refused (kept whole, tried again a second
//! later: the database is waited for, never skipped).

use std::time::{Duration, Instant};

use crate::store::StoreError;
use crate::store::queue::{Answer, JobQueue, Write};

use super::outbox::{self, Outbox, Then};

/// Most writes one commit carries before it is made at once.
const MAX_OUTBOX: usize = 4096;

/// How long to wait before trying a failed commit again.
pub const COMMIT_RETRY: Duration = Duration::from_secs(1);

/// The writes waiting for the store, and when a failed commit is tried again.
#[derive(Debug, Default)]
pub struct Committer {
    outbox: Outbox,
    retry_at: Option<Instant>,
}

impl Committer {
    /// Adds a write, with what to do once the store answered it.
    pub fn push(&mut self, write: Write, then: Then) {
        self.outbox.push(write, then);
    }

    /// Adds a progress write, in place of one of the same claim still waiting.
    pub fn push_progress(&mut self, write: Write) {
        self.outbox.push_progress(write);
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.outbox.is_empty()
    }

    /// Whether a claim waits to be committed.
    pub fn has_claims(&self) -> bool {
        self.outbox.has_claims()
    }

    /// Whether an attempt's end waits to be committed.
    pub fn has_ends(&self) -> bool {
        self.outbox.has_ends()
    }

    /// Whether a new job recorded without a claim waits to be committed.
    pub fn has_new_jobs(&self) -> bool {
        self.outbox.has_new_jobs()
    }

    /// When something must be committed: the retry of a failed commit, else the outbox's
    /// window.
    pub fn due(&self) -> Option<Instant> {
        self.retry_at.or(self.outbox.due())
    }

    /// Whether what waits must go now: its window passed, or the outbox is large.
    pub fn must_commit(&self, now: Instant) -> bool {
        self.outbox.due().is_some_and(|due| due <= now) || self.outbox.len() >= MAX_OUTBOX
    }

    /// Whether a failed commit waits for its retry.
    pub fn retry_pending(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| now < at)
    }

    /// Makes a failed commit's retry due now (the last commit at a stop).
    pub fn retry_now(&mut self) {
        self.retry_at = None;
    }

    /// Commits what waits (`whole`) or only the claims and what they must follow, and pairs
    /// each follow-up with the store's answer. Without a store every write is granted at once.
    ///
    /// # Errors
    /// The store's; nothing was written, and the writes wait for a retry [`COMMIT_RETRY`] later.
    pub fn commit(
        &mut self,
        store: Option<&mut Box<dyn JobQueue>>,
        whole: bool,
        now: Instant,
    ) -> Result<Vec<(Then, Answer)>, StoreError> {
        self.retry_at = None;
        let (writes, plan) = if whole {
            self.outbox.take()
        } else {
            self.outbox.take_claims()
        };
        let answers = match store {
            Some(store) if !writes.is_empty() => {
                let started = Instant::now();
                match store.commit(&writes) {
                    Ok(answers) => {
                        tracing::trace!(
                            writes = writes.len(),
                            elapsed_us = started.elapsed().as_micros() as u64,
                            "committed"
                        );
                        answers
                    }
                    Err(e) => {
                        tracing::error!(error = %e, writes = writes.len(), "cannot commit to the store; trying again");
                        self.outbox.restore(writes, plan);
                        self.retry_at = Some(now + COMMIT_RETRY);
                        return Err(e);
                    }
                }
            }
            _ => writes.iter().map(outbox::unrecorded).collect(),
        };
        Ok(outbox::answered(plan, answers).collect())
    }
}
