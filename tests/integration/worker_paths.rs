//! Where a worker finds the watcher's folders (issue 19), with real processes: a worker on the
//! watcher's machine uses an empty output folder at the same path; one whose mount namespace
//! lacks the watcher's mount declines, even over a stale folder; and `shotrouter job` shows the
//! argv a worker ran with `--map` beside the planned one.

use std::path::Path;
use std::time::Duration;

use crate::cluster::{BindMount, Worker, jobs, sqlite_store, write_rules};
use crate::daemon::Daemon;
use crate::deliveries::Tmpfs;
use crate::env::{Env, stderr, wait_until};
use crate::helpers::require::require_program;
use crate::http_api::{get, port_in};
use crate::poll::Fuse;

/// A rules file whose one rule copies each `.dat` into `outputs:` folder `san`, outside the
/// watch root.
fn deliver_into(env: &Env, san: &Path) {
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\noutputs: [\"{0}\"]\nrules:\n  - name: deliver\n    match: \"**/*.dat\"\n    output: \"{0}/{{stem}}.out\"\n    steps: [[cp, \"{{path}}\", \"{{out}}\"]]\n",
            san.display()
        ),
    );
}

fn done(env: &Env) -> usize {
    jobs(env, &[])
        .iter()
        .filter(|r| r["status"] == "done")
        .count()
}

#[test]
fn issue_19_a_worker_on_the_watchers_machine_delivers_into_an_empty_output_folder() {
    let env = Env::new();
    // A new show's delivery folder: empty, outside the watch root, its name with a space.
    let san = env.path("san delivery");
    std::fs::create_dir_all(&san).expect("san");
    deliver_into(&env, &san);
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    let worker = Worker::start(&env, &sqlite_store(&env), "w1", &["--jobs", "2"]);
    for i in 0..4 {
        env.write(format!("shots/sh010/a{i}.dat"), format!("a{i}"));
    }
    wait_until("4 jobs done", Duration::from_secs(30), || done(&env) == 4);
    for i in 0..4 {
        assert_eq!(
            std::fs::read(san.join(format!("a{i}.out"))).expect("delivered"),
            format!("a{i}").as_bytes()
        );
    }
    let log = worker.log_text();
    assert!(!log.contains("declined"), "nothing declined: {log}");
    assert_eq!(worker.stop(), Some(0));
}

#[test]
fn issue_19_a_worker_without_the_watchers_mount_declines_even_over_a_stale_folder() {
    let env = Env::new();
    let san = env.path("san");
    // What the bare mount point holds on the local disk (a stale copy): not empty, so only
    // the mount facts tell it is not the watcher's file system.
    env.write("san/stale.txt", "left on the local disk");
    deliver_into(&env, &san);
    let tmpfs = Tmpfs::mount(&san, "4m");
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    // The worker in a mount namespace of its own, where the delivery volume is not mounted.
    if !require_program("unshare", "util-linux") {
        return;
    }
    let san_text = san.display().to_string();
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "umount \"$0\" && exec \"$@\"",
        san_text.as_str(),
    ];
    let worker = Worker::start_under(&env, &wrapper, &sqlite_store(&env), "farm", &[]);
    env.write("shots/sh010/a.dat", "a");
    wait_until(
        "the worker to decline the job",
        Duration::from_secs(30),
        || worker.log_text().contains("declined"),
    );
    assert_eq!(worker.stop(), Some(0));
    let row = &jobs(&env, &[])[0];
    assert_eq!(
        (row["status"].as_str(), row["attempts"].as_u64()),
        (Some("queued"), Some(0)),
        "{row}"
    );
    let result = row["result"].as_str().unwrap_or_default();
    assert!(
        result.contains(&format!(
            "`{san_text}` is on tmpfs `tmpfs` mounted at `{san_text}` on the watcher"
        )) && result.contains("that file system is not mounted here"),
        "{result}"
    );
    drop(tmpfs);
    let bare: Vec<_> = std::fs::read_dir(&san)
        .expect("bare folder")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(bare, ["stale.txt"], "nothing was written to the local disk");
}

#[test]
fn issue_19_job_shows_the_argv_a_mapped_worker_ran_beside_the_planned_one() {
    let env = Env::new();
    write_rules(&env, 0);
    env.write("token", "s3cret-token\n");
    let watcher = Daemon::start(
        &env,
        &[
            "--no-run",
            "--http",
            "127.0.0.1:0",
            "--http-token-file",
            "token",
        ],
        &[],
    );
    let port = port_in(&watcher.log_text());
    let _farm = BindMount::new(&env.path("shots"), &env.path("farm/shots"));
    let map = format!("shots={}", env.path("farm/shots").display());
    let worker = Worker::start(&env, &sqlite_store(&env), "a", &["--map", &map]);
    env.write("shots/sh010/a b.dat", "x");
    wait_until("the job done", Duration::from_secs(30), || done(&env) == 1);
    assert_eq!(worker.stop(), Some(0));
    let id = jobs(&env, &[])[0]["id"].as_i64().expect("id").to_string();
    let planned = env.path("shots/sh010/a b.dat").display().to_string();
    let ran = env.path("farm/shots/sh010/a b.dat").display().to_string();

    let out = env.run(&["job", &id, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(job["steps"][1][1], planned.as_str(), "{job}");
    assert_eq!(job["ran"]["node"], "a", "{job}");
    assert_eq!(job["ran"]["steps"][1][1], ran.as_str(), "{job}");
    assert_eq!(job["ran"]["steps"][1][0], "cp", "{job}");

    let reply = get(port, &format!("/api/v1/jobs/{id}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["ran"], job["ran"]);

    let out = env.run(&["job", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ran on    node a, its paths mapped"),
        "{text}"
    );
    assert!(
        text.contains(&format!("step 2    planned cp '{planned}'")),
        "{text}"
    );
    assert!(
        text.contains(&format!("          ran     cp '{ran}'")),
        "{text}"
    );
}

/// The worker declined the one job and left it queued, saying `why` of `folder`; nothing was
/// written to `stray` (where the worker's path would have led).
fn declined(env: &Env, worker: Worker, folder: &Path, why: &str, stray: &Path) {
    env.write("shots/sh010/a.dat", "a");
    wait_until(
        "the worker to decline the job",
        Duration::from_secs(30),
        || worker.log_text().contains("declined"),
    );
    assert_eq!(worker.stop(), Some(0));
    let row = &jobs(env, &[])[0];
    assert_eq!(
        (row["status"].as_str(), row["attempts"].as_u64()),
        (Some("queued"), Some(0)),
        "{row}"
    );
    let result = row["result"].as_str().unwrap_or_default();
    assert!(
        result.contains(&format!("`{}` is on ", folder.display()))
            && result.contains(why)
            && result.contains("give --map"),
        "{result}"
    );
    let written: Vec<_> = std::fs::read_dir(stray)
        .expect("stray folder")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(written.is_empty(), "nothing written there: {written:?}");
}

#[test]
fn a_worker_on_the_watchers_machine_delivers_into_a_folder_not_made_yet() {
    let env = Env::new();
    // A new show's delivery folder, not made yet: the job makes it.
    let san = env.path("deliveries/new show");
    deliver_into(&env, &san);
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    let worker = Worker::start(&env, &sqlite_store(&env), "w1", &[]);
    env.write("shots/sh010/a.dat", "a");
    wait_until("the job done", Duration::from_secs(30), || done(&env) == 1);
    assert_eq!(std::fs::read(san.join("a.out")).expect("delivered"), b"a");
    let log = worker.log_text();
    assert!(!log.contains("declined"), "nothing declined: {log}");
    assert_eq!(worker.stop(), Some(0));
}

#[test]
fn a_worker_with_another_folder_of_the_same_disk_mounted_there_declines() {
    let env = Env::new();
    // The watcher's delivery folder is folder `a` of this disk, bind-mounted (a container's
    // volume); the worker's, at the same path, is folder `b` of the same disk.
    let san = env.path("san");
    std::fs::create_dir_all(env.path("a")).expect("a");
    std::fs::create_dir_all(env.path("b")).expect("b");
    deliver_into(&env, &san);
    let _volume = BindMount::new(&env.path("a"), &san);
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    if !require_program("unshare", "util-linux") {
        return;
    }
    let san_text = san.display().to_string();
    let b_text = env.path("b").display().to_string();
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "umount \"$0\" && mount --bind \"$1\" \"$0\" && shift && exec \"$@\"",
        san_text.as_str(),
        b_text.as_str(),
    ];
    let worker = Worker::start_under(&env, &wrapper, &sqlite_store(&env), "farm", &[]);
    declined(
        &env,
        worker,
        &san,
        "another folder of that file system is mounted here",
        &env.path("b"),
    );
}

/// A process this test started, sent `signal` by its id when dropped.
struct Started(Option<i32>, nix::sys::signal::Signal);

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), self.1);
        }
    }
}

#[test]
fn a_worker_whose_share_holds_the_folder_higher_up_declines() {
    let env = Env::new();
    // The watcher delivers into a volume of its own disk mounted at `net/san`.
    let san = env.path("net/san");
    std::fs::create_dir_all(&san).expect("san");
    deliver_into(&env, &san);
    let _tmpfs = Tmpfs::mount(&san, "4m");
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    if !require_program("unshare", "util-linux")
        || !require_program("bindfs", "bindfs")
        || !require_program("mountpoint", "util-linux")
    {
        return;
    }
    // The worker has no such volume, but a share mounted at `net` (a diskless node's root,
    // `/net`), on which `san` is a bare empty folder.
    let backing = env.path("backing");
    std::fs::create_dir_all(backing.join("san")).expect("backing");
    let pid_file = env.path("bindfs.pid");
    let backing_text = backing.display().to_string();
    let net_text = env.path("net").display().to_string();
    let pid_text = pid_file.display().to_string();
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        // An empty tmpfs first hides the watcher's volume and lets FUSE mount there.
        "mount -t tmpfs tmpfs \"$1\" || exit 1
        bindfs -f \"$0\" \"$1\" & echo $! > \"$2\"
        for i in $(seq 200); do mountpoint -q \"$1\" && break; sleep 0.05; done
        mountpoint -q \"$1\" || exit 1
        shift 2 && exec \"$@\"",
        backing_text.as_str(),
        net_text.as_str(),
        pid_text.as_str(),
    ];
    let worker = Worker::start_under(&env, &wrapper, &sqlite_store(&env), "farm", &[]);
    let _bindfs = Started(
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|pid| pid.trim().parse().ok()),
        nix::sys::signal::Signal::SIGTERM,
    );
    declined(
        &env,
        worker,
        &san,
        "at depth 1 under it here, 0 on the watcher",
        &backing.join("san"),
    );
}

#[test]
fn a_hung_share_under_an_output_folder_does_not_stop_the_watcher_queueing_jobs() {
    let env = Env::new();
    let san = env.path("san");
    let Some(fuse) = Fuse::mount_at(&env, san.clone()) else {
        return;
    };
    deliver_into(&env, &san);
    let _watcher = Daemon::start(&env, &["--no-run"], &[]);
    env.write("shots/sh010/a0.dat", "a");
    wait_until("the first job queued", Duration::from_secs(30), || {
        jobs(&env, &[]).len() == 1
    });
    // The share's server stops answering, as a hard-mounted NFS share's does: every access
    // to it hangs until the server is back.
    let pid = fuse.pid().expect("bindfs runs") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .expect("stop bindfs");
    let _resume = Started(Some(pid), nix::sys::signal::Signal::SIGCONT);
    // Files keep coming for longer than the watcher reuses its mount facts (5 s): each is
    // queued, however long reading the mounts again takes.
    let began = std::time::Instant::now();
    let mut queued = 1;
    while began.elapsed() < Duration::from_secs(8) {
        env.write(format!("shots/sh010/a{queued}.dat"), "a");
        queued += 1;
        wait_until(
            &format!("job {queued} queued while the share hangs"),
            Duration::from_secs(10),
            || jobs(&env, &[]).len() == queued,
        );
        // Paced, not waited on: the condition is the clock passing the facts' freshness.
        std::thread::sleep(Duration::from_millis(500));
    }
}
