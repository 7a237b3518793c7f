//! What inotify cannot cover, covered another way and said so: watches running out while
//! running, file systems mounted and unmounted under a root, folders deeper than the kernel's
//! path limit. Real daemon, real kernel limits, real mounts: these tests need root (and FUSE),
//! and fail without them unless `SHOTROUTER_ALLOW_SKIP=1` (see `helpers::require`).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};

use crate::daemon::{Daemon, argvdump, counts, records};
use crate::env::{Env, wait_until};
use crate::helpers::passes::{METRICS_ARGS, passes, wait_for_passes, wait_idle};
use crate::helpers::require::{AS_ROOT, cannot_run};

const LIMIT: &str = "/proc/sys/fs/inotify/max_user_watches";

fn rules(env: &Env) -> String {
    format!(
        "version: 1\nwatch: [shots]\njobs: 2\nrules:\n  - name: record\n    match: \"**/*.dat\"\n    run: [{}, {}, \"{{rel}}\"]\n",
        argvdump().display(),
        env.path("dump.log").display()
    )
}

/// Waits until `n` distinct files ran, then checks none ran twice: a duplicate would come from
/// a later look at the folders, so the daemon (started with [`METRICS_ARGS`]) must first make
/// `polls` poll passes (where some folders are polled) and then be idle.
fn wait_for_files(env: &Env, n: usize, polls: u64, limit: Duration) {
    let log = env.path("dump.log");
    wait_until(&format!("{n} files to run"), limit, || {
        counts(&log).len() >= n
    });
    if polls > 0 {
        wait_for_passes(env, passes(env), polls, limit);
    }
    wait_idle(env, || records(&log).len(), limit);
    let counts = counts(&log);
    assert_eq!(counts.len(), n, "every file ran");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "no file twice: {twice:?}");
}

/// Restores the watch limit when the test ends, however it ends.
struct LimitGuard(String);

impl Drop for LimitGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(LIMIT, &self.0);
    }
}

/// inotify watches in use by every process this test can see.
fn watches_in_use() -> usize {
    let mut used = 0;
    for proc in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        for fd in std::fs::read_dir(proc.path().join("fdinfo"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(info) = std::fs::read_to_string(fd.path()) {
                used += info
                    .lines()
                    .filter(|l| l.starts_with("inotify wd:"))
                    .count();
            }
        }
    }
    used
}

#[test]
fn watches_running_out_while_running_are_covered_by_polling_and_reattached() {
    let _alone = crate::daemon::INOTIFY_LIMITS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Ok(original) = std::fs::read_to_string(LIMIT) else {
        return cannot_run(&format!("cannot read `{LIMIT}`"), "run on Linux with /proc");
    };
    let env = Env::new();
    env.write("rules.yaml", rules(&env));
    std::fs::create_dir(env.path("shots")).expect("root");
    let daemon = Daemon::start_holding_limits(&env, METRICS_ARGS, &[]);
    let _restore = LimitGuard(original.trim().to_string());
    // Room for 3 of the 10 new folders.
    let lowered = (watches_in_use() + 3).to_string();
    if let Err(e) = std::fs::write(LIMIT, &lowered) {
        return cannot_run(&format!("cannot lower `{LIMIT}`: {e}"), AS_ROOT);
    }
    for d in 0..10 {
        let dir = env.path(format!("shots/d{d}"));
        std::fs::create_dir(&dir).expect("mkdir");
        for f in 0..10 {
            std::fs::write(dir.join(format!("f{f}.dat")), b"x").expect("write");
        }
    }
    // Two covering polls after the last file: the folders without watches are listed again
    // and must not report their files a second time.
    wait_for_files(&env, 100, 2, Duration::from_secs(60));
    let log = daemon.log_text();
    assert!(log.contains("degraded"), "{log}");
    assert!(log.contains("fs.inotify.max_user_watches"), "{log}");

    std::fs::write(LIMIT, original.trim()).expect("restore the limit");
    wait_until(
        "the watches to be re-attached",
        Duration::from_secs(40),
        || daemon.log_text().contains("no longer degraded"),
    );
    for d in 0..10 {
        std::fs::write(env.path(format!("shots/d{d}/g.dat")), b"y").expect("write");
    }
    wait_for_files(&env, 110, 0, Duration::from_secs(30));
    assert_eq!(daemon.stop(), Some(0));
}

/// A tmpfs mounted at a path, unmounted when dropped (panics included).
struct Tmpfs<'a>(&'a Path);

impl Tmpfs<'_> {
    fn mount(at: &Path) -> Result<Tmpfs<'_>, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(err.lines().next().unwrap_or("").to_string());
        }
        Ok(Tmpfs(at))
    }

    fn unmount(self) {
        let status = Command::new("umount")
            .arg(self.0)
            .status()
            .expect("umount runs");
        assert!(status.success(), "umount {}", self.0.display());
        std::mem::forget(self);
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

#[test]
fn a_file_system_mounted_under_a_root_after_start_is_watched_and_followed_through_unmounts() {
    let env = Env::new();
    env.write("rules.yaml", rules(&env));
    let point = env.path("shots/mnt");
    std::fs::create_dir_all(&point).expect("mount point");
    let daemon = Daemon::start(&env, METRICS_ARGS, &[]);
    let tmpfs = match Tmpfs::mount(&point) {
        Ok(tmpfs) => tmpfs,
        Err(reason) => {
            return cannot_run(&format!("cannot mount a tmpfs: {reason}"), AS_ROOT);
        }
    };
    wait_until("the mount's line", Duration::from_secs(10), || {
        daemon.log_text().contains("watch mount")
    });
    for i in 0..3 {
        std::fs::write(point.join(format!("a{i}.dat")), b"x").expect("write");
    }
    wait_for_files(&env, 3, 0, Duration::from_secs(30));

    tmpfs.unmount();
    std::fs::write(point.join("covered.dat"), b"x").expect("write");
    wait_for_files(&env, 4, 0, Duration::from_secs(30));

    let _tmpfs = Tmpfs::mount(&point).expect("mount again");
    wait_until("the mount's third line", Duration::from_secs(10), || {
        daemon.log_text().matches("watch mount").count() >= 3
    });
    std::fs::write(point.join("again.dat"), b"x").expect("write");
    wait_for_files(&env, 5, 0, Duration::from_secs(30));
    let counts = counts(&env.path("dump.log"));
    assert!(
        counts.contains_key(b"mnt/again.dat".as_slice()),
        "{counts:?}"
    );
}

#[test]
fn a_fuse_file_system_mounted_under_a_root_after_start_is_polled() {
    let env = Env::new();
    env.write("rules.yaml", rules(&env));
    let point = env.path("shots/share");
    std::fs::create_dir_all(&point).expect("mount point");
    let daemon = Daemon::start(&env, METRICS_ARGS, &[]);
    let Some(fuse) = crate::poll::Fuse::mount_at(&env, point) else {
        return;
    };
    wait_until("the mount's line", Duration::from_secs(10), || {
        let log = daemon.log_text();
        log.contains("watch mount") && log.contains("source=poll")
    });
    // Written through the backing folder, as another machine writes to a share: the mount's
    // inotify hears nothing of it.
    for rel in ["a.dat", "sh010/b.dat", "sh010/deeper/c.dat"] {
        let path = fuse.remote(rel);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
        std::fs::write(path, b"x").expect("write");
    }
    // The mount is polled: two more passes over it must not run anything again.
    wait_for_files(&env, 3, 2, Duration::from_secs(30));
    let counts = counts(&env.path("dump.log"));
    assert!(
        counts.contains_key(b"share/sh010/deeper/c.dat".as_slice()),
        "{counts:?}"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_folder_deeper_than_the_path_limit_is_reported_and_the_rest_still_runs() {
    let env = Env::new();
    env.write("rules.yaml", rules(&env));
    std::fs::create_dir(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, METRICS_ARGS, &[]);
    // 25 folders of 200 bytes: past 4,096 bytes, made one relative step at a time.
    let name = "d".repeat(200);
    let mut dir: OwnedFd = openat(
        nix::fcntl::AT_FDCWD,
        &env.path("shots"),
        OFlag::O_DIRECTORY | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .expect("open the root");
    for _ in 0..25 {
        mkdirat(&dir, name.as_str(), Mode::from_bits_truncate(0o755)).expect("mkdirat");
        dir = openat(
            &dir,
            name.as_str(),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .expect("openat");
    }
    let file = openat(
        &dir,
        "deep.dat",
        OFlag::O_CREAT | OFlag::O_WRONLY,
        Mode::from_bits_truncate(0o644),
    )
    .expect("create a file down there");
    drop(file);
    wait_until("the long-path report", Duration::from_secs(20), || {
        let log = daemon.log_text();
        log.contains("degraded") && log.contains("path limit")
    });
    env.write("shots/ok.dat", "x");
    wait_for_files(&env, 1, 0, Duration::from_secs(30));
    assert!(counts(&env.path("dump.log")).contains_key(b"ok.dat".as_slice()));

    // Shortened (here: removed), the report ends.
    let status = Command::new("rm")
        .arg("-rf")
        .arg(env.path("shots").join(&name))
        .status()
        .expect("rm runs");
    assert!(status.success());
    wait_until("the report to end", Duration::from_secs(20), || {
        daemon.log_text().contains("no longer degraded")
    });
    assert_eq!(daemon.stop(), Some(0));
}
