//! The delivery threads: a task that ended on the farm is finished here, as a local job is
//! (`runner::remote::finish`: the task's output into the job's log, verify, publish with the
//! claim checked, copy or move), and its end reported.

use std::path::Path;

use super::{Ended, Shared};
use crate::exec::fenced_publish::FencedPublisher;
use crate::exec::runner::remote;
use crate::exec::runner::{JobHooks, JobSpec};
use crate::os::version::FileVersion;
use crate::store::queue::{JobQueue, Published};

/// A delivery thread: verifies and publishes what the farm made.
pub(super) fn deliver_loop(shared: &Shared) {
    let mut conn: Option<Box<dyn JobQueue>> = None;
    loop {
        let ended = {
            let mut state = shared.lock();
            loop {
                if state.closing {
                    return;
                }
                if let Some(ended) = state.ended.pop_front() {
                    state.delivering += 1;
                    break ended;
                }
                state = shared
                    .delivered
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        let Ended {
            attempt: _,
            spec,
            result,
            log,
            end_record,
            started,
        } = ended;
        let mut hooks = Hooks {
            publisher: &shared.publisher,
            conn: &mut conn,
            spec: &spec,
        };
        let outcome = remote::finish(&spec, result, log.as_deref(), &mut hooks);
        // Their words are in the job's log now; the spool keeps nothing of a finished task.
        for path in [log, end_record].into_iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
        // Reported before the slot is given back: a stop that sees nothing running has
        // every end in its channel.
        shared.finished(spec, outcome, started);
        shared.lock().delivering -= 1;
    }
}

/// The hooks of a farm job's local part: its publish checked against its claim.
pub(super) struct Hooks<'a> {
    pub(super) publisher: &'a FencedPublisher,
    pub(super) conn: &'a mut Option<Box<dyn JobQueue>>,
    pub(super) spec: &'a JobSpec,
}

impl JobHooks for Hooks<'_> {
    fn group_started(&mut self, _pgid: i32) -> bool {
        true
    }

    fn records_starts(&self) -> bool {
        false
    }

    fn publishing(&mut self, output: &Path, version: FileVersion) -> bool {
        self.publisher
            .publishing(self.conn, self.spec, output, version)
    }

    fn published_before(&mut self) -> Option<Published> {
        self.publisher.published_before(self.conn, self.spec)
    }
}
