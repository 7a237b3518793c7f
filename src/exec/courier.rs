//! A bounded queue of HTTP deliveries on a thread of its own, each tried again with backoff:
//! what the notifier (`notify:`) and the OpenLineage emitter share, so neither can hold up a
//! job or the engine. [`Courier::send`] only queues; when the queue is full ([`CAPACITY`]) the
//! oldest waiting parcel is dropped with one log line. A failed try is logged and repeated after
//! a doubling backoff, at most [`TRIES`] times. At exit, [`Courier::finish`] delivers what is due
//! within a grace and drops the rest, never waiting on a receiver that does not answer.

use std::collections::VecDeque;
use std::fmt::Display;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most parcels waiting at once.
pub const CAPACITY: usize = 1000;

/// Most tries of one parcel.
pub const TRIES: u32 = 5;

/// Wait before the second try; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Longest a receiver may take to connect, and to answer in all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One thing to deliver; its `Display` is what the log says of it (`event=done job=7`).
pub trait Parcel: Display + Send + 'static {
    /// One try.
    ///
    /// # Errors
    /// Why this try failed, for the log; it is tried again while tries are left.
    fn deliver(&self, agent: &ureq::Agent) -> Result<(), String>;
}

/// A parcel with its tries so far.
struct Item<P> {
    parcel: P,
    tries: u32,
    not_before: Instant,
}

struct Queue<P> {
    items: VecDeque<Item<P>>,
    closing: Option<Instant>,
    /// Set by the thread as it returns.
    exited: bool,
}

struct Shared<P> {
    queue: Mutex<Queue<P>>,
    wake: Condvar,
    /// What the log calls one parcel (`notification`, `lineage event`).
    noun: &'static str,
}

impl<P> Shared<P> {
    fn lock(&self) -> MutexGuard<'_, Queue<P>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The delivery thread and its queue.
pub struct Courier<P: Parcel> {
    shared: Arc<Shared<P>>,
    thread: Option<JoinHandle<()>>,
}

/// A client that gives up on a receiver that does not answer, and counts a non-2xx answer as
/// a failure (so it is tried again).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(true)
        .build()
        .into()
}

/// One JSON POST to `url`.
///
/// # Errors
/// The connection's failure, a timeout or a non-2xx answer, naming `url`.
pub fn post_json(agent: &ureq::Agent, url: &str, body: &[u8]) -> Result<(), String> {
    agent
        .post(url)
        .content_type("application/json")
        .send(body)
        .map(drop)
        .map_err(|e| format!("`{url}`: {e}"))
}

impl<P: Parcel> Courier<P> {
    /// Starts the delivery thread named `thread`; the log calls one parcel `noun`.
    pub fn start(thread: &str, noun: &'static str) -> Courier<P> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                closing: None,
                exited: false,
            }),
            wake: Condvar::new(),
            noun,
        });
        let agent = agent();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(thread.into())
                .spawn(move || deliver_all(&shared, &agent))
                .map_err(|e| tracing::error!(error = %e, "cannot start the {noun} thread"))
                .ok()
        };
        Courier { shared, thread }
    }

    /// Queues `parcels`; returns at once. A full queue drops its oldest.
    pub fn send(&self, parcels: impl IntoIterator<Item = P>) {
        let now = Instant::now();
        let noun = self.shared.noun;
        let mut queue = self.shared.lock();
        for parcel in parcels {
            if queue.items.len() >= CAPACITY
                && let Some(dropped) = queue.items.pop_front()
            {
                tracing::warn!(dropped = %dropped.parcel, capacity = CAPACITY, "{noun} queue full; dropped its oldest {noun}");
            }
            queue.items.push_back(Item {
                parcel,
                tries: 0,
                not_before: now,
            });
        }
        drop(queue);
        self.shared.wake.notify_one();
    }

    /// Delivers what is due within `grace`, then stops: what is still waiting is logged and
    /// dropped. A delivery still hanging then (a receiver that accepts and never answers) is
    /// left to its own timeout on the detached thread: a stop is never held up by it.
    pub fn finish(mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let noun = self.shared.noun;
        let mut queue = self.shared.lock();
        queue.closing = Some(deadline);
        self.shared.wake.notify_all();
        while !queue.exited {
            let left =
                (deadline + Duration::from_millis(100)).saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("stopping: a {noun} is still being delivered; not waiting for it");
                break;
            }
            queue = self
                .shared
                .wake
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let exited = queue.exited;
        drop(queue);
        if let Some(thread) = self.thread.take()
            && exited
        {
            let _ = thread.join();
        }
    }
}

impl<P: Parcel> Drop for Courier<P> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared.lock().closing = Some(Instant::now());
            self.shared.wake.notify_all();
        }
    }
}

fn deliver_all<P: Parcel>(shared: &Shared<P>, agent: &ureq::Agent) {
    deliver_until_closed(shared, agent);
    shared.lock().exited = true;
    shared.wake.notify_all();
}

fn deliver_until_closed<P: Parcel>(shared: &Shared<P>, agent: &ureq::Agent) {
    let noun = shared.noun;
    let mut queue = shared.lock();
    loop {
        let now = Instant::now();
        if let Some(deadline) = queue.closing
            && (queue.items.is_empty() || now >= deadline)
        {
            if !queue.items.is_empty() {
                tracing::warn!(count = queue.items.len(), "stopping: {noun}s not delivered");
            }
            return;
        }
        let due = queue.items.iter().position(|i| i.not_before <= now);
        let Some(index) = due else {
            let next = queue.items.iter().map(|i| i.not_before).min();
            let until = [next, queue.closing]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + Duration::from_secs(3600));
            queue = shared
                .wake
                .wait_timeout(queue, until.saturating_duration_since(now))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        };
        let Some(mut item) = queue.items.remove(index) else {
            continue;
        };
        drop(queue);
        let result = item.parcel.deliver(agent);
        queue = shared.lock();
        item.tries += 1;
        match result {
            Ok(()) => {
                tracing::debug!(parcel = %item.parcel, "{noun} delivered");
            }
            Err(reason) if item.tries < TRIES => {
                let wait = FIRST_BACKOFF.saturating_mul(1 << (item.tries - 1));
                tracing::warn!(parcel = %item.parcel, %reason, tries = item.tries, retry_in_ms = wait.as_millis() as u64, "{noun} failed; trying again");
                item.not_before = Instant::now() + wait;
                queue.items.push_back(item);
            }
            Err(reason) => {
                tracing::error!(parcel = %item.parcel, %reason, tries = item.tries, "{noun} failed; giving up");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Fails its first `fail` tries, counting them all.
    struct Flaky {
        fail: u32,
        tries: Arc<AtomicU32>,
    }

    impl fmt::Display for Flaky {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "flaky")
        }
    }

    impl Parcel for Flaky {
        fn deliver(&self, _agent: &ureq::Agent) -> Result<(), String> {
            let n = self.tries.fetch_add(1, Ordering::SeqCst);
            if n < self.fail {
                Err("not yet".into())
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn a_failed_parcel_is_tried_again_until_it_goes() {
        let tries = Arc::new(AtomicU32::new(0));
        let courier = Courier::start("courier-test", "parcel");
        courier.send([Flaky {
            fail: 1,
            tries: tries.clone(),
        }]);
        courier.finish(Duration::from_secs(5));
        assert_eq!(tries.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_full_queue_drops_its_oldest() {
        // No thread: nothing is taken off the queue while it fills.
        let courier: Courier<Flaky> = Courier {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    items: VecDeque::new(),
                    closing: None,
                    exited: false,
                }),
                wake: Condvar::new(),
                noun: "parcel",
            }),
            thread: None,
        };
        let counters: Vec<Arc<AtomicU32>> = (0..=CAPACITY).map(|_| Arc::default()).collect();
        courier.send(counters.iter().map(|c| Flaky {
            fail: 0,
            tries: c.clone(),
        }));
        let queue = courier.shared.lock();
        assert_eq!(queue.items.len(), CAPACITY);
        let first = queue.items.front().expect("full");
        assert!(
            Arc::ptr_eq(&first.parcel.tries, &counters[1]),
            "the first was dropped"
        );
    }
}
