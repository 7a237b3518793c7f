//! The watcher's copy of the cuts: every shot's latest ranges ([`CutIndex`]), read from the
//! store at start and again only when the count of stored revisions changes (one cheap
//! query at each store poll), so classifying a frame never waits on the database.

use std::sync::Arc;

use crate::route::cut::CutIndex;
use crate::store::cuts::CutStore;

/// The cut index and the revision count it was read at.
#[derive(Debug, Default)]
pub struct Cuts {
    /// Every shot's cut; swapped whole when a revision arrives.
    pub index: Arc<CutIndex>,
    /// How many revisions the store held when `index` was read; `None` before the first read.
    seen: Option<i64>,
}

impl Cuts {
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
        match CutIndex::load(store) {
            Ok(index) => {
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
