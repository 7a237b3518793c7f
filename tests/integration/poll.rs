//! Network storage, for real: a FUSE mount (`bindfs`) over a backing folder, written to through
//! the backing folder as a remote NFS client writes to a share, so the mount's inotify hears
//! nothing. `source: auto` must pick polling there and route every file exactly once.
//!
//! Needs `/dev/fuse`, `bindfs` and `fusermount3` (`scripts/deps test` installs them); where a
//! FUSE file system cannot be mounted, each test fails saying why (skips only with
//! `SHOTROUTER_ALLOW_SKIP=1`, see `helpers::require`).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::daemon::{Daemon, argvdump, counts, records};
use crate::env::{Env, wait_until};
use crate::helpers::passes::{METRICS_ARGS, passes, wait_for_passes};
use crate::helpers::require::{DEPS, cannot_run, require_program};

/// A bindfs mount of `backing` at `mount`, unmounted when dropped (panics included). bindfs
/// runs in the foreground as the test's child, so a test can kill it like a crashed server.
pub struct Fuse {
    backing: PathBuf,
    mount: PathBuf,
    bindfs: std::cell::RefCell<Option<Child>>,
}

impl Fuse {
    /// Mounts `env/backing` at `env/mnt`; where FUSE cannot be mounted, fails the test, or
    /// `None` when `SHOTROUTER_ALLOW_SKIP=1` lets it skip.
    fn mount(env: &Env) -> Option<Fuse> {
        Fuse::mount_at(env, env.path("mnt"))
    }

    /// Mounts `env/backing` at `mount`; where FUSE cannot be mounted, fails the test, or
    /// `None` when `SHOTROUTER_ALLOW_SKIP=1` lets it skip.
    pub fn mount_at(env: &Env, mount: PathBuf) -> Option<Fuse> {
        let fuse = Fuse {
            backing: env.path("backing"),
            mount,
            bindfs: std::cell::RefCell::new(None),
        };
        std::fs::create_dir_all(&fuse.backing).expect("backing folder");
        std::fs::create_dir_all(&fuse.mount).expect("mount point");
        if !Path::new("/dev/fuse").exists() {
            cannot_run(
                "no /dev/fuse here, so no FUSE file system can be mounted",
                "run on a machine with FUSE (a container needs `--device /dev/fuse --cap-add SYS_ADMIN`)",
            );
            return None;
        }
        if !require_program("bindfs", "bindfs") || !require_program("fusermount3", "fuse3") {
            return None;
        }
        match fuse.attach() {
            Ok(()) => Some(fuse),
            Err(reason) => {
                cannot_run(&format!("cannot mount a FUSE file system: {reason}"), DEPS);
                None
            }
        }
    }

    /// (Re)mounts the backing folder and waits until the mount is there.
    fn attach(&self) -> Result<(), String> {
        let mut child = Command::new("bindfs")
            .arg("-f")
            .arg(&self.backing)
            .arg(&self.mount)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!("bindfs: {e} (install `bindfs` and `fuse3`: scripts/deps test)")
            })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.mounted() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                return Err(format!("bindfs exited ({status}): {}", err.trim()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("bindfs did not mount within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        *self.bindfs.borrow_mut() = Some(child);
        Ok(())
    }

    /// Whether the mount point is a mount now (its device differs from its parent's).
    fn mounted(&self) -> bool {
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
        let parent = self.mount.parent().expect("has a parent");
        matches!((dev(&self.mount), dev(parent)), (Some(a), Some(b)) if a != b)
    }

    /// Unmounts it cleanly: the mount point is left as an empty local folder.
    fn detach(&self) {
        let status = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mount)
            .status()
            .expect("fusermount3 runs");
        assert!(status.success(), "unmounting {}", self.mount.display());
        if let Some(mut child) = self.bindfs.borrow_mut().take() {
            let _ = child.wait();
        }
    }

    /// Kills bindfs, as a file server crashes: the mount answers "transport endpoint is not
    /// connected" until it is unmounted.
    fn crash(&self) {
        if let Some(mut child) = self.bindfs.borrow_mut().take() {
            child.kill().expect("kill bindfs");
            let _ = child.wait();
        }
    }

    /// The bindfs process (to stop it, as a file server stops answering).
    pub fn pid(&self) -> Option<u32> {
        self.bindfs.borrow().as_ref().map(Child::id)
    }

    /// A path in the backing folder (where the "remote" writers write).
    pub fn remote(&self, rel: &str) -> PathBuf {
        self.backing.join(rel)
    }
}

impl Drop for Fuse {
    fn drop(&mut self) {
        // Lazily, so a test that failed with a file open still leaves no mount behind.
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&self.mount)
            .stderr(Stdio::null())
            .status();
        if let Some(mut child) = self.bindfs.borrow_mut().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn write(path: &Path, contents: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("has a folder")).expect("mkdir");
    std::fs::write(path, contents).expect("write");
}

/// Sets a file's mtime `days` back, as `cp -p` of an old plate leaves it.
fn age(path: &Path, days: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(86_400 * days)))
        .expect("set mtime");
}

/// Writes a file finished long ago (a file written just before start-up is watched until it
/// holds still, and then processed, not recorded as the first start's baseline).
fn write_old(path: &Path, contents: &[u8]) {
    write(path, contents);
    age(path, 30);
}

/// Rules over the FUSE mount (as root `shots`) and a local folder (`local`): every `*.exr`
/// is recorded and copied to `copies/`, and every deleted one recorded in `deletes.log`.
fn rules(env: &Env, poll: &str) -> String {
    std::fs::create_dir_all(env.path("copies")).expect("copies");
    std::fs::create_dir_all(env.path("local")).expect("local root");
    format!(
        r#"version: 1
watch:
  - path: mnt
    name: shots{poll}
  - path: local
rules:
  - name: record
    match: "**/*.exr"
    steps:
      - [{dump}, {log}, "{{rel}}"]
      - [cp, "{{path}}", "{copies}/{{name}}"]
  - name: gone
    match: "**/*.exr"
    on: [delete]
    run: [{dump}, {deletes}, "{{rel}}"]
"#,
        dump = argvdump().display(),
        log = env.path("dump.log").display(),
        copies = env.path("copies").display(),
        deletes = env.path("deletes.log").display(),
    )
}

/// Short `poll:` settings, so the tests that are not about the defaults run quickly.
const FAST: &str = "\n    poll: {hot: 200ms, cold: 1s, quiet: 1s}";

fn count_of(log: &Path, rel: &str) -> usize {
    counts(log).get(rel.as_bytes()).copied().unwrap_or(0)
}

#[test]
fn auto_polls_a_fuse_mount_with_default_settings_and_routes_every_file_once() {
    let env = Env::new();
    let Some(fuse) = Fuse::mount(&env) else {
        return;
    };
    write_old(&fuse.remote("sh010/old.exr"), b"old");
    write_old(&fuse.remote("sh010/keep.exr"), b"keep");
    env.write("rules.yaml", rules(&env, ""));
    let check = crate::env::stdout(&env.run(&["check", "rules.yaml"]));
    assert!(check.contains(" (fs=fuse source=poll (auto))\n"), "{check}");
    let daemon = Daemon::start(&env, &[], &[]);

    // One start-up line per root names its file system and the source `auto` chose.
    let log = daemon.log_text();
    let line = |root: &str| {
        log.lines()
            .find(|l| l.contains("watch root") && l.contains(&format!("root={root} ")))
            .unwrap_or_else(|| panic!("no start line for {root}:\n{log}"))
            .to_string()
    };
    let shots = line("shots");
    assert!(
        shots.contains("fs=fuse") && shots.contains("source=poll"),
        "{shots}"
    );
    assert!(shots.contains("chosen=auto"), "{shots}");
    let local = line("local");
    assert!(
        local.contains("source=inotify") && !local.contains("fs=fuse"),
        "{local}"
    );
    wait_until("the initial scan", Duration::from_secs(20), || {
        daemon.log_text().contains("first start")
    });

    // Written slowly by another process: 10 chunks, one a second.
    let slow = fuse.remote("sh040/slow.exr");
    std::fs::create_dir_all(slow.parent().expect("folder")).expect("mkdir");
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg("for i in 1 2 3 4 5 6 7 8 9 10; do printf '%01000d' 0 >> \"$1\"; sleep 1; done")
        .arg("sh")
        .arg(&slow)
        .spawn()
        .expect("slow writer starts");
    // A new folder, an old quiet one, a rename into place, a copy keeping an old mtime, and
    // a deletion.
    write(&fuse.remote("sh020/comp/a.exr"), b"a");
    write(&fuse.remote("sh010/b.exr"), b"b");
    write(&fuse.remote("sh030/c.exr.tmp"), b"c");
    std::fs::rename(fuse.remote("sh030/c.exr.tmp"), fuse.remote("sh030/c.exr")).expect("mv");
    let plate = env.write("plate.exr", b"plate");
    age(&plate, 400);
    let cp = Command::new("cp")
        .arg("-p")
        .arg(&plate)
        .arg(fuse.remote("sh010/d.exr"))
        .status()
        .expect("cp");
    assert!(cp.success());
    std::fs::remove_file(fuse.remote("sh010/old.exr")).expect("rm");

    // 5 files and 1 deletion; the quiet folder is looked at within 30 s (cold), each file
    // fires 10 s (quiet) after its last change.
    daemon.wait_idle_with(6, Duration::from_secs(70));
    assert!(writer.wait().expect("writer").success());
    let dump = env.path("dump.log");
    for rel in [
        "sh020/comp/a.exr",
        "sh010/b.exr",
        "sh030/c.exr",
        "sh010/d.exr",
        "sh040/slow.exr",
    ] {
        assert_eq!(count_of(&dump, rel), 1, "{rel}: {:?}", records(&dump));
    }
    assert_eq!(records(&dump).len(), 5, "{:?}", records(&dump));
    assert_eq!(
        std::fs::metadata(env.path("copies/slow.exr"))
            .expect("copy")
            .len(),
        10_000,
        "the job saw the whole file"
    );
    assert_eq!(
        records(&env.path("deletes.log")),
        vec![vec![b"sh010/old.exr".to_vec()]]
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_restart_runs_what_arrived_while_down_and_nothing_twice() {
    let env = Env::new();
    let Some(fuse) = Fuse::mount(&env) else {
        return;
    };
    env.write("rules.yaml", rules(&env, FAST));
    let daemon = Daemon::start(&env, &[], &[]);
    write(&fuse.remote("sh010/a.exr"), b"a");
    daemon.wait_idle_with(1, Duration::from_secs(20));
    assert_eq!(daemon.stop(), Some(0));

    write(&fuse.remote("sh010/b.exr"), b"b");
    write(&fuse.remote("sh020/c.exr"), b"c");
    let daemon = Daemon::start(&env, &[], &[]);
    daemon.wait_idle_with(2, Duration::from_secs(20));
    // A later arrival is still seen after the restart.
    write(&fuse.remote("sh010/e.exr"), b"e");
    daemon.wait_idle_with(3, Duration::from_secs(20));
    let dump = env.path("dump.log");
    for rel in ["sh010/a.exr", "sh010/b.exr", "sh020/c.exr", "sh010/e.exr"] {
        assert_eq!(count_of(&dump, rel), 1, "{rel}: {:?}", records(&dump));
    }
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn an_unmounted_or_crashed_share_is_lost_not_deleted_and_diffed_when_it_returns() {
    let env = Env::new();
    let Some(fuse) = Fuse::mount(&env) else {
        return;
    };
    for i in 0..20 {
        write_old(&fuse.remote(&format!("sh010/f{i:02}.exr")), b"x");
    }
    env.write("rules.yaml", rules(&env, FAST));
    let daemon = Daemon::start(&env, METRICS_ARGS, &[]);
    write(&fuse.remote("sh010/new.exr"), b"n");
    daemon.wait_idle_with(1, Duration::from_secs(20));

    // The share goes away under the daemon (the mount point is left bare and empty).
    fuse.detach();
    wait_until(
        "the root to be reported lost",
        Duration::from_secs(20),
        || daemon.log_text().contains("watch root lost"),
    );
    write(&fuse.remote("sh020/while-away.exr"), b"w");
    // Several passes over the bare mount point, which must neither see the file nor take the
    // empty folder for deletions.
    wait_for_passes(&env, passes(&env), 4, Duration::from_secs(20));
    fuse.attach().expect("remount");
    wait_until("the root's return", Duration::from_secs(20), || {
        daemon.log_text().contains("watch root is back")
    });
    daemon.wait_idle_with(2, Duration::from_secs(20));
    let dump = env.path("dump.log");
    assert_eq!(count_of(&dump, "sh020/while-away.exr"), 1);
    assert_eq!(
        records(&dump).len(),
        2,
        "nothing re-run: {:?}",
        records(&dump)
    );

    // The file server crashes: every look fails (ENOTCONN) until it is mounted again.
    fuse.crash();
    wait_until("the crash to be noticed", Duration::from_secs(20), || {
        daemon.log_text().matches("watch root lost").count() == 2
    });
    write(&fuse.remote("sh020/after-crash.exr"), b"c");
    // Passes over the crashed mount (every look fails with ENOTCONN) before it is remounted.
    wait_for_passes(&env, passes(&env), 3, Duration::from_secs(20));
    fuse.detach();
    fuse.attach().expect("remount");
    wait_until("the second return", Duration::from_secs(20), || {
        daemon.log_text().matches("watch root is back").count() == 2
    });
    daemon.wait_idle_with(3, Duration::from_secs(20));
    assert_eq!(count_of(&dump, "sh020/after-crash.exr"), 1);
    assert_eq!(
        records(&dump).len(),
        3,
        "nothing re-run: {:?}",
        records(&dump)
    );
    assert_eq!(
        records(&env.path("deletes.log")),
        Vec::<Vec<Vec<u8>>>::new()
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_folder_replaced_by_another_of_the_same_name_is_routed_anew() {
    let env = Env::new();
    let Some(fuse) = Fuse::mount(&env) else {
        return;
    };
    env.write("rules.yaml", rules(&env, FAST));
    let daemon = Daemon::start(&env, &[], &[]);
    write(&fuse.remote("sh010/a.exr"), b"a");
    write(&fuse.remote("sh010/b.exr"), b"b");
    daemon.wait_idle_with(2, Duration::from_secs(20));

    // A publish replaces the folder: the old one is moved aside, a new one takes its name.
    std::fs::rename(fuse.remote("sh010"), fuse.remote("sh010.v1")).expect("mv aside");
    write(&fuse.remote("sh010.new/a.exr"), b"a, second version");
    std::fs::rename(fuse.remote("sh010.new"), fuse.remote("sh010")).expect("mv into place");
    // The new a.exr runs; the two moved aside are followed (the store moves their records,
    // nothing runs again); sh010/b.exr is deleted (and the old sh010/a.exr, if a pass fell
    // between the two renames and saw no sh010 at all).
    let dump = env.path("dump.log");
    let deletes = env.path("deletes.log");
    let moved = || daemon.log_text().matches("moved: this content").count();
    wait_until(
        "the new folder's job and the moves",
        Duration::from_secs(30),
        || {
            count_of(&dump, "sh010/a.exr") == 2
                && count_of(&deletes, "sh010/b.exr") == 1
                && moved() == 2
        },
    );
    let jobs = records(&dump).len() + records(&deletes).len();
    daemon.wait_idle_with(jobs, Duration::from_secs(30));
    assert_eq!(records(&dump).len(), 3, "{:?}", records(&dump));
    assert_eq!(count_of(&dump, "sh010/b.exr"), 1);
    assert!(count_of(&deletes, "sh010/a.exr") <= 1);
    assert_eq!(count_of(&deletes, "sh010/b.exr"), 1);
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn inotify_forced_on_a_fuse_mount_is_warned_about() {
    let env = Env::new();
    let Some(_fuse) = Fuse::mount(&env) else {
        return;
    };
    env.write(
        "rules.yaml",
        "version: 1\nwatch:\n  - path: mnt\n    name: shots\n    source: inotify\nrules: []\n",
    );
    let out = env.run(&["check", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let text = crate::env::stdout(&out);
    assert!(
        text.contains(" (fs=fuse source=inotify (forced))\n"),
        "{text}"
    );
    assert!(
        text.contains("warning: root shots: ") && text.contains("remote writers will not be seen"),
        "{text}"
    );
}

#[test]
fn notify_routes_a_complete_file_at_once_without_waiting_for_a_pass() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("share/sh010")).expect("root");
    // Passes so rare that only the notice can route the file within the test.
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch:\n  - path: share\n    source: poll\n    poll: {{hot: 1h, cold: 1h, quiet: 1h}}\nrules:\n  - name: record\n    match: \"**/*.mxf\"\n    run: [{}, {}, \"{{rel}}\"]\n",
            argvdump().display(),
            env.path("dump.log").display()
        ),
    );
    let daemon = Daemon::start(&env, &[], &[]);
    let plate = env.write("share/sh010/plate 01.mxf", "plate");
    let out = env.run(&["notify", plate.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::env::stderr(&out));
    assert_eq!(crate::env::stdout(&out), "notified: 1 file\n");
    daemon.wait_idle_with(1, Duration::from_secs(10));
    assert_eq!(count_of(&env.path("dump.log"), "sh010/plate 01.mxf"), 1);
    assert!(
        daemon
            .log_text()
            .contains("notified complete by a producer")
    );
    // A typo or a path outside the roots records nothing and says so.
    let out = env.run(&["notify", "share/sh010/nosuch.mxf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::env::stderr(&out).contains("not a file"));
    let elsewhere = env.write("elsewhere.mxf", "x");
    let out = env.run(&["notify", elsewhere.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::env::stderr(&out).contains("under no watch root"));
    assert_eq!(daemon.stop(), Some(0));
}
