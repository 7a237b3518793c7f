//! Importing into a real SQLite store: a changed file is a new revision, the same bytes are
//! not (by the latest revision's hash, or any's at a restart), and `extended` shots name the
//! frames the previous revision did not keep.

use std::path::Path;

use super::*;
use crate::store::sqlite::SqliteStore;

const REV1: &str = "TITLE: t\n001  SH010 V C 01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n* FROM CLIP NAME: sh010_anim\n";
/// `sh010` 12 frames longer: frames 1065-1076 were never kept.
const REV2: &str = "TITLE: t\n001  SH010 V C 01:00:00:00 01:00:02:12 01:00:00:00 01:00:02:12\n* FROM CLIP NAME: sh010_anim\n";

fn naming() -> ShotNaming {
    ShotNaming::new(r"^(?P<shot>[A-Za-z]+[0-9]+)(?:_|$)").unwrap()
}

fn run(store: &mut dyn CutStore, text: &str, dedup: Dedup) -> Result<Imported, ImportError> {
    let naming = naming();
    import(
        store,
        Request {
            file: Path::new("reel1.edl"),
            source: Path::new("/show/editorial/reel1.edl"),
            bytes: text.as_bytes(),
            name: "reel1",
            fps: Some(Rate::parse("24").unwrap()),
            naming: &naming,
            dedup,
        },
    )
}

fn stored(result: Result<Imported, ImportError>) -> CutRevision {
    match result.expect("imports") {
        Imported::Stored(r) => r,
        other => panic!("not stored: {other:?}"),
    }
}

#[test]
fn the_hash_is_of_the_bytes() {
    assert_eq!(content_hash(b"a"), content_hash(b"a"));
    assert_ne!(content_hash(b"a"), content_hash(b"a\n"));
    assert!(content_hash(b"").starts_with("xxh3:") && content_hash(b"").len() == 21);
    assert_eq!(
        name_of(Path::new("/e/reel1.v2.edl")).as_deref(),
        Some("reel1.v2")
    );
    assert_eq!(name_of(Path::new("/")), None);
}

#[test]
fn unchanged_content_is_no_new_revision_and_old_content_only_counts_at_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("state"), "n").unwrap();
    let first = stored(run(&mut store, REV1, Dedup::Latest));
    assert_eq!(
        (first.revision, first.source.as_str()),
        (1, "/show/editorial/reel1.edl")
    );
    assert_eq!(first.hash, content_hash(REV1.as_bytes()));
    assert_eq!(
        run(&mut store, REV1, Dedup::Latest).unwrap(),
        Imported::Unchanged { revision: 1 }
    );
    let second = stored(run(&mut store, REV2, Dedup::Latest));
    assert_eq!(second.revision, 2);
    // Revision 1's bytes again: a restart's scan leaves them, a live save is a revert.
    assert_eq!(
        run(&mut store, REV1, Dedup::Any).unwrap(),
        Imported::Unchanged { revision: 1 }
    );
    assert_eq!(stored(run(&mut store, REV1, Dedup::Latest)).revision, 3);
    // `cut import` always stores.
    assert_eq!(stored(run(&mut store, REV1, Dedup::Never)).revision, 4);
    assert_eq!(store.cut_revision_count().unwrap(), 4);
}

#[test]
fn a_broken_file_stores_nothing_and_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("state"), "n").unwrap();
    let err = run(&mut store, "TITLE: t\nthis is no event\n", Dedup::Latest).unwrap_err();
    assert!(err.to_string().starts_with("`reel1.edl`: line 2:"), "{err}");
    assert_eq!(store.cut_revision_count().unwrap(), 0);
}

#[test]
fn extended_shots_name_the_frames_the_previous_revision_did_not_keep() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("state"), "n").unwrap();
    let first = stored(run(&mut store, REV1, Dedup::Latest));
    let second = stored(run(&mut store, REV2, Dedup::Latest));
    assert!(extended_shots(None, &first).is_empty());
    let shots = extended_shots(Some(&first), &second);
    assert_eq!(
        shots,
        [ExtendedShot {
            shot: "sh010".into(),
            head_in: 1001,
            tail_out: 1076,
            previous_head_in: 1001,
            previous_tail_out: 1064,
            frames: "1065-1076".into(),
            count: 12,
        }]
    );
}
