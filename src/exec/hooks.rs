//! What a running attempt tells whoever records it, at the moments that must be durable: a
//! step's process group started, a product about to be published (checked against the claim),
//! progress; and what it asks: whether an earlier attempt already published.

use std::path::Path;

use crate::exec::progress::ProgressSink;
use crate::os::version::FileVersion;
use crate::store::queue::Published;

/// What a running job reports as it goes, so it can be recorded durably.
pub trait JobHooks {
    /// A step's process group started (the daemon may die; a later one must be able to kill it).
    /// `pgid` 0: the attempt goes on with no process group alive (its quick steps are over and
    /// its delivery begins). Returning false stops the job at once (a user cancelled it while
    /// it waited).
    fn group_started(&mut self, pgid: i32) -> bool;
    /// Whether [`group_started`](Self::group_started) records anything: when it does, a quick
    /// step is not reported at all (its end records it), which saves a /proc read per step.
    fn records_starts(&self) -> bool {
        true
    }
    /// Whether this attempt's start was reported: its quick steps were not, so before a
    /// delivery (which may take long) the runner reports it with no group.
    fn start_reported(&self) -> bool {
        true
    }
    /// The product is about to be renamed into place with this version. Returning false
    /// discards it instead: the attempt no longer holds the job's claim.
    fn publishing(&mut self, output: &Path, version: FileVersion) -> bool;
    /// Where an ffmpeg step's progress goes (`progress: ffmpeg`); `None` reads none.
    fn progress_sink(&mut self) -> Option<ProgressSink> {
        None
    }
    /// The version of the product an earlier attempt of this job published, and of its
    /// delivery, if the store recorded one (an attempt cut short after its publish).
    fn published_before(&mut self) -> Option<Published> {
        None
    }
}
