//! Deadlines and stop requests for running jobs: one thread holds every job's alarm and signals
//! the job's process group (SIGTERM, then SIGKILL after [`KILL_GRACE`]).
//!
//! Workers block in a plain `wait()` on their child and learn here afterwards why it ended
//! (timed out, cancelled); the runner owns starting and reaping processes. A [`JobControl`]
//! never signals group 0 or below: only a group the runner recorded as started.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long a job's group has between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// A handle on a running job, shared with the [`Watchdog`] and with whoever may cancel it.
#[derive(Debug, Default)]
pub struct JobControl {
    pgid: AtomicI32,
    cancelled: AtomicBool,
    timed_out: AtomicBool,
}

impl JobControl {
    /// Sends `signal` to the job's current process group, if one is running.
    pub(super) fn signal(&self, signal: Signal) {
        let pgid = self.pgid.load(Ordering::SeqCst);
        if pgid > 0 {
            let _ = killpg(Pid::from_raw(pgid), signal);
        }
    }

    /// Records the process group of the step now running; 0 when none is.
    pub(super) fn set_group(&self, pgid: i32) {
        self.pgid.store(pgid, Ordering::SeqCst);
    }

    /// Whether someone asked the job to stop.
    pub(super) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Marks the job as asked to stop; signalling is the caller's.
    pub(super) fn mark_cancelled(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether the deadline struck since the last call (so the next step starts clean).
    pub(super) fn take_timed_out(&self) -> bool {
        self.timed_out.swap(false, Ordering::SeqCst)
    }
}

enum Alarm {
    /// SIGTERM the job's group at the deadline (its timeout), SIGKILL after [`KILL_GRACE`].
    Timeout(u64, Instant, Arc<JobControl>),
    /// SIGTERM now (cancel or stop), SIGKILL after the given delay.
    Cancel(u64, Arc<JobControl>, Duration),
    /// The job ended: forget it.
    Disarm(u64),
}

/// One thread that owns every running job's deadline, so workers can block in a plain `wait()`
/// (woken directly by the kernel when their child exits) instead of polling for timeouts.
#[derive(Debug, Clone)]
pub struct Watchdog {
    alarms: crossbeam_channel::Sender<Alarm>,
}

impl Watchdog {
    /// Starts the watchdog thread; it ends when every `Watchdog` clone is dropped.
    pub fn start() -> Watchdog {
        let (alarms, rx) = crossbeam_channel::unbounded();
        let spawned = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || watch(&rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the watchdog thread; timeouts will not be enforced");
        }
        Watchdog { alarms }
    }

    /// Asks the job to stop: SIGTERM to its group now, SIGKILL after [`KILL_GRACE`].
    pub fn cancel(&self, job: u64, control: &Arc<JobControl>) {
        self.stop(job, control, KILL_GRACE);
    }

    /// Asks the job to stop: SIGTERM to its group now, SIGKILL after `kill_after` (the daemon's
    /// own stop, whose grace was the job's time to finish, allows a short one).
    pub fn stop(&self, job: u64, control: &Arc<JobControl>, kill_after: Duration) {
        control.mark_cancelled();
        let _ = self
            .alarms
            .send(Alarm::Cancel(job, control.clone(), kill_after));
    }

    /// Signals the job's group at `deadline` unless [`disarm`](Self::disarm)ed first.
    pub(super) fn arm(&self, job: u64, deadline: Instant, control: &Arc<JobControl>) {
        let _ = self
            .alarms
            .send(Alarm::Timeout(job, deadline, control.clone()));
    }

    /// Forgets the job's deadline: its step ended.
    pub(super) fn disarm(&self, job: u64) {
        let _ = self.alarms.send(Alarm::Disarm(job));
    }
}

fn watch(alarms: &crossbeam_channel::Receiver<Alarm>) {
    // job -> (when to act next, signal to send then, control)
    let mut armed: HashMap<u64, (Instant, Signal, Arc<JobControl>)> = HashMap::new();
    loop {
        let next = armed.values().map(|(at, _, _)| *at).min();
        let received = match next {
            Some(at) => alarms.recv_deadline(at),
            None => alarms
                .recv()
                .map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(Alarm::Timeout(job, at, control)) => {
                armed.insert(job, (at, Signal::SIGTERM, control));
            }
            Ok(Alarm::Cancel(job, control, kill_after)) => {
                control.signal(Signal::SIGTERM);
                armed.insert(job, (Instant::now() + kill_after, Signal::SIGKILL, control));
            }
            Ok(Alarm::Disarm(job)) => {
                armed.remove(&job);
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        for (at, signal, control) in armed.values_mut() {
            if *at <= now {
                if *signal == Signal::SIGTERM {
                    control.timed_out.store(true, Ordering::SeqCst);
                }
                control.signal(*signal);
                // After SIGTERM, SIGKILL; after SIGKILL, again until the job disarms.
                *signal = Signal::SIGKILL;
                *at = now + KILL_GRACE;
            }
        }
    }
}
