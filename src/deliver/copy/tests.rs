use super::*;

/// Accepts every publish, as a job without a store does.
struct Accept;

impl DeliveryHooks for Accept {
    fn publishing(&mut self, _: &Path, _: FileVersion) -> bool {
        true
    }
}

fn transfer(kind: TransferKind, root: &Path, to: &str, mhl: bool) -> Transfer {
    Transfer::new(
        kind,
        root.join(to),
        vec![HashKind::Xxh64, HashKind::Sha1],
        mhl.then(|| root.join("day1")),
        vec![root.to_path_buf()],
        "srjob1-1".into(),
    )
}

#[test]
fn a_copy_is_verified_logged_and_keeps_its_source() {
    let dir = tempfile::tempdir().expect("dir");
    let source = dir.path().join("in.mov");
    // Several blocks and a partial one, so the pipeline's hand-over is exercised.
    let data: Vec<u8> = (0..(2 * BLOCK + 12_345)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &data).expect("source");
    let step = transfer(TransferKind::Copy, dir.path(), "day1/sq010/out.mov", true);
    let mut log = Vec::new();
    let done = step
        .deliver(&source, &mut log, &mut Accept)
        .expect("copied");
    assert_eq!(
        std::fs::read(dir.path().join("day1/sq010/out.mov")).expect("copy"),
        data
    );
    assert!(source.exists());
    let mut expected = Hashes::new(&[HashKind::Xxh64, HashKind::Sha1]);
    expected.update(&data);
    assert_eq!(done.hashes, expected.finish());
    let log = String::from_utf8(log).expect("utf-8");
    assert!(
        log.contains(&format!("== xxh64 {} ", done.hashes[0].1)),
        "{log}"
    );
    assert!(log.contains("== ascmhl: generation 0001_day1_"), "{log}");
    let names: Vec<_> = std::fs::read_dir(dir.path().join("day1/sq010"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["out.mov"], "no temp file left");
}

#[test]
fn a_move_removes_its_source_only_after_the_copy_is_in_place() {
    let dir = tempfile::tempdir().expect("dir");
    let source = dir.path().join("in file $(x).mxf");
    std::fs::write(&source, b"media").expect("source");
    let step = transfer(
        TransferKind::Move,
        dir.path(),
        "out/in file $(x).mxf",
        false,
    );
    step.deliver(&source, &mut Vec::new(), &mut Accept)
        .expect("moved");
    assert!(!source.exists());
    assert_eq!(
        std::fs::read(dir.path().join("out/in file $(x).mxf")).expect("copy"),
        b"media"
    );
}

#[test]
fn a_source_that_changed_after_the_copy_is_not_removed() {
    let dir = tempfile::tempdir().expect("dir");
    let source = dir.path().join("in.mxf");
    std::fs::write(&source, b"media").expect("source");
    let step = transfer(TransferKind::Move, dir.path(), "out/in.mxf", false);
    let copied = copy_verified(
        &source,
        &{
            step.prepare_destination().expect("prepared");
            DirHandle::open_checked(
                dir.path(),
                Path::new("out"),
                &[dir.path().canonicalize().expect("real")],
            )
            .expect("open")
        },
        OsStr::new(".t"),
        &[HashKind::Xxh3],
    )
    .expect("copied");
    std::fs::write(&source, b"newer media").expect("rewrite");
    let error = step.remove_source(&source, &copied).expect_err("changed");
    assert!(
        error.to_string().contains("changed after it was copied"),
        "{error}"
    );
    assert_eq!(std::fs::read(&source).expect("kept"), b"newer media");
}

#[test]
fn a_move_onto_itself_is_refused_and_keeps_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let source = dir.path().join("out/x.mov");
    std::fs::create_dir_all(dir.path().join("out")).expect("folder");
    std::fs::write(&source, b"media").expect("source");
    let step = transfer(TransferKind::Move, dir.path(), "out/x.mov", false);
    let error = step
        .deliver(&source, &mut Vec::new(), &mut Accept)
        .expect_err("onto itself");
    assert!(
        error.to_string().contains("is the destination itself"),
        "{error}"
    );
    assert_eq!(std::fs::read(&source).expect("kept"), b"media");
}

#[test]
fn a_missing_source_fails_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let step = transfer(TransferKind::Move, dir.path(), "out/x.mov", false);
    let mut log = Vec::new();
    let error = step
        .deliver(&dir.path().join("gone.mov"), &mut log, &mut Accept)
        .expect_err("missing");
    assert!(error.to_string().contains("cannot open"), "{error}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("out"))
            .expect("list")
            .count(),
        0
    );
    assert!(
        String::from_utf8(log)
            .expect("utf-8")
            .contains("\n== cannot move to")
    );
}
