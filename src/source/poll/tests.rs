//! The polling source on real temp folders, with short intervals: what it reports, when, and
//! what it never reports (deletions of what only became unreachable).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, unbounded};
use globset::{Glob, GlobSetBuilder};

use super::*;
use crate::rules::{EventKind, EventSet, PollSettings, WatchRoot};
use crate::source::{FileEvent, Merge, Origin, SourceEvent};

const SETTINGS: PollSettings = PollSettings {
    hot: Duration::from_millis(50),
    cold: Duration::from_millis(200),
    quiet: Duration::from_millis(300),
};

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    rx: Receiver<SourceEvent>,
    source: Option<PollSource>,
}

impl Fixture {
    /// A root holding `files`, polled with [`SETTINGS`], after its initial scan was reported
    /// (checked against `files`).
    fn start(files: &[&str], recursive: bool) -> Fixture {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("mkdir");
        for rel in files {
            write_old(&root.join(rel), b"x");
        }
        let mut ignore = GlobSetBuilder::new();
        ignore.add(Glob::new("**/*.tmp").expect("glob"));
        ignore.add(Glob::new("**/.cache").expect("glob"));
        let mut events = EventSet::READY;
        events.insert(EventKind::Delete);
        let config = WatchConfig {
            roots: vec![WatchRoot {
                name: "root".into(),
                path: root.clone(),
                recursive,
                source: SourceKind::Poll,
                poll: SETTINGS,
            }],
            ignore: ignore.build().expect("globset"),
            events,
        };
        let (tx, rx) = unbounded();
        let merge = Arc::new(Merge {
            engine: tx,
            pending: AtomicUsize::new(1),
        });
        let source = PollSource::start(&config, vec![0], Sink::new(merge)).expect("start");
        let mut fixture = Fixture {
            _dir: dir,
            root,
            rx,
            source: Some(source),
        };
        let mut initial = fixture.until("the initial scan", |e| *e == SourceEvent::InitialScanDone);
        initial.pop();
        let mut got: Vec<String> = initial
            .into_iter()
            .map(|e| match e {
                SourceEvent::File(FileEvent {
                    rel,
                    kind: EventKind::CloseWrite,
                    origin: Origin::InitialScan,
                    ..
                }) => rel.display().to_string(),
                other => panic!("unexpected {other:?} in the initial scan"),
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = files
            .iter()
            .filter(|f| !f.ends_with(".tmp") && !f.contains(".cache"))
            .filter(|f| recursive || !f.contains('/'))
            .map(|f| f.to_string())
            .collect();
        want.sort();
        assert_eq!(got, want);
        fixture
    }

    /// Events until `done` holds for one (included), failing after 10 s.
    fn until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&SourceEvent) -> bool,
    ) -> Vec<SourceEvent> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(SourceEvent::PollPass { .. }) => {}
                Ok(event) => {
                    let last = done(&event);
                    got.push(event);
                    if last {
                        return got;
                    }
                }
                Err(e) => panic!("{e} while waiting for {what}; got {got:?}"),
            }
        }
    }

    /// Everything reported until a pass that began at least `time` from now has ended (so every
    /// folder due within `time` was looked at, however slowly the machine runs); fails after
    /// 10 s without such a pass.
    fn quiet_for(&self, time: Duration) -> Vec<SourceEvent> {
        let after = Instant::now() + time;
        let deadline = after + Duration::from_secs(10);
        // The first pass to end after `after` may have begun before it; the second did not.
        let mut passes_after = 0;
        let mut got = Vec::new();
        while passes_after < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(SourceEvent::PollPass { .. }) => {
                    if Instant::now() >= after {
                        passes_after += 1;
                    }
                }
                Ok(event) => got.push(event),
                Err(e) => panic!("{e} while waiting for the passes after {time:?}; got {got:?}"),
            }
        }
        got
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        drop(self.source.take());
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("has a folder")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// Writes a file last modified a year ago (long finished, as most of a tree is at start-up).
fn write_old(path: &Path, bytes: &[u8]) {
    write(path, bytes);
    let old = SystemTime::now() - Duration::from_secs(86_400 * 365);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(old))
        .expect("set mtime");
}

fn file_event(rel: &str, kind: EventKind) -> FileEvent {
    FileEvent {
        root: 0,
        rel: PathBuf::from(rel),
        kind,
        origin: Origin::Event,
    }
}

fn file(rel: &str, kind: EventKind) -> SourceEvent {
    SourceEvent::File(file_event(rel, kind))
}

#[test]
fn new_files_are_found_by_listing_and_reported_once_after_holding_still() {
    let mut f = Fixture::start(
        &[
            "sh010/old.exr",
            "sh020/a.exr",
            "top.exr",
            "sh010/.cache/c.exr",
        ],
        true,
    );
    // A new nested folder, a quiet old folder, a file with an old mtime (as `cp -p` leaves),
    // an ignored temp file.
    write(&f.path("sh030/comp/v001/b.exr"), b"b");
    write_old(&f.path("sh020/old-mtime.exr"), b"o");
    write(&f.path("sh020/partial.tmp"), b"t");
    let mut want = vec!["sh020/old-mtime.exr", "sh030/comp/v001/b.exr"];
    let mut got = Vec::new();
    let started = Instant::now();
    while !want.is_empty() {
        let events = f.until("the new files", |e| matches!(e, SourceEvent::File(_)));
        let Some(SourceEvent::File(event)) = events.last() else {
            unreachable!()
        };
        assert_eq!(
            (event.kind, event.origin),
            (EventKind::CloseWrite, Origin::Event),
            "{event:?}"
        );
        let rel = event.rel.display().to_string();
        assert!(want.contains(&rel.as_str()), "unexpected {rel}");
        want.retain(|w| *w != rel);
        got.push(rel);
    }
    assert!(
        started.elapsed() >= SETTINGS.quiet,
        "reported before the quiet time"
    );
    // Nothing is reported twice, and the index does not re-report old files.
    let rest = f.quiet_for(SETTINGS.cold * 3);
    assert_eq!(rest, vec![], "after {got:?}");
}

#[test]
fn names_with_spaces_quotes_newlines_and_invalid_utf8_survive() {
    use std::os::unix::ffi::OsStrExt;
    let mut f = Fixture::start(&[], true);
    let name = std::ffi::OsStr::from_bytes(b"it's a \"frame\"\n\xff.exr");
    let rel = Path::new("sh 010").join(name);
    write(&f.root.join(&rel), b"x");
    let events = f.until("the odd name", |e| matches!(e, SourceEvent::File(_)));
    assert_eq!(
        events,
        vec![SourceEvent::File(FileEvent {
            root: 0,
            rel: rel.clone(),
            kind: EventKind::CloseWrite,
            origin: Origin::Event,
        })]
    );
    std::fs::remove_file(f.root.join(&rel)).expect("rm");
    let events = f.until("its deletion", |e| matches!(e, SourceEvent::File(_)));
    assert_eq!(
        events,
        vec![SourceEvent::File(FileEvent {
            root: 0,
            rel,
            kind: EventKind::Delete,
            origin: Origin::Event,
        })]
    );
}

#[test]
fn a_growing_file_is_reported_once_complete() {
    let mut f = Fixture::start(&[], true);
    let path = f.path("render/frame.0001.exr");
    std::fs::create_dir_all(path.parent().expect("folder")).expect("mkdir");
    let writer = std::thread::spawn(move || {
        let mut out = std::fs::File::create(&path).expect("create");
        // Slowly, as a render writes a frame: the pauses are the scenario.
        for _ in 0..12 {
            out.write_all(&[7u8; 1000]).expect("append");
            out.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let events = f.until("the frame", |e| matches!(e, SourceEvent::File(_)));
    let size = std::fs::metadata(f.path("render/frame.0001.exr"))
        .expect("stat")
        .len();
    assert!(writer.is_finished(), "reported while still being written");
    writer.join().expect("writer");
    assert_eq!(size, 12_000);
    assert_eq!(
        events.last(),
        Some(&file("render/frame.0001.exr", EventKind::CloseWrite))
    );
    assert_eq!(f.quiet_for(SETTINGS.cold * 2), vec![]);
}

#[test]
fn a_file_still_growing_at_start_up_is_reported_with_the_initial_scan_once_complete() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("growing.exr");
    let writer_path = path.clone();
    let writer = std::thread::spawn(move || {
        let mut out = std::fs::File::create(&writer_path).expect("create");
        // Slowly, so it still grows when the source starts: the pauses are the scenario.
        for _ in 0..8 {
            out.write_all(&[7u8; 1000]).expect("append");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // The source starts once the file has begun (and is far from done: 800 ms to go).
    let begun = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&path).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < begun, "the writer did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    let config = WatchConfig {
        roots: vec![WatchRoot {
            name: "root".into(),
            path: dir.path().to_path_buf(),
            recursive: true,
            source: SourceKind::Poll,
            poll: SETTINGS,
        }],
        ignore: globset::GlobSet::empty(),
        events: EventSet::READY,
    };
    let (tx, rx) = unbounded();
    let merge = Arc::new(Merge {
        engine: tx,
        pending: AtomicUsize::new(1),
    });
    let source = PollSource::start(&config, vec![0], Sink::new(merge)).expect("start");
    // Passes' timings are for the engine's metrics, not this test.
    let recv = || loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(SourceEvent::PollPass { .. }) => {}
            other => break other,
        }
    };
    let first = recv().expect("an event");
    assert_eq!(
        first,
        SourceEvent::InitialScanDone,
        "the growing file waits"
    );
    let next = recv().expect("the file");
    assert!(writer.is_finished(), "reported while still being written");
    writer.join().expect("writer");
    assert_eq!(
        next,
        SourceEvent::File(FileEvent {
            root: 0,
            rel: PathBuf::from("growing.exr"),
            kind: EventKind::CloseWrite,
            origin: Origin::Event,
        })
    );
    drop(source);
}

#[test]
fn deletions_are_reported_and_renames_are_a_deletion_and_a_moved_to() {
    let mut f = Fixture::start(
        &["sh010/a.exr", "sh010/b.exr", "sh020/c.exr", "gone/d.exr"],
        true,
    );
    std::fs::remove_file(f.path("sh010/a.exr")).expect("rm");
    std::fs::rename(f.path("sh010/b.exr"), f.path("sh010/b2.exr")).expect("mv");
    std::fs::rename(f.path("sh020/c.exr"), f.path("sh010/c.exr")).expect("mv across");
    std::fs::remove_dir_all(f.path("gone")).expect("rm -r");
    // Written under an ignored temp name, then renamed into place.
    write(&f.path("sh020/e.exr.tmp"), b"e");
    let mut want = vec![
        file("sh010/a.exr", EventKind::Delete),
        file("gone/d.exr", EventKind::Delete),
        file("sh010/b.exr", EventKind::Delete),
        file("sh020/c.exr", EventKind::Delete),
        file("sh010/b2.exr", EventKind::MovedTo),
        file("sh010/c.exr", EventKind::MovedTo),
    ];
    let mut got = Vec::new();
    while got.len() < want.len() {
        got.extend(f.until("the changes", |e| matches!(e, SourceEvent::File(_))));
    }
    let key = |e: &SourceEvent| format!("{e:?}");
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want);
    // Let the temp file's folder go cold, then rename it into place.
    std::fs::rename(f.path("sh020/e.exr.tmp"), f.path("sh020/e.exr")).expect("mv");
    let events = f.until("e.exr", |e| matches!(e, SourceEvent::File(_)));
    assert_eq!(events, vec![file("sh020/e.exr", EventKind::MovedTo)]);
    assert_eq!(f.quiet_for(SETTINGS.cold * 2), vec![]);
}

#[test]
fn a_root_that_vanishes_or_lists_empty_is_lost_never_deleted() {
    let mut f = Fixture::start(&["sh010/a.exr", "b.exr"], true);
    let away = f.root.with_file_name("away");
    // Unreachable (the path is gone): lost, nothing deleted.
    std::fs::rename(&f.root, &away).expect("mv root away");
    let events = f.until("the root to be lost", |e| {
        matches!(e, SourceEvent::RootLost(_))
    });
    assert_eq!(events, vec![SourceEvent::RootLost(f.root.clone())]);
    write(&away.join("sh010/new.exr"), b"n");
    std::fs::rename(&away, &f.root).expect("mv root back");
    let events = f.until("the new file", |e| matches!(e, SourceEvent::File(_)));
    assert_eq!(
        events,
        vec![
            SourceEvent::RootBack(f.root.clone()),
            file("sh010/new.exr", EventKind::CloseWrite)
        ]
    );
    assert_eq!(f.quiet_for(SETTINGS.cold * 2), vec![]);

    // Listing empty all at once (a mount point left bare): lost, and the files that come back
    // are not reported again.
    std::fs::create_dir(&away).expect("mkdir");
    for name in ["sh010", "b.exr"] {
        std::fs::rename(f.root.join(name), away.join(name)).expect("move out");
    }
    let events = f.until("the root to be lost", |_| true);
    assert_eq!(events, vec![SourceEvent::RootLost(f.root.clone())]);
    assert_eq!(
        f.quiet_for(SETTINGS.cold * 2),
        vec![],
        "nothing deleted while lost"
    );
    for name in ["sh010", "b.exr"] {
        std::fs::rename(away.join(name), f.root.join(name)).expect("move back");
    }
    let events = f.until("the root's return", |e| {
        matches!(e, SourceEvent::RootBack(_))
    });
    assert_eq!(events, vec![SourceEvent::RootBack(f.root.clone())]);
    assert_eq!(
        f.quiet_for(SETTINGS.cold * 2),
        vec![],
        "nothing re-reported"
    );
}

#[test]
fn a_folder_replaced_by_another_of_the_same_name_is_listed_anew() {
    let mut f = Fixture::start(&["sh010/a.exr", "sh010/b.exr"], true);
    std::fs::rename(f.path("sh010"), f.path("sh010.old")).expect("mv aside");
    write(&f.path("sh010/a.exr"), b"new a");
    // Whether the old `a.exr` reads as deleted, and the moved-aside files as moved, depends on
    // whether one pass saw both sides; either way each is ready once.
    let mut got = Vec::new();
    while got.len() < 4 {
        for event in f.until("the changes", |e| matches!(e, SourceEvent::File(_))) {
            let SourceEvent::File(mut event) = event else {
                unreachable!()
            };
            if event.kind == EventKind::MovedTo {
                event.kind = EventKind::CloseWrite;
            }
            if event != file_event("sh010/a.exr", EventKind::Delete) {
                got.push(SourceEvent::File(event));
            }
        }
    }
    let key = |e: &SourceEvent| format!("{e:?}");
    got.sort_by_key(key);
    let mut want = vec![
        file("sh010/b.exr", EventKind::Delete),
        file("sh010/a.exr", EventKind::CloseWrite),
        file("sh010.old/a.exr", EventKind::CloseWrite),
        file("sh010.old/b.exr", EventKind::CloseWrite),
    ];
    want.sort_by_key(key);
    // The new `sh010` is a different folder: its `a.exr` is new although the name is not.
    assert_eq!(got, want);
    assert_eq!(f.quiet_for(SETTINGS.cold * 2), vec![]);
}

#[test]
fn a_shallow_root_does_not_enter_sub_folders_and_stops_promptly() {
    let mut f = Fixture::start(&["a.exr", "sub/b.exr"], false);
    write(&f.path("sub/c.exr"), b"c");
    write(&f.path("d.exr"), b"d");
    let events = f.until("d.exr", |e| matches!(e, SourceEvent::File(_)));
    assert_eq!(events, vec![file("d.exr", EventKind::CloseWrite)]);
    assert_eq!(f.quiet_for(SETTINGS.cold * 2), vec![]);
    let started = Instant::now();
    drop(f.source.take());
    assert!(started.elapsed() < Duration::from_millis(500));
}
