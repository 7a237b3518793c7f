//! The writes of one burst of work, committed to the store in one transaction (group commit),
//! each paired with what the engine does once the store has answered it.
//!
//! Nothing is handed to a worker before its claim is committed. A claim a worker is waiting for
//! is committed at once; every other write may wait up to [`COMMIT_WINDOW`] for company, so a
//! flood costs a few dozen commits a second, not several per job. A step's start and the same
//! attempt's end in one commit become one write: the start is dropped (the end records both).

use std::time::{Duration, Instant};

use crate::exec::runner::JobSpec;
use crate::store::JobId;
use crate::store::queue::{Answer, Claim, Write};

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
    /// A step started as the executor's attempt `job`: stop it if the claim is cancelled or stale.
    Started(u64),
    /// An attempt failed and is to be retried at `at`.
    Retry(Box<JobSpec>, Instant),
    /// An attempt ended for good, and what its `notify:` targets are told once the store took
    /// the end.
    Ended(Box<JobSpec>, Vec<super::telling::Telling>),
    /// A new job recorded `waiting` for its declared inputs: watch them for it.
    Waiting(Box<JobSpec>, crate::store::lineage::WaitFor),
    /// A waiting job released (or jobs queued again): look in the queue at once.
    Released(JobId),
    /// The jobs that read an older version of this input: run again or left stale.
    InputUsers(std::path::PathBuf),
}

/// Longest a write waits for others to share its commit. A crash loses at most this much of
/// the record (the starts and ends of that moment), which recovery handles like any crash.
pub const COMMIT_WINDOW: Duration = Duration::from_millis(10);

/// Longest a step's start waits for company: until it is written, a crash leaves that step's
/// processes unknown to the next start, so this window is kept short. A step is reported once
/// it ran `exec::step::QUICK_STEP` (1 ms), so a step goes unrecorded for at most 3 ms after it
/// started; a shorter window would commit twice as often in a burst of jobs of a few ms.
pub const START_WINDOW: Duration = Duration::from_millis(2);

/// Writes waiting for the next commit.
#[derive(Debug, Default)]
pub struct Outbox {
    writes: Vec<Option<Write>>,
    then: Vec<Then>,
    /// When the oldest waiting write was added.
    since: Option<Instant>,
    /// When the oldest waiting step start was added; `None` once none waits.
    started_since: Option<Instant>,
    /// Step starts waiting (not yet folded into their attempt's end).
    starts: usize,
    /// Claims among the waiting writes (a new job claimed at enqueue, or a waiting one).
    claims: usize,
    /// New jobs recorded without a claim: the fair queue's next work once committed.
    new_jobs: usize,
}

/// Puts a progress write among those waiting for the store, in place of one of the same claim
/// when one waits: while the store is away, a job keeps one progress write, not one a block.
pub(crate) fn push_progress<'a>(
    waiting: impl IntoIterator<Item = &'a mut Write>,
    write: Write,
) -> Option<Write> {
    let Write::Progress { claim, .. } = &write else {
        return Some(write);
    };
    for old in waiting {
        if matches!(old, Write::Progress { claim: c, .. } if c == claim) {
            *old = write;
            return None;
        }
    }
    Some(write)
}

impl Outbox {
    /// Adds a write.
    pub fn push(&mut self, write: Write, then: Then) {
        match &write {
            Write::Finish { claim, .. } => self.drop_started(*claim),
            Write::Enqueue { claim: true, .. } | Write::Claim { .. } => self.claims += 1,
            Write::Enqueue { claim: false, .. } => self.new_jobs += 1,
            Write::Started { .. } => {
                self.starts += 1;
                self.started_since.get_or_insert_with(Instant::now);
            }
            _ => {}
        }
        self.since.get_or_insert_with(Instant::now);
        self.writes.push(Some(write));
        self.then.push(then);
    }

    /// Adds a progress write, in place of one of the same claim still waiting.
    pub fn push_progress(&mut self, write: Write) {
        if let Some(write) = push_progress(self.writes.iter_mut().flatten(), write) {
            self.push(write, Then::Nothing);
        }
    }

    /// Whether a claim waits to be committed.
    pub fn has_claims(&self) -> bool {
        self.claims > 0
    }

    /// Whether an attempt's end waits to be committed.
    pub fn has_ends(&self) -> bool {
        self.writes
            .iter()
            .flatten()
            .any(|w| matches!(w, Write::Finish { .. }))
    }

    /// Whether a new job recorded without a claim waits to be committed.
    pub fn has_new_jobs(&self) -> bool {
        self.new_jobs > 0
    }

    /// When the waiting writes must be committed at the latest.
    pub fn due(&self) -> Option<Instant> {
        let start = self.started_since.map(|at| at + START_WINDOW);
        let any = self.since.map(|at| at + COMMIT_WINDOW);
        start.into_iter().chain(any).min()
    }

    /// A start not yet written is superseded by the attempt's end. When no start is left
    /// waiting, so is the start's short window: the end waits for company like any write
    /// (in a burst of quick jobs every start is folded so, and its window alone made the
    /// engine commit every 2 ms).
    fn drop_started(&mut self, finished: Claim) {
        for write in self.writes.iter_mut().rev() {
            if matches!(write, Some(Write::Started { claim, .. }) if *claim == finished) {
                *write = None;
                self.starts = self.starts.saturating_sub(1);
            }
        }
        if self.starts == 0 {
            self.started_since = None;
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
        self.claims = old_writes
            .iter()
            .flatten()
            .filter(|w| matches!(w, Write::Enqueue { claim: true, .. } | Write::Claim { .. }))
            .count();
        self.new_jobs = old_writes
            .iter()
            .flatten()
            .filter(|w| matches!(w, Write::Enqueue { claim: false, .. }))
            .count();
        self.starts = old_writes
            .iter()
            .flatten()
            .filter(|w| matches!(w, Write::Started { .. }))
            .count();
        self.since = (!old_writes.is_empty()).then(Instant::now);
        self.started_since = (self.starts > 0).then(Instant::now);
        self.writes = old_writes;
        self.then = old_then;
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Writes waiting.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Takes only the writes that hand work to a worker (new jobs, claims, and the re-plans
    /// that must precede their claims) and the records they must follow, in order, leaving the records of starts and ends for
    /// their window: a claim a worker waits for is not slowed by writes nobody waits for.
    pub fn take_claims(&mut self) -> (Vec<Write>, Vec<(bool, Then)>) {
        let mut kept_writes = Vec::new();
        let mut kept_then = Vec::new();
        let mut writes = Vec::new();
        let mut plan = Vec::new();
        for (write, then) in std::mem::take(&mut self.writes)
            .into_iter()
            .zip(std::mem::take(&mut self.then))
        {
            // A baseline rides with them too: it must not overwrite a newer record of the same
            // file written by an enqueue after it.
            let urgent = matches!(
                write,
                Some(
                    Write::Enqueue { .. }
                        | Write::Claim { .. }
                        | Write::Replan { .. }
                        | Write::Baseline { .. }
                )
            );
            if urgent {
                plan.push((true, then));
                writes.extend(write);
            } else {
                kept_writes.push(write);
                kept_then.push(then);
            }
        }
        self.claims = 0;
        self.new_jobs = 0;
        if kept_writes.is_empty() {
            self.since = None;
        }
        self.writes = kept_writes;
        self.then = kept_then;
        (writes, plan)
    }

    /// Takes the writes to commit and what to do with each answer, in order; dropped writes
    /// are answered `Ok` without reaching the store.
    pub fn take(&mut self) -> (Vec<Write>, Vec<(bool, Then)>) {
        let writes = std::mem::take(&mut self.writes);
        let then = std::mem::take(&mut self.then);
        self.since = None;
        self.started_since = None;
        self.starts = 0;
        self.claims = 0;
        self.new_jobs = 0;
        let mut kept = Vec::with_capacity(writes.len());
        let mut plan = Vec::with_capacity(writes.len());
        for (write, then) in writes.into_iter().zip(then) {
            plan.push((write.is_some(), then));
            kept.extend(write);
        }
        (kept, plan)
    }
}

/// Pairs each follow-up of a taken plan with the store's answer to its write, in order; a
/// write folded away before the commit (a start its end superseded) is answered `Ok`.
pub fn answered(
    plan: Vec<(bool, Then)>,
    answers: Vec<Answer>,
) -> impl Iterator<Item = (Then, Answer)> {
    let mut answers = answers.into_iter();
    plan.into_iter().map(move |(sent, then)| {
        let answer = if sent {
            answers.next().unwrap_or(Answer::Ok)
        } else {
            Answer::Ok
        };
        (then, answer)
    })
}

/// The answer a write gets when no store records jobs: everything is granted at once.
pub fn unrecorded(write: &Write) -> Answer {
    match write {
        Write::Enqueue { claim, .. } => Answer::Enqueued {
            id: -1,
            superseded: Vec::new(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queue::Ending;

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
            assert!(!outbox.has_ends(), "starts are not ends");
            outbox.push(
                Write::Started {
                    claim: claim(id),
                    run: None,
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
        assert!(
            outbox.has_ends(),
            "an end waits: a node at rest commits it at once"
        );
        let (writes, plan) = outbox.take();
        assert!(!outbox.has_ends());
        assert_eq!(writes.len(), 2, "job 1's start is folded into its end");
        assert!(matches!(writes[0], Write::Started { claim, .. } if claim.id == 2));
        assert_eq!(
            plan.iter().map(|(sent, _)| *sent).collect::<Vec<_>>(),
            [false, true, true]
        );
        assert!(outbox.is_empty());
    }

    #[test]
    fn the_start_window_lasts_while_a_start_waits() {
        let started = |id: i64| Write::Started {
            claim: claim(id),
            run: None,
            temp_output: None,
        };
        let finish = |id: i64| Write::Finish {
            claim: claim(id),
            ending: Ending::Done,
        };
        let mut outbox = Outbox::default();
        let before = Instant::now();
        outbox.push(started(1), Then::Started(1));
        outbox.push(started(2), Then::Started(2));
        outbox.push(finish(1), Then::Nothing);
        let after = Instant::now();
        let due = outbox.due().expect("writes wait");
        assert!(due <= after + START_WINDOW, "job 2's start still waits");
        outbox.push(finish(2), Then::Nothing);
        let due = outbox.due().expect("writes wait");
        assert!(
            due >= before + COMMIT_WINDOW,
            "both starts are folded into their ends: the ends wait their own window"
        );
    }

    fn progress(id: crate::store::JobId, token: i64, frame: u64) -> Write {
        Write::Progress {
            claim: Claim {
                id,
                token,
                attempt: 1,
            },
            progress: crate::store::JobProgress {
                frame,
                total_frames: Some(100),
                fps_milli: 24_000,
            },
        }
    }

    /// A progress write as (job, token, frame); `None` for another write.
    fn seen(write: &Write) -> Option<(crate::store::JobId, i64, u64)> {
        match write {
            Write::Progress { claim, progress } => Some((claim.id, claim.token, progress.frame)),
            _ => None,
        }
    }

    #[test]
    fn a_waiting_progress_write_of_the_same_claim_is_replaced_not_queued() {
        let mut waiting = [
            Write::Drop {
                id: 7,
                reason: "gone".into(),
            },
            progress(1, 1, 10),
            progress(2, 1, 10),
        ];
        // An hour of blocks while the store is away: still one write per claim.
        for frame in 11..3_611 {
            assert!(push_progress(waiting.iter_mut(), progress(1, 1, frame)).is_none());
        }
        assert_eq!(waiting.len(), 3);
        assert_eq!(seen(&waiting[1]), Some((1, 1, 3_610)));
        assert_eq!(seen(&waiting[2]), Some((2, 1, 10)), "another job's stays");
        // Another claim of the same job (a new attempt) is its own write.
        let other = push_progress(waiting.iter_mut(), progress(1, 2, 1));
        assert_eq!(other.as_ref().and_then(seen), Some((1, 2, 1)));
        let drop = Write::Drop {
            id: 1,
            reason: "x".into(),
        };
        let back = push_progress(waiting.iter_mut(), drop);
        assert!(matches!(back, Some(Write::Drop { id: 1, .. })));
    }
}
