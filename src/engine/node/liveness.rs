//! A node's liveness in the store, one implementation for the watcher and the worker: its
//! heartbeat (which also queues again the claims of nodes whose lease lapsed), the check for
//! claims it lost while running them, the hand-back of claims it never took up, and
//! self-fencing when no heartbeat has reached the store for twice its lease. Both nodes had
//! their own copy of each before, and they had drifted (only workers gave back claims or fenced).

use std::time::{Duration, Instant};

use crate::exec::executor::{AttemptId, Executor};
use crate::store::queue::{Answer, Claim, JobQueue};
use crate::store::{JobId, StoreError};

/// How often a node asks which of its running claims it lost (cancelled elsewhere,
/// superseded, taken over): the longest a lost attempt keeps running.
pub(crate) const LOST_CHECK: Duration = Duration::from_secs(1);

/// How long the attempts of a node that cannot heartbeat may go on: twice its lease. While the
/// database itself is down (a restart) nobody takes anything, and after it comes back every node
/// gets a whole lease again; stopping at once would only repeat work.
const FENCE_AFTER_LEASES: u32 = 2;

/// A node's lease in the store, when its last heartbeat reached it, and when its next beat,
/// lost-claim check and hand-back are due .
#[derive(Debug)]
pub struct Liveness {
    lease: Duration,
    /// How often to heartbeat: a third of the lease, within `[100 ms, the role's cap]`.
    every: Duration,
    last_beat: Instant,
    next_beat: Instant,
    next_lost_check: Instant,
    /// Set at each beat: claims this node does not hold are given back once none of its
    /// claims waits to be committed.
    release_due: bool,
}

impl Liveness {
    /// A node whose claims outlive its last heartbeat by `lease`, beating a third as often, at
    /// least every `cap`; its first beat and check are due at once.
    pub(crate) fn new(lease: Duration, cap: Duration) -> Liveness {
        let now = Instant::now();
        Liveness {
            lease,
            every: (lease / 3).clamp(Duration::from_millis(100), cap),
            last_beat: now,
            next_beat: now,
            next_lost_check: now,
            release_due: false,
        }
    }

    /// When the next beat is due.
    pub(crate) fn next_beat(&self) -> Instant {
        self.next_beat
    }

    /// Makes the next beat due now (the node has news for `status`, such as its health).
    pub(crate) fn beat_soon(&mut self) {
        self.next_beat = Instant::now();
    }

    /// When the next lost-claim check is due.
    pub(crate) fn next_lost_check(&self) -> Instant {
        self.next_lost_check
    }

    /// Whether a beat is due at `now`; if so, the next one is scheduled, and a hand-back of
    /// unheld claims is due too.
    pub(crate) fn beat_due(&mut self, now: Instant) -> bool {
        if now < self.next_beat {
            return false;
        }
        self.next_beat = now + self.every;
        self.release_due = true;
        true
    }

    /// Whether a lost-claim check is due at `now`; if so, the next is [`LOST_CHECK`] later.
    pub(crate) fn lost_check_due(&mut self, now: Instant) -> bool {
        if now < self.next_lost_check {
            return false;
        }
        self.next_lost_check = now + LOST_CHECK;
        true
    }

    /// Whether the hand-back of unheld claims is due, given that no claim of this node waits
    /// to be committed (`idle_outbox`); answering yes clears it.
    pub(crate) fn take_release_due(&mut self, idle_outbox: bool) -> bool {
        let due = self.release_due && idle_outbox;
        if due {
            self.release_due = false;
        }
        due
    }

    /// Records that this node is alive (and how well it covers its tree), and queues again
    /// the claims of nodes whose lease lapsed. Logs each job queued again.
    ///
    /// # Errors
    /// The store's; the beat did not count.
    pub(crate) fn beat(
        &mut self,
        store: &mut dyn JobQueue,
        health: Option<&str>,
    ) -> Result<(), StoreError> {
        store.heartbeat(health)?;
        self.last_beat = Instant::now();
        for job in store.expire(self.lease.as_millis() as i64)? {
            tracing::warn!(job = job.id, rule = %job.rule, "queued again: the node that ran it stopped heartbeating");
        }
        Ok(())
    }

    /// Gives back this node's claims that are not among `held`: a claim committed whose
    /// answer the node never read (the connection broke at the commit) would otherwise stay
    /// claimed, counting against its rule's limit, for as long as the node lives. Call when no
    /// claim of this node waits to be committed.
    ///
    /// # Errors
    /// The store's.
    pub(crate) fn release_unheld(
        store: &mut dyn JobQueue,
        held: &[JobId],
    ) -> Result<(), StoreError> {
        for job in store.release_unheld(held)? {
            tracing::warn!(
                job,
                "queued again: this node's claim of it was never taken up (its answer was lost)"
            );
        }
        Ok(())
    }

    /// Stops the running attempts whose claim this node lost: cancelled from another
    /// machine, superseded, or queued again after its lease lapsed and perhaps running
    /// elsewhere. Their writes would be refused anyway; this frees the machine at once.
    ///
    /// # Errors
    /// The store's; nothing was stopped.
    pub(crate) fn stop_lost(
        store: &mut dyn JobQueue,
        executor: &dyn Executor,
        running: &[(AttemptId, Claim)],
    ) -> Result<(), StoreError> {
        if running.is_empty() {
            return Ok(());
        }
        let claims: Vec<Claim> = running.iter().map(|(_, claim)| *claim).collect();
        for id in store.lost_claims(&claims)? {
            for (attempt, _) in running.iter().filter(|(_, claim)| claim.id == id) {
                tracing::warn!(
                    job = id,
                    "claim lost (cancelled, superseded, or taken over after a lease expiry); stopping its run"
                );
                executor.cancel(*attempt);
            }
        }
        Ok(())
    }

    /// A node that could not heartbeat for twice its lease has lost its claims to the others
    /// if they can reach the store (a network partition), and they may run the same jobs now:
    /// it stops its attempts rather than run them twice.
    pub(crate) fn fence(&self, executor: &dyn Executor) {
        if self.last_beat.elapsed() <= self.lease * FENCE_AFTER_LEASES || executor.running() == 0 {
            return;
        }
        tracing::error!(
            running = executor.running(),
            lease_ms = self.lease.as_millis() as u64,
            "no heartbeat reached the store for twice the lease: other nodes may have taken this node's jobs, so its attempts stop"
        );
        executor.cancel_running(Duration::from_millis(400));
    }
}

/// Acts on the store's answer to an attempt's start: an attempt whose job a user cancelled
/// meanwhile, or whose claim was taken over, is stopped.
pub(crate) fn on_started(executor: &dyn Executor, attempt: AttemptId, answer: &Answer) {
    match answer {
        Answer::Cancelled => {
            tracing::info!(
                job = attempt,
                "cancelled (by a user, or superseded by a newer version of its input); stopping it"
            );
            executor.cancel(attempt);
        }
        Answer::Stale { current } => {
            tracing::error!(
                job = attempt,
                current_token = current,
                "this attempt's claim was taken over (its lease expired); stopping it"
            );
            executor.cancel(attempt);
        }
        _ => {}
    }
}
