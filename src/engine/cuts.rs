//! The watcher's copy of the cuts: every shot's latest ranges ([`CutIndex`]), read from the
//! store at start and again only when the count of stored revisions changes (one cheap
//! query at each store poll), so classifying a frame never waits on the database. Revisions
//! that arrive while it runs (by `cut import` in another process, or its own import of
//! `cuts.files`) are diffed as they are read, for the `extended` notice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::Engine;
use super::waste_watch::WasteWatch;
use crate::cutfile::{ExtendedShot, extended_shots};
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
    /// Each cut's latest revision when `index` was read; `None` before the first read (what
    /// the store held at start is not news).
    latest: Option<HashMap<String, i64>>,
    /// Revisions read since the engine last looked that extend shots, with those shots.
    pub extended: Vec<(CutRevision, Vec<ExtendedShot>)>,
}

impl Engine {
    /// Reads the cuts again when the store holds a new revision, and then has their waste
    /// worked out again and the `conform:` block told (the waste also when files arrived long
    /// enough ago); returns whether it read them.
    pub(super) fn refresh_cuts(&mut self, now: Instant) -> bool {
        let Some(store) = self.node.store.as_deref() else {
            return false;
        };
        let cuts = &mut self.cuts;
        if cuts.refresh(store) {
            cuts.waste.ask(&self.set, &cuts.revisions, now);
            self.conform_read_cuts(true, now);
            true
        } else {
            cuts.waste.tick(&self.set, &cuts.revisions, now);
            false
        }
    }
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
                self.note_new_revisions(store);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cuts; routing by the cuts read before");
                false
            }
        }
    }

    /// Collects, for each revision stored since the last read, its `extended` shots against
    /// the revision before it. Every new revision is looked at, not only the latest: two
    /// imports between two polls must not hide the first one's extension.
    fn note_new_revisions(&mut self, store: &dyn CutStore) {
        let now: HashMap<String, i64> = self
            .revisions
            .iter()
            .map(|r| (r.name.clone(), r.revision))
            .collect();
        let Some(before) = self.latest.replace(now) else {
            return;
        };
        for latest in self.revisions.iter() {
            let from = before.get(&latest.name).copied().unwrap_or(0) + 1;
            for number in from..=latest.revision {
                let read = |n: i64| store.cut_revision(&latest.name, Some(n));
                let (Ok(Some(revision)), Ok(previous)) = (read(number), read(number - 1)) else {
                    tracing::warn!(cut = %latest.name, revision = number, "cannot read a new cut revision; its extended shots are not told");
                    continue;
                };
                let shots = extended_shots(previous.as_ref(), &revision);
                if !shots.is_empty() {
                    self.extended.push((revision, shots));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cutfile::{Dedup, Request, import};
    use crate::edit::ShotNaming;
    use crate::media::timecode::Rate;
    use crate::store::sqlite::SqliteStore;

    const REV1: &str = "001  AX V C 01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n* FROM CLIP NAME: sh010_anim\n";
    const REV2: &str = "001  AX V C 01:00:00:00 01:00:02:12 01:00:00:00 01:00:02:12\n* FROM CLIP NAME: sh010_anim\n";

    fn add(store: &mut SqliteStore, name: &str, text: &str) {
        let naming = ShotNaming::new(r"^(?P<shot>[A-Za-z]+[0-9]+)(?:_|$)").unwrap();
        let request = Request {
            file: Path::new("cut.edl"),
            source: Path::new("/cut.edl"),
            bytes: text.as_bytes(),
            name,
            fps: Some(Rate::parse("24").unwrap()),
            naming: &naming,
            dedup: Dedup::Never,
        };
        import(store, request).expect("imports");
    }

    #[test]
    fn revisions_read_after_the_first_read_are_diffed_each_against_its_own_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("state"), "n").unwrap();
        add(&mut store, "old", REV1);
        add(&mut store, "old", REV2);
        let mut cuts = Cuts::default();
        assert!(cuts.refresh(&store));
        assert!(
            cuts.extended.is_empty(),
            "what the store held at start is not news"
        );
        // Two imports between two polls, and a new cut.
        add(&mut store, "seq", REV1);
        add(&mut store, "seq", REV2);
        add(&mut store, "seq", REV1);
        add(&mut store, "seq", REV2);
        assert!(cuts.refresh(&store));
        let told: Vec<(String, i64, String)> = cuts
            .extended
            .iter()
            .map(|(r, shots)| (r.name.clone(), r.revision, shots[0].frames.clone()))
            .collect();
        assert_eq!(
            told,
            [
                ("seq".to_string(), 2, "1065-1076".to_string()),
                ("seq".to_string(), 4, "1065-1076".to_string())
            ]
        );
        assert!(!cuts.refresh(&store), "nothing new");
    }
}
