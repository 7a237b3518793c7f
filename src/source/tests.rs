//! Tests of the multiplexer: real inotify sources over temp folders, started as separate
//! sources through the same merging path, and a gated source that finishes on cue.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError, select, unbounded};
use globset::GlobSet;

use super::*;
use crate::rules::{EventKind, EventSet, WatchRoot};

const LIMIT: Duration = Duration::from_secs(10);

/// Temp folders `r0`, `r1`, ... each holding the given files, and a config over them.
fn roots(files: &[&[&str]]) -> (tempfile::TempDir, WatchConfig) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut roots = Vec::new();
    for (index, names) in files.iter().enumerate() {
        let path = dir.path().join(format!("r{index}"));
        for name in *names {
            let file = path.join(name);
            std::fs::create_dir_all(file.parent().expect("has a folder")).expect("mkdir");
            std::fs::write(&file, name).expect("write");
        }
        std::fs::create_dir_all(&path).expect("mkdir");
        roots.push(WatchRoot {
            name: format!("r{index}"),
            path,
            recursive: true,
            source: SourceKind::Inotify,
            poll: crate::rules::DEFAULT_POLL,
        });
    }
    let config = WatchConfig {
        roots,
        ignore: GlobSet::empty(),
        events: EventSet::READY,
    };
    (dir, config)
}

/// Receives events until `done` holds for the last one, failing after [`LIMIT`].
fn receive_until(
    rx: &Receiver<SourceEvent>,
    what: &str,
    mut done: impl FnMut(&SourceEvent) -> bool,
) -> Vec<SourceEvent> {
    let deadline = Instant::now() + LIMIT;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
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

/// What is left in the channel once every source has stopped (it must then be disconnected).
fn rest_after_stop(rx: &Receiver<SourceEvent>) -> Vec<SourceEvent> {
    let mut rest = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(event) => rest.push(event),
            Err(TryRecvError::Disconnected) => return rest,
            Err(TryRecvError::Empty) => panic!("a source is still running after stop"),
        }
    }
}

fn initial(root: usize, rel: &str) -> SourceEvent {
    SourceEvent::File(FileEvent {
        root,
        rel: PathBuf::from(rel),
        kind: EventKind::CloseWrite,
        origin: Origin::InitialScan,
    })
}

fn is_done(event: &SourceEvent) -> bool {
    *event == SourceEvent::InitialScanDone
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A source that lists its roots only when the test opens its gate: one that finishes its
/// initial scan much later than the others, on cue.
struct GatedSource {
    roots: Vec<usize>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GatedSource {
    fn start(config: &WatchConfig, roots: Vec<usize>, sink: Sink, gate: Receiver<()>) -> Self {
        let (stop, stopped) = unbounded::<()>();
        let listing = config.clone();
        let mine = roots.clone();
        let thread = std::thread::spawn(move || {
            select! {
                recv(gate) -> _ => {}
                recv(stopped) -> _ => return,
            }
            for file in scan(&listing)
                .into_iter()
                .filter(|f| mine.contains(&f.root))
            {
                sink.send(SourceEvent::File(FileEvent {
                    origin: Origin::InitialScan,
                    ..file
                }));
            }
            sink.initial_scan_done();
            let _ = stopped.recv();
        });
        GatedSource {
            roots,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl FileSource for GatedSource {
    fn kind(&self) -> SourceKind {
        // The only kind there is; the multiplexer never asks a source to be what it says.
        SourceKind::Inotify
    }

    fn roots(&self) -> &[usize] {
        &self.roots
    }

    fn stop(mut self: Box<Self>) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            thread.join().expect("gated source thread");
        }
    }
}

#[test]
fn roots_are_grouped_by_kind_in_order_keeping_their_indices() {
    assert_eq!(
        group_by_kind(&[SourceKind::Inotify, SourceKind::Poll, SourceKind::Inotify]),
        vec![
            (SourceKind::Inotify, vec![0, 2]),
            (SourceKind::Poll, vec![1])
        ]
    );
}

#[test]
fn two_sources_send_one_initial_scan_done_after_both_scans() {
    let (_dir, config) = roots(&[&["a.exr"], &["b.exr", "deep/c.exr"], &["d.exr"]]);
    let (tx, rx) = unbounded();
    // Two inotify sources over interleaved subsets, through the same merging path.
    let groups = vec![
        (SourceKind::Inotify, vec![1]),
        (SourceKind::Inotify, vec![0, 2]),
    ];
    let sources = Sources::start_groups(&config, groups, tx, start_source).expect("start");
    let mut got = receive_until(&rx, "the initial scan", is_done);
    assert_eq!(got.pop(), Some(SourceEvent::InitialScanDone));
    let mut want = vec![
        initial(0, "a.exr"),
        initial(1, "b.exr"),
        initial(1, "deep/c.exr"),
        initial(2, "d.exr"),
    ];
    let key = |e: &SourceEvent| format!("{e:?}");
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want);

    // Live events of the second source name the root by its index in the whole config.
    std::fs::write(config.roots[2].path.join("e.exr"), "e").expect("write");
    let live = receive_until(
        &rx,
        "e.exr",
        |e| matches!(e, SourceEvent::File(f) if f.rel == Path::new("e.exr")),
    );
    assert!(!live.iter().any(is_done), "{live:?}");
    let Some(SourceEvent::File(file)) = live.last() else {
        unreachable!("receive_until ends on e.exr")
    };
    assert_eq!((file.root, file.origin), (2, Origin::Event));

    drop(sources);
    let rest = rest_after_stop(&rx);
    assert!(!rest.iter().any(is_done), "{rest:?}");
}

#[test]
fn a_late_source_holds_initial_scan_done_back_until_it_finishes() {
    let (_dir, config) = roots(&[&["early.exr"], &["late.exr"]]);
    let (tx, rx) = unbounded();
    let (open_gate, gate) = unbounded();
    let mut merge = None;
    let groups = vec![
        (SourceKind::Inotify, vec![0]),
        (SourceKind::Inotify, vec![1]),
    ];
    let sources = Sources::start_groups(&config, groups, tx, |kind, config, roots, sink| {
        if roots == [1] {
            merge = Some(sink.merge.clone());
            Ok(Box::new(GatedSource::start(
                config,
                roots,
                sink,
                gate.clone(),
            )))
        } else {
            start_source(kind, config, roots, sink)
        }
    })
    .expect("start");
    let merge = merge.expect("the gated source started");

    // The inotify source has reported its scan; only the gated one is outstanding.
    wait_until("the inotify source's initial scan", || {
        merge.pending.load(Ordering::Acquire) == 1
    });
    let mut early = Vec::new();
    while let Ok(event) = rx.try_recv() {
        early.push(event);
    }
    assert_eq!(early, vec![initial(0, "early.exr")]);

    open_gate.send(()).expect("gate");
    let late = receive_until(&rx, "the late initial scan", is_done);
    assert_eq!(
        late,
        vec![initial(1, "late.exr"), SourceEvent::InitialScanDone]
    );
    sources.stop();
    drop(merge);
    assert_eq!(rest_after_stop(&rx), vec![]);
}

#[test]
fn no_roots_means_the_initial_scan_is_done_at_once() {
    let (_dir, config) = roots(&[]);
    let (tx, rx) = unbounded();
    let sources = Sources::start(config, tx).expect("start");
    assert_eq!(rx.try_recv(), Ok(SourceEvent::InitialScanDone));
    drop(sources);
    assert_eq!(rest_after_stop(&rx), vec![]);
}

#[test]
fn a_source_that_cannot_start_stops_those_already_running() {
    let (_dir, config) = roots(&[&["a.exr"], &["b.exr"]]);
    let (tx, rx) = unbounded();
    let groups = vec![
        (SourceKind::Inotify, vec![0]),
        (SourceKind::Inotify, vec![1]),
    ];
    let result = Sources::start_groups(&config, groups, tx, |kind, config, roots, sink| {
        if roots == [1] {
            Err(SourceError::Thread {
                kind,
                error: io::Error::other("no threads left"),
            })
        } else {
            start_source(kind, config, roots, sink)
        }
    });
    let Err(error) = result else {
        panic!("start should fail")
    };
    assert_eq!(
        error.to_string(),
        "cannot start the thread of the `inotify` source: no threads left"
    );
    // The first source was stopped and joined: the channel is closed, and the engine never
    // heard that the (incomplete) initial scan was done.
    let rest = rest_after_stop(&rx);
    assert!(!rest.iter().any(is_done), "{rest:?}");
}

#[test]
fn a_second_report_from_the_same_source_is_not_counted() {
    let (tx, rx) = unbounded();
    let merge = Arc::new(Merge {
        engine: tx,
        pending: AtomicUsize::new(2),
    });
    let (first, second) = (Sink::new(merge.clone()), Sink::new(merge));
    first.initial_scan_done();
    first.send(SourceEvent::InitialScanDone);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    second.initial_scan_done();
    drop((first, second));
    assert_eq!(rest_after_stop(&rx), vec![SourceEvent::InitialScanDone]);
}
