//! The state of the watch for `stuck` jobs: which queued jobs were seen waiting since when,
//! and when the queue is next looked at. The watch itself is the watcher's
//! [`notify`](super::notify).

use std::collections::HashMap;
use std::time::Instant;

/// Jobs seen waiting in the queue: since when, and which targets were already told.
#[derive(Debug, Default)]
pub struct StuckWatch {
    /// By job: when it was first seen waiting, and a bit per target already told.
    pub(super) since: HashMap<String, (Instant, u64)>,
    /// When the queue is next looked at.
    pub next_check: Option<Instant>,
}
