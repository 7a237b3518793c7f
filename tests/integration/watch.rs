//! `shotrouter watch` on real temp trees with real inotify and real processes.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use crate::daemon::{Daemon, argvdump, counts, records};
use crate::env::{Env, wait_until};
use crate::helpers::require::{AS_ROOT, cannot_run};

/// Rules with one rule that records `{rel}` (and any extra templates) for every `*.dat`.
fn recorder_rules(env: &Env, extra_rule_lines: &str) -> String {
    format!(
        "version: 1\nwatch: [shots]\njobs: 2\nrules:\n  - name: record\n    match: \"**/*.dat\"\n    run: [{}, {}, \"{{rel}}\"]\n{extra_rule_lines}",
        argvdump().display(),
        env.path("dump.log").display()
    )
}

fn write_file(path: &Path, contents: &[u8]) {
    std::fs::write(path, contents).expect("write");
}

#[test]
fn burst_of_10000_files_in_100_folders_runs_each_exactly_once() {
    let env = Env::new();
    env.write("rules.yaml", recorder_rules(&env, ""));
    std::fs::create_dir(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    for d in 0..100 {
        let dir = env.path(format!("shots/d{d:03}"));
        std::fs::create_dir(&dir).expect("mkdir");
        for f in 0..100 {
            write_file(&dir.join(format!("f{f:03}.dat")), b"x");
        }
    }
    daemon.wait_idle_with(10_000, Duration::from_secs(180));
    let counts = counts(&env.path("dump.log"));
    assert_eq!(counts.len(), 10_000, "every file dispatched");
    assert!(
        counts.values().all(|&n| n == 1),
        "no file twice: {:?}",
        counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn files_written_right_after_mkdir_p_are_not_missed() {
    let env = Env::new();
    env.write("rules.yaml", recorder_rules(&env, ""));
    std::fs::create_dir(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    for i in 0..500 {
        let dir = env.path(format!("shots/n{i:03}/a/b/c"));
        std::fs::create_dir_all(&dir).expect("mkdir -p");
        write_file(&dir.join("frame.dat"), b"x");
    }
    daemon.wait_idle_with(500, Duration::from_secs(60));
    let counts = counts(&env.path("dump.log"));
    assert_eq!(counts.len(), 500);
    assert!(counts.values().all(|&n| n == 1));
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn write_then_rename_dispatches_only_the_final_name() {
    let env = Env::new();
    env.write("rules.yaml", recorder_rules(&env, ""));
    std::fs::create_dir_all(env.path("shots/sh010")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    write_file(&env.path("shots/sh010/plate.dat.tmp"), b"partial");
    std::fs::rename(
        env.path("shots/sh010/plate.dat.tmp"),
        env.path("shots/sh010/plate.dat"),
    )
    .expect("rename");
    daemon.wait_idle_with(1, Duration::from_secs(20));
    let all = records(&env.path("dump.log"));
    assert_eq!(all, vec![vec![b"sh010/plate.dat".to_vec()]]);
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn reopened_and_appended_file_fires_once_after_settling() {
    let env = Env::new();
    let rules = format!(
        "version: 1\nwatch: [shots]\nrules:\n  - name: copy\n    match: \"**/*.dat\"\n    settle: 400ms\n    output: \"{{dir}}/{{stem}}.copy\"\n    steps: [[{}, {}, \"{{rel}}\"], [cp, \"{{path}}\", \"{{out}}\"]]\n",
        argvdump().display(),
        env.path("dump.log").display()
    );
    env.write("rules.yaml", rules);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    let path = env.path("shots/log.dat");
    write_file(&path, b"first\n");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("reopen");
    file.write_all(b"second\n").expect("append");
    drop(file);
    daemon.wait_idle_with(1, Duration::from_secs(20));
    assert_eq!(
        records(&env.path("dump.log")).len(),
        1,
        "one job for both writes"
    );
    assert_eq!(
        std::fs::read(env.path("shots/log.copy")).expect("published copy"),
        b"first\nsecond\n"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn queue_overflow_loses_nothing_and_repeats_nothing() {
    let env = Env::new();
    env.write("rules.yaml", recorder_rules(&env, ""));
    // The folders exist (and are watched) before the reader pauses, so each file written
    // while it is paused queues events: 20,000 files make 40,000 (create and close-write),
    // more than the kernel queue holds (16,384 by default).
    for d in 0..20 {
        std::fs::create_dir_all(env.path(format!("shots/o{d:02}"))).expect("mkdir");
    }
    let pause = env.path("pause");
    let daemon = Daemon::start(
        &env,
        &[],
        &[("SHOTROUTER_TEST_PAUSE_FILE", pause.to_str().expect("utf-8"))],
    );
    write_file(&pause, b"");
    for d in 0..20 {
        let dir = env.path(format!("shots/o{d:02}"));
        for f in 0..1000 {
            write_file(&dir.join(format!("{f:04}.dat")), b"x");
        }
    }
    std::fs::remove_file(&pause).expect("resume the reader");
    daemon.wait_idle_with(20_000, Duration::from_secs(300));
    let counts = counts(&env.path("dump.log"));
    assert_eq!(counts.len(), 20_000);
    assert!(counts.values().all(|&n| n == 1));
    assert!(
        daemon.log_text().contains("inotify queue overflowed"),
        "the overflow happened and was logged"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn hostile_file_names_reach_the_command_as_one_exact_argument() {
    let env = Env::new();
    let rules = format!(
        "version: 1\nwatch: [shots]\nrules:\n  - name: record\n    match: \"**\"\n    run: [{}, {}, \"{{name}}\", \"{{path}}\"]\n",
        argvdump().display(),
        env.path("dump.log").display()
    );
    env.write("rules.yaml", rules);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    let names: Vec<Vec<u8>> = vec![
        b"with space.dat".to_vec(),
        b"quote's \"double\".dat".to_vec(),
        b"semi;colon.dat".to_vec(),
        b"back`tick`.dat".to_vec(),
        b"$(touch pwned).dat".to_vec(),
        b"new\nline.dat".to_vec(),
        b"-leading-dash.dat".to_vec(),
        b"a:b.tif".to_vec(),
        b"latin1-\xe9t\xe9.dat".to_vec(),
    ];
    for name in &names {
        let path = env.path("shots").join(std::ffi::OsStr::from_bytes(name));
        write_file(&path, b"x");
    }
    daemon.wait_idle_with(names.len(), Duration::from_secs(30));
    let mut got = records(&env.path("dump.log"));
    got.sort();
    let mut want: Vec<Vec<Vec<u8>>> = names
        .iter()
        .map(|n| {
            let mut path = env.path("shots").as_os_str().as_bytes().to_vec();
            path.push(b'/');
            path.extend_from_slice(n);
            vec![n.clone(), path]
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    let pwned = walk_names(env.root())
        .into_iter()
        .filter(|n| n == b"pwned")
        .count();
    assert_eq!(pwned, 0, "no shell ever ran the `$(touch pwned)` in a name");
    assert_eq!(daemon.stop(), Some(0));
}

fn walk_names(dir: &Path) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readdir").flatten() {
        names.push(entry.file_name().as_bytes().to_vec());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            names.extend(walk_names(&entry.path()));
        }
    }
    names
}

#[test]
fn timeout_kills_the_whole_group_even_a_child_ignoring_sigterm() {
    let env = Env::new();
    let script = env.write(
        "stubborn.sh",
        "#!/bin/sh\n( trap '' TERM; exec sleep 1000 ) &\necho $! > \"$1\"\necho $$ >> \"$1\"\ntrap '' TERM\nsleep 1000\n",
    );
    let rules = format!(
        "version: 1\nwatch: [shots]\nrules:\n  - name: hang\n    match: \"**/*.dat\"\n    timeout: 500ms\n    run: [sh, {}, {}]\n",
        script.display(),
        env.path("pids").display()
    );
    env.write("rules.yaml", rules);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    write_file(&env.path("shots/a.dat"), b"x");
    wait_until(
        "the job to time out and be recorded",
        Duration::from_secs(30),
        || daemon.log_text().contains("timed out after 500ms"),
    );
    let pids: Vec<i32> = std::fs::read_to_string(env.path("pids"))
        .expect("the script wrote its pids")
        .lines()
        .map(|l| l.trim().parse().expect("pid"))
        .collect();
    assert_eq!(pids.len(), 2);
    for pid in pids {
        // Not running, and not a zombie either: /proc has no entry left for it.
        wait_until(
            &format!("process {pid} to be gone"),
            Duration::from_secs(10),
            || !Path::new(&format!("/proc/{pid}")).exists(),
        );
    }
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn output_escaping_the_roots_fails_and_writes_nothing_outside() {
    let env = Env::new();
    let rules = "version: 1\nwatch: [shots]\nignore: []\nrules:\n  - name: escape\n    match: \"**/*.mov\"\n    output: \"{root}/{stem}/{stem}/escaped.mov\"\n    run: [cp, \"{path}\", \"{out}\"]\n";
    env.write("rules.yaml", rules);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    // `...mov` has the stem `..`, so the output expands to `{root}/../../escaped.mov`.
    write_file(&env.path("shots/...mov"), b"x");
    wait_until("the job to be refused", Duration::from_secs(20), || {
        daemon.log_text().contains("outside the watch roots")
    });
    assert!(
        !env.root()
            .parent()
            .expect("parent")
            .join("escaped.mov")
            .exists()
    );
    assert!(!env.path("escaped.mov").exists());
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn failing_and_missing_commands_are_retried_and_recorded_and_the_daemon_goes_on() {
    let env = Env::new();
    let rules = format!(
        "version: 1\nwatch: [shots]\nrules:\n  - name: broken\n    match: \"**/*.bad\"\n    retries: 2\n    backoff: 50ms\n    run: [sh, -c, \"echo converter says no >&2; exit 3\"]\n  - name: missing\n    match: \"**/*.bad\"\n    run: [no-such-converter-anywhere]\n  - name: fine\n    match: \"**/*.dat\"\n    run: [{}, {}, \"{{rel}}\"]\n",
        argvdump().display(),
        env.path("dump.log").display()
    );
    env.write("rules.yaml", rules);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    write_file(&env.path("shots/a.bad"), b"x");
    wait_until(
        "three attempts of the failing job",
        Duration::from_secs(20),
        || {
            daemon
                .log_text()
                .lines()
                .filter(|l| l.contains("rule=broken") && l.contains("step 1 exited with status 3"))
                .count()
                == 3
        },
    );
    assert!(
        daemon
            .log_text()
            .contains("cannot run `no-such-converter-anywhere`"),
        "{}",
        daemon.log_text()
    );
    let logs = env.path(".shotrouter/logs/broken");
    let log_text: String = std::fs::read_dir(&logs)
        .expect("job logs")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).expect("log"))
        .collect();
    assert!(
        log_text.contains("converter says no"),
        "the converter's stderr is in the job log"
    );
    assert_eq!(
        log_text.matches("== step 1: exited with status 3").count(),
        3
    );
    write_file(&env.path("shots/b.dat"), b"x");
    daemon.wait_idle_with(1, Duration::from_secs(20));
    assert_eq!(
        records(&env.path("dump.log")).len(),
        1,
        "the daemon still runs jobs"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_rule_never_fires_on_its_own_output_but_chains_to_others() {
    let env = Env::new();
    let rules = format!(
        "version: 1\nwatch: [shots]\nrules:\n  - name: copy\n    match: \"**/*.txt\"\n    output: \"{{dir}}/{{stem}}.copy.txt\"\n    run: [cp, \"{{path}}\", \"{{out}}\"]\n  - name: record\n    match: \"**/*.copy.txt\"\n    run: [{}, {}, \"{{rel}}\"]\n",
        argvdump().display(),
        env.path("dump.log").display()
    );
    env.write("rules.yaml", rules);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    write_file(&env.path("shots/a.txt"), b"hello");
    daemon.wait_idle_with(2, Duration::from_secs(20));
    assert_eq!(
        std::fs::read(env.path("shots/a.copy.txt")).expect("copy"),
        b"hello"
    );
    assert!(
        !env.path("shots/a.copy.copy.txt").exists(),
        "copy did not fire on its own product"
    );
    assert_eq!(
        records(&env.path("dump.log")),
        vec![vec![b"a.copy.txt".to_vec()]],
        "the product chained to `record`"
    );
    let hidden: Vec<_> = std::fs::read_dir(env.path("shots"))
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().as_bytes().starts_with(b"."))
        .collect();
    assert!(hidden.is_empty(), "no temp file left behind");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn broken_rules_edit_keeps_old_rules_and_a_fix_takes_effect() {
    let env = Env::new();
    let dump = env.path("dump.log");
    let rule = |name: &str, ext: &str| {
        format!(
            "version: 1\nwatch: [shots]\nrules:\n  - name: {name}\n    match: \"**/*.{ext}\"\n    run: [{}, {}, \"{name}\", \"{{rel}}\"]\n",
            argvdump().display(),
            dump.display()
        )
    };
    env.write("rules.yaml", rule("first", "a"));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: broken\n    match: \"[\"\n    run: [x]\n",
    );
    wait_until(
        "the failed reload to be logged",
        Duration::from_secs(20),
        || daemon.log_text().contains("rules reload failed"),
    );
    assert!(
        daemon.log_text().contains("rules.yaml:5:12"),
        "{}",
        daemon.log_text()
    );
    write_file(&env.path("shots/one.a"), b"x");
    daemon.wait_idle_with(1, Duration::from_secs(20));
    env.write("rules.yaml", rule("second", "b"));
    wait_until("the fixed rules to load", Duration::from_secs(20), || {
        daemon.log_text().contains("rules reloaded")
    });
    write_file(&env.path("shots/two.b"), b"x");
    write_file(&env.path("shots/three.a"), b"x");
    daemon.wait_idle_with(2, Duration::from_secs(20));
    let got = records(&dump);
    assert_eq!(
        got,
        vec![
            vec![b"first".to_vec(), b"one.a".to_vec()],
            vec![b"second".to_vec(), b"two.b".to_vec()]
        ]
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn sigterm_lets_a_running_job_finish_then_exits_0() {
    let env = Env::new();
    env.write("rules.yaml", recorder_rules(&env, ""));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[("ARGVDUMP_SLEEP_MS", "700")]);
    write_file(&env.path("shots/slow.dat"), b"x");
    wait_until("the job to start", Duration::from_secs(20), || {
        daemon.log_text().contains(" start ")
    });
    assert_eq!(daemon.stop(), Some(0));
    assert_eq!(
        records(&env.path("dump.log")).len(),
        1,
        "the running job finished before exit"
    );
}

#[test]
fn grace_period_over_kills_running_jobs_and_exits_0() {
    let env = Env::new();
    env.write("rules.yaml", "version: 1\nwatch: [shots]\nrules:\n  - name: hang\n    match: \"**\"\n    run: [sleep, \"1000\"]\n");
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &["--grace", "300ms"], &[]);
    write_file(&env.path("shots/x"), b"x");
    wait_until("the job to start", Duration::from_secs(20), || {
        daemon.log_text().contains(" start ")
    });
    let started = std::time::Instant::now();
    assert_eq!(daemon.stop(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped within the grace and kill windows"
    );
}

#[test]
fn once_runs_present_files_and_reports_failure_in_its_exit_code() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        recorder_rules(
            &env,
            "  - name: fails-on-bad\n    match: \"**/*.bad\"\n    run: [\"false\"]\n",
        ),
    );
    for i in 0..200 {
        env.write(format!("shots/a/{i}.dat"), "x");
    }
    let ok = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(records(&env.path("dump.log")).len(), 200);
    // Fast jobs start and finish within one store batch: both must be recorded.
    let status = env.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["queued"].as_u64(), Some(0), "{status}");
    assert_eq!(status["running"].as_u64(), Some(0), "{status}");
    assert_eq!(status["done_1h"].as_u64(), Some(200), "{status}");
    env.write("shots/b/x.bad", "x");
    let failed = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(failed.status.code(), Some(1));
}

#[test]
fn a_deleted_root_is_reported_and_reattached_when_it_returns() {
    let env = Env::new();
    env.write("rules.yaml", recorder_rules(&env, ""));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    std::fs::remove_dir(env.path("shots")).expect("remove root");
    wait_until(
        "the lost root to be reported",
        Duration::from_secs(20),
        || daemon.log_text().contains("watch root disappeared"),
    );
    std::fs::create_dir_all(env.path("shots/sh010")).expect("root returns");
    wait_until(
        "the root to be re-attached",
        Duration::from_secs(20),
        || daemon.log_text().contains("watch root is back"),
    );
    write_file(&env.path("shots/sh010/x.dat"), b"x");
    daemon.wait_idle_with(1, Duration::from_secs(20));
    assert_eq!(
        records(&env.path("dump.log")),
        vec![vec![b"sh010/x.dat".to_vec()]]
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn too_few_inotify_watches_is_a_clear_error_and_exit_2() {
    // Needs the limit lowered: root on a machine (or container) of our own.
    let limit_path = "/proc/sys/fs/inotify/max_user_watches";
    let _alone = crate::daemon::INOTIFY_LIMITS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Ok(original) = std::fs::read_to_string(limit_path) else {
        return cannot_run(
            &format!("cannot read `{limit_path}`"),
            "run on Linux with /proc",
        );
    };
    let env = Env::new();
    env.write("rules.yaml", recorder_rules(&env, ""));
    for i in 0..50 {
        std::fs::create_dir_all(env.path(format!("shots/d{i}"))).expect("mkdir");
    }
    let _restore = match WatchLimitGuard::lower_to(limit_path, original.trim(), "20") {
        Ok(guard) => guard,
        Err(e) => {
            return cannot_run(&format!("cannot lower `{limit_path}`: {e}"), AS_ROOT);
        }
    };
    let out = env.run(&["watch", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fs.inotify.max_user_watches"), "{err}");
    assert!(err.contains("about 51 folders"), "{err}");
}

/// Restores the watch limit when the test ends, however it ends.
struct WatchLimitGuard {
    path: &'static str,
    original: String,
}

impl WatchLimitGuard {
    fn lower_to(
        path: &'static str,
        original: &str,
        value: &str,
    ) -> std::io::Result<WatchLimitGuard> {
        std::fs::write(path, value)?;
        Ok(WatchLimitGuard {
            path,
            original: original.to_string(),
        })
    }
}

impl Drop for WatchLimitGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path, &self.original);
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_job_fields() {
    let env = Env::new();
    env.write("rules.yaml", recorder_rules(&env, ""));
    env.write("shots/a/1.dat", "x");
    let out = env.run(&["watch", "--once", "--log-format", "json", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each log line is JSON"))
        .collect();
    let end = lines
        .iter()
        .find(|l| l["fields"]["message"] == "end")
        .expect("an end line");
    assert_eq!(end["fields"]["rule"], "record");
    assert_eq!(end["fields"]["status"], "ok");
    assert!(end["fields"]["duration_ms"].is_u64());
}
