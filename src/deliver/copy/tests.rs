use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;

use super::*;
use crate::deliver::hash::Hashes;

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

/// Lets a delivery verify its copy, then holds it before the rename until told to go on.
struct Gate {
    reached: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
}

impl DeliveryHooks for Gate {
    fn publishing(&mut self, _: &Path, _: FileVersion) -> bool {
        let _ = self.reached.send(());
        self.go.recv_timeout(Duration::from_secs(60)).is_ok()
    }
}

fn gate() -> (
    Gate,
    std::sync::mpsc::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (reached, at_gate) = std::sync::mpsc::channel();
    let (go_on, go) = std::sync::mpsc::channel();
    (Gate { reached, go }, at_gate, go_on)
}

fn claim_of(root: &Path, job: &str, token: i64) -> Transfer {
    Transfer::new(
        TransferKind::Copy,
        root.join("out/out.mov"),
        vec![HashKind::Xxh64],
        None,
        vec![root.to_path_buf()],
        attempt_tag(job, token),
    )
}

fn temp_of(root: &Path, job: &str, token: i64) -> PathBuf {
    crate::deliver::publish::temp_beside(&root.join("out/out.mov"), &attempt_tag(job, token))
        .expect("name")
}

/// The sidecar whose lock marks temp file `temp` as a live attempt's.
fn sidecar_of(temp: &Path) -> PathBuf {
    let mut name = temp.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Whether another open file holds `path`'s `flock`.
fn is_locked(path: &Path) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let file = File::open(path).expect("open");
    Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err()
}

/// Starts `flock(1)` holding `path`'s lock in a process of its own (an attempt on another
/// node, as far as locks go) and waits until it holds it.
fn hold_lock(path: &Path) -> std::process::Child {
    let holder = std::process::Command::new("flock")
        .arg(path)
        .args(["sleep", "600"])
        .process_group(0)
        .spawn()
        .expect("flock(1) from util-linux");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() || !is_locked(path) {
        assert!(Instant::now() < deadline, "flock(1) never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    holder
}

/// Kills `holder` (its group: `sleep` holds the lock too) and waits until the lock on `path`
/// is gone.
fn kill_holder(mut holder: std::process::Child, path: &Path) {
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(holder.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    holder.wait().expect("reaped");
    let deadline = Instant::now() + Duration::from_secs(30);
    while is_locked(path) {
        assert!(
            Instant::now() < deadline,
            "the killed attempt's lock never went"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn issue_19_a_live_attempt_is_known_by_its_sidecar_and_a_killed_ones_files_both_go() {
    let dir = tempfile::tempdir().expect("dir");
    let source = dir.path().join("in.mov");
    std::fs::write(&source, b"media").expect("source");
    std::fs::create_dir_all(dir.path().join("out")).expect("folder");
    let temp = temp_of(dir.path(), "7", 1);
    std::fs::write(&temp, b"half a copy").expect("temp");
    let sidecar = sidecar_of(&temp);
    // A live first attempt holds its sidecar (its temp file is never locked).
    let holder = hold_lock(&sidecar);
    claim_of(dir.path(), "7", 2)
        .deliver(&source, &mut Vec::new(), &mut Accept)
        .expect("second attempt");
    assert_eq!(
        std::fs::read(&temp).expect("a live attempt's temp is kept"),
        b"half a copy"
    );
    kill_holder(holder, &sidecar);
    let mut log = Vec::new();
    claim_of(dir.path(), "7", 3)
        .deliver(&source, &mut log, &mut Accept)
        .expect("third attempt");
    assert!(
        String::from_utf8(log)
            .expect("utf-8")
            .contains("left by a killed attempt of this job")
    );
    let names: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        ["out.mov"],
        "the temp file and its sidecar are removed"
    );
    // A sidecar alone (its attempt was killed between the two removals) goes too.
    std::fs::write(&sidecar, b"").expect("sidecar");
    claim_of(dir.path(), "7", 4)
        .deliver(&source, &mut Vec::new(), &mut Accept)
        .expect("fourth attempt");
    assert!(!sidecar.exists(), "an abandoned sidecar is removed");
}

#[test]
fn issue_19_two_claims_of_one_job_copy_at_once_each_into_its_own_temp() {
    let dir = tempfile::tempdir().expect("dir");
    let source = dir.path().join("in.mov");
    let data: Vec<u8> = (0..(BLOCK + 4321)).map(|i| (i % 241) as u8).collect();
    std::fs::write(&source, &data).expect("source");
    // The old claim's attempt (a network partition hid it from the store) and the new one.
    let (old, new) = (claim_of(dir.path(), "7", 1), claim_of(dir.path(), "7", 2));
    let (mut old_gate, old_at_gate, old_go) = gate();
    let (mut new_gate, new_at_gate, new_go) = gate();
    let wait = Duration::from_secs(60);
    std::thread::scope(|scope| {
        let old_run = scope.spawn(|| old.deliver(&source, &mut Vec::new(), &mut old_gate));
        old_at_gate
            .recv_timeout(wait)
            .expect("the old attempt verified its copy");
        let new_run = scope.spawn(|| new.deliver(&source, &mut Vec::new(), &mut new_gate));
        new_at_gate
            .recv_timeout(wait)
            .expect("the new attempt verified its copy");
        // Both copies are verified and waiting for their rename, each whole in its own file,
        // each marked live by the lock on its sidecar, none on the file the copy reads back.
        for token in [1, 2] {
            let temp = temp_of(dir.path(), "7", token);
            assert_eq!(std::fs::read(&temp).expect("temp"), data);
            assert!(is_locked(&sidecar_of(&temp)), "the sidecar is locked");
            assert!(!is_locked(&temp), "the temp file itself carries no lock");
        }
        new_go.send(()).expect("go");
        new_run
            .join()
            .expect("thread")
            .expect("the new attempt delivered");
        assert_eq!(
            std::fs::read(temp_of(dir.path(), "7", 1)).expect("the old attempt's temp is intact"),
            data
        );
        old_go.send(()).expect("go");
        old_run
            .join()
            .expect("thread")
            .expect("the old attempt delivered");
    });
    assert_eq!(
        std::fs::read(dir.path().join("out/out.mov")).expect("copy"),
        data
    );
    let names: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["out.mov"], "no temp file left");
}

#[test]
fn issue_19_a_killed_attempts_temp_is_removed_by_the_next_and_a_live_ones_is_kept() {
    use nix::fcntl::{Flock, FlockArg};
    let dir = tempfile::tempdir().expect("dir");
    let source = dir.path().join("in.mov");
    std::fs::write(&source, b"media").expect("source");
    std::fs::create_dir_all(dir.path().join("out")).expect("folder");
    let leftover = temp_of(dir.path(), "7", 1);
    std::fs::write(&leftover, b"half a copy").expect("leftover");
    let other_job = temp_of(dir.path(), "70", 1);
    std::fs::write(&other_job, b"another job's").expect("other job");
    // The first attempt, alive: a real process holding the temp file's lock.
    let mut holder = std::process::Command::new("flock")
        .arg(&leftover)
        .args(["sleep", "600"])
        .process_group(0)
        .spawn()
        .expect("flock(1) from util-linux");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let file = File::open(&leftover).expect("open");
        if Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "flock(1) never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut log = Vec::new();
    claim_of(dir.path(), "7", 2)
        .deliver(&source, &mut log, &mut Accept)
        .expect("second attempt");
    assert_eq!(
        std::fs::read(&leftover).expect("a live attempt's temp is kept"),
        b"half a copy"
    );
    // The first attempt is killed; the third finds its temp unheld and removes it.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(holder.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    holder.wait().expect("reaped");
    // Its `sleep` held the lock too, and lets go of it as it exits.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Flock::lock(
        File::open(&leftover).expect("open"),
        FlockArg::LockExclusiveNonblock,
    )
    .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the killed attempt's lock never went"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut log = Vec::new();
    claim_of(dir.path(), "7", 3)
        .deliver(&source, &mut log, &mut Accept)
        .expect("third attempt");
    assert!(!leftover.exists(), "the killed attempt's temp is removed");
    assert!(other_job.exists(), "another job's temp is not ours");
    let log = String::from_utf8(log).expect("utf-8");
    assert!(
        log.contains("left by a killed attempt of this job"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("out/out.mov")).expect("copy"),
        b"media"
    );
}

#[test]
fn issue_19_a_sweep_never_removes_a_temp_file_its_claim_makes_again_meanwhile() {
    use nix::fcntl::{Flock, FlockArg};
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out");
    let handle = DirHandle::open_checked(dir.path(), Path::new("out"), &[dir.path().to_path_buf()])
        .expect("folder");
    let temp = temp_of(dir.path(), "7", 1);
    let name = temp.file_name().expect("name").to_os_string();
    std::fs::write(&temp, b"a killed attempt's").expect("leftover");
    // A sweep by another claim has found the leftover unheld and holds its claim's lock, about
    // to unlink it.
    let sidecar = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(sidecar_of(&temp))
        .expect("sidecar");
    let sweep = Flock::lock(sidecar, FlockArg::LockExclusiveNonblock).expect("the sweep's lock");
    std::thread::scope(|scope| {
        let (made, made_rx) = std::sync::mpsc::channel();
        // Meanwhile the same claim starts over and makes its temp file again.
        let (handle, name) = (&handle, &name);
        let again = scope.spawn(move || {
            let temp = TempFile::create(handle, name);
            let _ = made.send(());
            temp.inspect(|temp| {
                temp.file().write_all_at(b"new", 0).expect("write");
            })
        });
        // Given every chance to make it before the sweep's unlink, it does not.
        assert!(
            made_rx.recv_timeout(Duration::from_millis(500)).is_err(),
            "the claim made its temp file while a sweep held its lock"
        );
        // The sweep unlinks what it checked, then lets go.
        std::fs::remove_file(&temp).expect("the sweep's unlink");
        std::fs::remove_file(sidecar_of(&temp)).expect("the sweep's unlink of the sidecar");
        drop(sweep);
        let made = again
            .join()
            .expect("thread")
            .expect("the claim's temp file");
        assert_eq!(std::fs::read(&temp).expect("its temp file"), b"new");
        assert!(is_locked(&sidecar_of(&temp)), "held again, by the claim");
        drop(made);
    });
    let names: Vec<_> = std::fs::read_dir(&out)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, [name], "the sidecar goes with the attempt");
}
