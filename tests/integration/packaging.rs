//! Shipping: job log retention (`watch --keep-logs`), completion scripts, and the Debian
//! package built by `packaging/build-deb`, unpacked into a scratch root and used from there:
//! its binary, a man page, a completion, the systemd unit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::env::{Env, stderr, stdout};
use crate::helpers::require::require_program;

const RULES: &str = "version: 1\nwatch: [shots]\nrules:\n  - name: convert\n    match: \"**/*.dat\"\n    run: [\"true\"]\n";

/// Sets a file's modification time `ago` (`touch -d`'s words) back.
fn age(path: &Path, ago: &str) {
    let status = Command::new("touch")
        .arg("-d")
        .arg(ago)
        .arg(path)
        .status()
        .expect("touch runs");
    assert!(status.success(), "touch -d '{ago}' {}", path.display());
}

/// A state folder with job logs of `convert`: `old.log` 40 days old, `new.log` written now,
/// and two old files that are not job logs (`notes.txt` beside them, `stray.log` above them).
fn state_with_logs(env: &Env) -> [PathBuf; 4] {
    env.write("rules.yaml", RULES);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let old = env.write("state/logs/convert/1.log", "old job\n");
    let new = env.write("state/logs/convert/2.log", "new job\n");
    let notes = env.write("state/logs/convert/notes.txt", "mine\n");
    let stray = env.write("state/logs/stray.log", "mine too\n");
    for path in [&old, &notes, &stray] {
        age(path, "40 days ago");
    }
    [old, new, notes, stray]
}

fn watch_once(env: &Env, extra: &[&str]) -> Output {
    let mut args = vec!["watch", "--once", "--state", "state"];
    args.extend_from_slice(extra);
    args.push("rules.yaml");
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    out
}

#[test]
fn ship_keep_logs_deletes_old_job_logs_at_start_and_keeps_recent_ones() {
    let env = Env::new();
    let [old, new, notes, stray] = state_with_logs(&env);

    // Longer than their age, or 0 (forever): nothing goes.
    watch_once(&env, &["--keep-logs", "45d"]);
    watch_once(&env, &["--keep-logs", "0"]);
    assert!(
        old.exists(),
        "a 40-day-old log was deleted with --keep-logs 45d or 0"
    );

    // The default, 30 days: the old job log goes, the rest stays.
    let out = watch_once(&env, &[]);
    assert!(
        !old.exists(),
        "a 40-day-old job log survived the default --keep-logs 30d"
    );
    assert!(new.exists(), "a job log written now was deleted");
    assert!(notes.exists(), "a file that is not a job log was deleted");
    assert!(stray.exists(), "a .log outside a rule's folder was deleted");
    let err = stderr(&out);
    assert!(
        err.contains("deleted old job logs") && err.contains("removed=1"),
        "the sweep is not logged with its count:\n{err}"
    );

    let bad = env.run(&["watch", "--keep-logs", "30", "rules.yaml"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("add a unit"), "{}", stderr(&bad));
}

/// Sources a bash completion script and asks it to complete `words` (the last one partial).
fn bash_complete(script: &Path, words: &[&str]) -> Output {
    let program = format!(
        "source '{}' && complete -p shotrouter && COMP_WORDS=({}) && COMP_CWORD={} && \
         _shotrouter shotrouter '{}' '{}' && printf 'reply:%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    Command::new("bash")
        .args(["-c", &program])
        .output()
        .expect("bash runs")
}

fn assert_completes(script: &Path) {
    let out = bash_complete(script, &["shotrouter", "wat"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("-F _shotrouter shotrouter") && text.lines().any(|l| l == "reply:watch"),
        "`shotrouter wat<TAB>` does not complete to `watch`:\n{text}"
    );
    let out = bash_complete(script, &["shotrouter", "watch", "--keep"]);
    assert!(
        stdout(&out).lines().any(|l| l == "reply:--keep-logs"),
        "`shotrouter watch --keep<TAB>`:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn ship_completions_prints_a_script_per_shell() {
    let env = Env::new();
    let bash = env.run(&["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0), "{}", stderr(&bash));
    let script = env.write("shotrouter.bash", &bash.stdout);
    assert_completes(&script);

    let zsh = env.run(&["completions", "zsh"]);
    assert!(
        stdout(&zsh).starts_with("#compdef shotrouter"),
        "{}",
        stdout(&zsh)
    );
    let fish = env.run(&["completions", "fish"]);
    assert!(
        stdout(&fish).contains("complete -c shotrouter"),
        "{}",
        stdout(&fish)
    );

    let other = env.run(&["completions", "tcsh"]);
    assert_eq!(other.status.code(), Some(2));
    assert!(
        stderr(&other).contains("possible values: bash, zsh, fish"),
        "{}",
        stderr(&other)
    );
}

fn run_ok(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} cannot start: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// The commit a `--version` line names: `shotrouter 0.1.0 (commit 0123456789ab)`.
fn commit_of(version: &str) -> String {
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no commit in {version:?}"));
    commit.trim_end_matches("-modified").to_string()
}

/// Seconds of a systemd time span as this unit writes it (`45`, `45s`, `2min`).
fn seconds(span: &str) -> u64 {
    let span = span.trim();
    if let Some(minutes) = span.strip_suffix("min") {
        return minutes.parse::<u64>().expect("minutes") * 60;
    }
    span.trim_end_matches('s').parse().expect("seconds")
}

/// The value of `key=` in the unit file (the last one, as systemd reads it).
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .rev()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

#[test]
fn ship_the_deb_installs_a_working_binary_man_pages_completions_and_unit() {
    assert!(
        Command::new("cargo")
            .args(["deb", "--version"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: run scripts/deps (or `cargo install --locked cargo-deb`)"
    );
    assert!(
        has("man"),
        "man is missing: run scripts/deps (it installs man-db)"
    );
    let scratch = tempfile::tempdir().expect("temp dir");
    let debs = scratch.path().join("debs");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    run_ok(
        Command::new(repo.join("packaging/build-deb"))
            .arg("--output")
            .arg(&debs),
    );
    let entries: Vec<PathBuf> = std::fs::read_dir(&debs)
        .expect("the output folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    let [deb] = entries.as_slice() else {
        panic!("expected one .deb in {}, found {entries:?}", debs.display());
    };

    // The control data: what apt will pull in, and the maintainer scripts.
    let fields = stdout(&run_ok(Command::new("dpkg-deb").arg("-f").arg(deb).args([
        "Package",
        "Depends",
        "Recommends",
        "Section",
    ])));
    for want in [
        "Package: shotrouter",
        "adduser",
        "Recommends: ffmpeg",
        "Section: utils",
    ] {
        assert!(fields.contains(want), "control lacks {want:?}:\n{fields}");
    }
    let control = scratch.path().join("control");
    run_ok(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    for script in ["postinst", "postrm"] {
        run_ok(Command::new("sh").arg("-n").arg(control.join(script)));
    }

    // Installed into a scratch root, used from there.
    let root = scratch.path().join("root");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    let binary = root.join("usr/bin/shotrouter");
    let version = stdout(&run_ok(Command::new(&binary).arg("--version")));
    let tested = stdout(&run_ok(
        Command::new(env!("CARGO_BIN_EXE_shotrouter")).arg("--version"),
    ));
    assert_eq!(
        commit_of(&version),
        commit_of(&tested),
        "the packaged binary is not built from the tested commit"
    );

    let man1 = root.join("usr/share/man/man1");
    for command in [
        "check",
        "explain",
        "status",
        "jobs",
        "job",
        "retry",
        "cancel",
        "rerun",
        "files",
        "lineage",
        "stale",
        "notify",
        "serve",
        "watch",
        "completions",
        "cut",
        "cut-import",
        "cut-show",
        "cut-ranges",
        "conform",
    ] {
        let page = man1.join(format!("shotrouter-{command}.1.gz"));
        assert!(page.is_file(), "no man page {}", page.display());
    }
    assert!(man1.join("shotrouter.1.gz").is_file(), "no shotrouter.1");
    assert!(
        !man1.join("shotrouter-manpages.1.gz").exists(),
        "the hidden subcommand has a page"
    );
    let page = stdout(&run_ok(
        Command::new("man")
            .arg("-l")
            .arg(man1.join("shotrouter-watch.1.gz"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100"),
    ));
    assert!(
        page.contains("--grace") && page.contains("--keep-logs") && page.contains("SYNOPSIS"),
        "shotrouter-watch(1) does not render its options:\n{page}"
    );

    assert_completes(&root.join("usr/share/bash-completion/completions/shotrouter"));
    let zsh = std::fs::read_to_string(root.join("usr/share/zsh/vendor-completions/_shotrouter"))
        .expect("the zsh completion");
    assert!(zsh.starts_with("#compdef shotrouter"), "{zsh}");
    let fish_path = root.join("usr/share/fish/vendor_completions.d/shotrouter.fish");
    let fish = std::fs::read_to_string(&fish_path).expect("the fish completion");
    assert!(fish.contains("complete -c shotrouter"), "{fish}");
    for (shell, path) in [
        (
            "zsh",
            root.join("usr/share/zsh/vendor-completions/_shotrouter"),
        ),
        ("fish", fish_path),
    ] {
        if require_program(shell, shell) {
            run_ok(Command::new(shell).arg("-n").arg(path));
        }
    }

    let sysctl = std::fs::read_to_string(root.join("usr/lib/sysctl.d/60-shotrouter.conf"))
        .expect("the sysctl file");
    for key in [
        "fs.inotify.max_user_watches",
        "fs.inotify.max_queued_events",
        "fs.inotify.max_user_instances",
    ] {
        assert!(
            sysctl.lines().any(|l| l.starts_with(key)),
            "the sysctl file does not set {key}"
        );
    }

    // The unit: stopping must outlast the daemon's own stop (--grace plus a second).
    let unit_path = root.join("lib/systemd/system/shotrouter@.service");
    let unit = std::fs::read_to_string(&unit_path).expect("the unit");
    let help = stdout(&run_ok(Command::new(&binary).args(["watch", "--help"])));
    let grace = help
        .split("--grace")
        .nth(1)
        .and_then(|rest| rest.split("[default: ").nth(1))
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("no --grace default in:\n{help}"));
    assert!(
        seconds(unit_value(&unit, "TimeoutStopSec")) > seconds(grace) + 1,
        "TimeoutStopSec= is not above --grace ({grace}) + 1 s"
    );
    assert_eq!(unit_value(&unit, "KillMode"), "mixed");
    assert_eq!(unit_value(&unit, "RestartPreventExitStatus"), "2");
    assert_eq!(unit_value(&unit, "User"), "shotrouter");
    assert_eq!(unit_value(&unit, "StateDirectory"), "shotrouter/%i");
    assert!(
        unit_value(&unit, "ExecStart")
            .contains("/usr/bin/shotrouter watch --state /var/lib/shotrouter/%i ")
    );
    assert_eq!(
        unit_value(&unit, "ExecReload"),
        "/usr/bin/shotrouter check /etc/shotrouter/%i.yaml"
    );
    assert_eq!(unit_value(&unit, "AmbientCapabilities"), "CAP_LEASE");
    assert_eq!(
        unit_value(&unit, "Type"),
        "notify",
        "the daemon sends READY=1"
    );
    assert!(seconds(unit_value(&unit, "WatchdogSec")) >= 60);
    if require_program("systemd-analyze", "systemd") {
        // An instance of the unit, its binary the scratch root's; every warning is a failure.
        let units = scratch.path().join("units");
        std::fs::create_dir_all(&units).expect("units folder");
        let instance = units.join("shotrouter@bigfish.service");
        std::fs::write(
            &instance,
            unit.replace("/usr/bin/shotrouter", &binary.display().to_string()),
        )
        .expect("write the instance");
        let out = run_ok(
            Command::new("systemd-analyze")
                .args(["verify", "--man=no"])
                .arg(&instance),
        );
        assert!(
            stderr(&out).trim().is_empty(),
            "systemd-analyze verify:\n{}",
            stderr(&out)
        );
    }

    // The worker's unit: the same stop budget, its store from the environment file only.
    let worker =
        std::fs::read_to_string(root.join("lib/systemd/system/shotrouter-worker@.service"))
            .expect("the worker unit");
    assert!(seconds(unit_value(&worker, "TimeoutStopSec")) > seconds(grace) + 1);
    assert_eq!(unit_value(&worker, "User"), "shotrouter");
    assert_eq!(
        unit_value(&worker, "EnvironmentFile"),
        "/etc/shotrouter/worker-%i.env"
    );
    let exec = unit_value(&worker, "ExecStart");
    assert!(exec.starts_with("/usr/bin/shotrouter worker "), "{exec}");
    assert!(
        !exec.contains("postgres://"),
        "no store URL (or password) in the unit"
    );
}
