//! The one write an executor makes itself: a product's version, recorded in the store with the
//! attempt's fencing token just before the rename. A product of a superseded claim is never
//! published, whichever executor ran its commands (here or on the farm).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::exec::provenance::Provenance;
use crate::exec::runner::JobSpec;
use crate::os::version::FileVersion;
use crate::store::StoreError;
use crate::store::queue::{Delivered, JobQueue, Published};

/// Longest a finished attempt waits for an unreachable store before its publish gives up.
const PUBLISH_WAIT: Duration = Duration::from_secs(120);

/// Opens a store connection for a publishing thread (each has its own).
pub type QueueFactory = Arc<dyn Fn() -> Result<Box<dyn JobQueue>, StoreError> + Send + Sync>;

/// Checks an attempt's claim at its publish, and remembers what this node published.
pub struct FencedPublisher {
    /// What this node published, so its own rename's file event is not routed as new work.
    pub provenance: Arc<Provenance>,
    /// The store, when jobs are recorded.
    pub store: Option<QueueFactory>,
}

impl FencedPublisher {
    /// Records `output`'s version for `spec`'s claim; false when the claim is stale or the
    /// store cannot be reached within two minutes (then nothing is published). `conn` is
    /// the calling thread's connection, opened on its first publish.
    pub fn publishing(
        &self,
        conn: &mut Option<Box<dyn JobQueue>>,
        spec: &JobSpec,
        output: &Path,
        version: FileVersion,
    ) -> bool {
        let Some(claim) = spec.claim else {
            self.provenance.record(output, &spec.rule, version);
            return true;
        };
        let Some(open) = self.store.as_ref() else {
            return true;
        };
        // The claim is checked at the publish or nothing is published: a product that cannot
        // be shown current might be stale. A store that cannot be reached (a database
        // restarting) is waited for, up to PUBLISH_WAIT, with the connection opened again;
        // after that the attempt fails and is retried as the rule says.
        let deadline = Instant::now() + PUBLISH_WAIT;
        let mut pause = Duration::from_millis(250);
        let what = if spec
            .plan
            .output
            .as_ref()
            .is_some_and(|o| o.final_path == output)
        {
            Delivered::Product
        } else {
            Delivered::Copy
        };
        loop {
            let result = match conn.as_mut() {
                Some(store) => store.publishing(claim, &spec.rule, output, version, what),
                None => open().and_then(|store| {
                    let store = conn.insert(store);
                    store.publishing(claim, &spec.rule, output, version, what)
                }),
            };
            match result {
                Ok(()) => break,
                Err(e @ StoreError::Stale { .. }) => {
                    tracing::error!(job = claim.id, error = %e, "not publishing: this attempt lost its claim");
                    return false;
                }
                Err(e) if Instant::now() + pause > deadline => {
                    tracing::error!(job = claim.id, error = %e, "not publishing: cannot check the claim in the store");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(job = claim.id, error = %e, retry_in_ms = pause.as_millis() as u64, "the store does not answer; the publish waits for it");
                    *conn = None;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.provenance.record(output, &spec.rule, version);
        true
    }

    /// The product an earlier attempt of `spec`'s job published, if the store recorded one.
    pub fn published_before(
        &self,
        conn: &mut Option<Box<dyn JobQueue>>,
        spec: &JobSpec,
    ) -> Option<Published> {
        let claim = spec.claim?;
        let open = self.store.as_ref()?;
        let store = match conn.as_mut() {
            Some(store) => store,
            None => conn.insert(open().ok()?),
        };
        match store.published_product(claim) {
            Ok(published) => published,
            Err(e) => {
                // Run as a first attempt would: the product is published again, no harm done.
                tracing::warn!(job = claim.id, error = %e, "cannot read what an earlier attempt published; running the commands");
                *conn = None;
                None
            }
        }
    }
}
