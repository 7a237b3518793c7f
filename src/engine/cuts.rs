//! The watcher's copy of the cuts: every shot's latest ranges ([`CutIndex`]), read from the
//! store at start and again only when the count of stored revisions changes (one cheap
//! query at each store poll), so classifying a frame never waits on the database.

use std::sync::Arc;

use super::waste_watch::WasteWatch;
use crate::route::cut::CutIndex;
use crate::store::cuts::{CutRevision, CutStore};

/// The cut index and the revision count it was read at.
#[derive(Debug, Default)]
pub struct Cuts {
    /// Every shot's cut; swapped whole when a revision arrives.
    pub index: Arc<CutIndex>,
    /// The latest revision of every cut, the index's source (the waste is worked out from them).
    pub revisions: Arc<Vec<CutRevision>>,
    /// The thread that works out the cuts' waste for the dashboard.
    pub waste: WasteWatch,
    /// How many revisions the store held when `index` was read; `None` before the first read.
    seen: Option<i64>,
}

impl Cuts {
    /// No cuts read yet; `waste` works out their waste once they are.
    pub fn new(waste: WasteWatch) -> Cuts {
        Cuts {
            waste,
            ..Cuts::default()
        }
    }

    /// Reads the cuts again when the store holds a revision the index has not seen; returns
    /// whether it did. A store that cannot answer leaves the index as it was (logged): routing
    /// by a slightly old cut beats stopping the watcher.
    pub fn refresh(&mut self, store: &dyn CutStore) -> bool {
        let count = match store.cut_revision_count() {
            Ok(count) => count,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the cuts' revisions; routing by the cuts read before");
                return false;
            }
        };
        if self.seen == Some(count) {
            return false;
        }
        match store.latest_revisions() {
            Ok(revisions) => {
                let index = CutIndex::of(&revisions);
                self.revisions = Arc::new(revisions);
                if self.seen.is_some() || !index.is_empty() {
                    tracing::info!(revisions = count, "routing by the latest cuts");
                }
                self.index = Arc::new(index);
                self.seen = Some(count);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cuts; routing by the cuts read before");
                false
            }
        }
    }
}
