//! What the operations commands print, through the real binary: tables that fit a narrow
//! terminal, JSON from the commands that change jobs, colour only when asked or on a terminal,
//! `-q`/`-v`, `status --watch` into a pipe, and logs free of Rust debug text.

use std::io::Read;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::env::{Env, stderr, stdout, wait_until};

/// A folder deep enough that a path never fits 60 columns.
const DEEP: &str = "shots/sh010_a_folder_name_long_enough_to_need_cutting/renders/beauty";

/// A store with two jobs on one file: `ok` done, `convert-to-review` failed.
fn store_with_a_failed_job(env: &Env) {
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: convert-to-review\n    match: \"**/*.dat\"\n    run: [sh, -c, \"exit 3\"]\n  - name: ok\n    match: \"**/*.dat\"\n    run: [\"true\"]\n",
    );
    env.write(format!("{DEEP}/frame with spaces.dat"), "a");
    let out = shotrouter(env, &["watch", "--once", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// `shotrouter ARGS` with none of the caller's log or colour settings.
fn shotrouter(env: &Env, args: &[&str]) -> Output {
    env.command(args)
        .env_remove("SHOTROUTER_LOG")
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .output()
        .expect("shotrouter runs")
}

fn json(out: &Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[test]
fn a_table_fits_a_narrow_terminal_with_an_ellipsis_and_a_pipe_gets_whole_paths() {
    let env = Env::new();
    store_with_a_failed_job(&env);
    let out = env
        .command(&["jobs", "--rules", "rules.yaml"])
        .env("COLUMNS", "60")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().count(),
        3,
        "a heading and one line per job:\n{text}"
    );
    for line in text.lines() {
        assert!(line.chars().count() <= 60, "wider than 60: {line:?}");
    }
    assert!(text.contains('…'), "{text}");
    assert!(text.contains("failed") && text.contains("done"), "{text}");

    let whole = stdout(&shotrouter(&env, &["jobs", "--rules", "rules.yaml"]));
    assert!(
        whole.contains("frame with spaces.dat'") && !whole.contains('…'),
        "{whole}"
    );
}

#[test]
fn retry_cancel_and_rerun_print_json() {
    let env = Env::new();
    store_with_a_failed_job(&env);
    let jobs = json(&shotrouter(
        &env,
        &["jobs", "--rules", "rules.yaml", "--json"],
    ));
    let id_of = |status: &str| {
        jobs.as_array()
            .expect("array")
            .iter()
            .find(|j| j["status"] == status)
            .expect("job")["id"]
            .as_i64()
            .expect("id")
    };
    let (failed, done) = (id_of("failed").to_string(), id_of("done").to_string());

    let retried = json(&shotrouter(
        &env,
        &["retry", "--rules", "rules.yaml", "--json", &failed, &done],
    ));
    assert_eq!(retried["queued"], serde_json::json!([id_of("failed")]));
    assert_eq!(retried["not_queued"][0]["id"], id_of("done"));

    // No daemon runs: the retried job stays queued, so it can be cancelled.
    let cancelled = json(&shotrouter(
        &env,
        &["cancel", "--rules", "rules.yaml", "--json", &failed, &done],
    ));
    assert_eq!(cancelled["cancelled"][0]["id"], id_of("failed"));
    assert_eq!(cancelled["cancelled"][0]["stopped_processes"], 0);
    assert_eq!(cancelled["not_cancelled"][0]["id"], id_of("done"));

    let rerun = json(&shotrouter(
        &env,
        &["rerun", "--rules", "rules.yaml", "--json", "--rule", "ok"],
    ));
    assert_eq!(rerun, serde_json::json!({"rule": "ok", "queued": 1}));
}

#[test]
fn colour_only_when_asked_and_no_color_is_honoured() {
    let env = Env::new();
    store_with_a_failed_job(&env);
    let status = |extra: &[&str], no_color: bool| {
        let mut args = vec!["status", "--rules", "rules.yaml"];
        args.extend_from_slice(extra);
        let mut command = env.command(&args);
        command.env_remove("NO_COLOR");
        if no_color {
            command.env("NO_COLOR", "1");
        }
        let out = command.output().expect("runs");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        out.stdout.contains(&0x1b)
    };
    assert!(!status(&[], false), "a pipe gets no colour by default");
    assert!(!status(&["--color", "never"], false));
    assert!(!status(&["--color", "auto"], true));
    assert!(status(&["--color", "always"], false));
    // The flag is the user's word for this one command: it wins over the environment.
    assert!(status(&["--color", "always"], true));

    let logs = |colour: &str| {
        let out = shotrouter(&env, &["watch", "--once", "--color", colour, "rules.yaml"]);
        out.stderr.contains(&0x1b)
    };
    assert!(logs("always"));
    assert!(!logs("never"));
}

#[test]
fn quiet_hides_info_and_verbose_shows_debug_unless_shotrouter_log_is_set() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: ok\n    match: \"**/*.dat\"\n    run: [\"true\"]\n",
    );
    env.write("shots/a.dat", "a");
    let run = |args: &[&str], log: Option<&str>| {
        let mut command = env.command(args);
        command.env_remove("SHOTROUTER_LOG");
        if let Some(log) = log {
            command.env("SHOTROUTER_LOG", log);
        }
        let out = command.output().expect("runs");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stderr(&out)
    };
    let normal = run(&["watch", "--once", "--no-store", "rules.yaml"], None);
    assert!(
        normal.contains(" INFO ") && !normal.contains(" DEBUG "),
        "{normal}"
    );
    let quiet = run(&["watch", "--once", "--no-store", "-q", "rules.yaml"], None);
    assert!(!quiet.contains(" INFO "), "{quiet}");
    let verbose = run(&["watch", "--once", "--no-store", "-v", "rules.yaml"], None);
    assert!(verbose.contains(" DEBUG shotrouter::"), "{verbose}");
    let set = run(
        &["watch", "--once", "--no-store", "-v", "rules.yaml"],
        Some("warn"),
    );
    assert!(!set.contains(" DEBUG ") && !set.contains(" INFO "), "{set}");
}

#[test]
fn status_watch_into_a_pipe_prints_blocks_until_sigint_and_exits_0() {
    let env = Env::new();
    store_with_a_failed_job(&env);
    let mut child = env
        .command(&[
            "status",
            "--rules",
            "rules.yaml",
            "--watch",
            "--every",
            "100ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let text = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stdout.take().expect("stdout");
    let reader = {
        let text = text.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.lock()
                    .expect("text")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let blocks = || {
        text.lock()
            .expect("text")
            .lines()
            .filter(|l| l.starts_with("running "))
            .count()
    };
    wait_until("two status blocks", Duration::from_secs(10), || {
        blocks() >= 2
    });
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    kill(pid, Signal::SIGINT).expect("SIGINT");
    let status = child.wait().expect("exits");
    reader.join().expect("reader");
    assert_eq!(status.code(), Some(0));
    let text = text.lock().expect("text").clone();
    assert!(
        !text.contains('\x1b'),
        "no cursor movement into a pipe: {text:?}"
    );
    assert!(text.contains("failed in the last 24h 1"), "{text}");
}

/// `?value` in a `tracing` call logs Rust's Debug text (`Some(Hold)`, `Cancelled`); the logs
/// are for people, so every value is given as words (`%` or a plain field).
#[test]
fn no_tracing_call_logs_debug_text() {
    let mut offenders = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            for (at, _) in text.match_indices("tracing::") {
                let call = &text[at..];
                let Some(bang) = call.find('!') else { continue };
                if call[..bang].contains(|c: char| !(c.is_alphanumeric() || c == ':' || c == '_')) {
                    continue;
                }
                let end = call.find(");").unwrap_or(call.len());
                let call = &call[..end];
                let debug_field = call.match_indices('?').any(|(i, _)| {
                    let before = call[..i].trim_end();
                    let after = call[i + 1..].chars().next().unwrap_or(' ');
                    (before.ends_with(',') || before.ends_with('(') || before.ends_with('='))
                        && (after.is_alphabetic() || after == '_')
                });
                if debug_field || call.contains(":?}") {
                    offenders.push(format!(
                        "{}: {}",
                        path.display(),
                        call.lines().next().unwrap_or("")
                    ));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "Debug text in logs:\n{}",
        offenders.join("\n")
    );
}

/// `watch --once` on a terminal (a pty from util-linux's `script`): every log line is written
/// with the progress bar lifted (`ESC[2K` clears the bar's line first), so no line starts
/// after the bar's text and the bar is redrawn below the lines.
#[test]
fn watch_once_keeps_its_progress_bar_below_the_log_lines() {
    if !crate::helpers::require::require_program("script", "bsdutils") {
        return;
    }
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\njobs: 2\nrules:\n  - name: slow\n    match: \"**/*.dat\"\n    run: [sleep, \"0.05\"]\n",
    );
    for i in 0..12 {
        env.write(format!("shots/f{i}.dat"), "a");
    }
    let command = format!(
        "SHOTROUTER_LOG=info {} watch --once --no-store rules.yaml",
        env!("CARGO_BIN_EXE_shotrouter")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(env.root())
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("12/12"), "no progress bar drawn: {text:?}");
    let mut logged = 0;
    for line in text.split('\n').filter(|l| l.contains("INFO")) {
        logged += 1;
        let before = &line[..line.find("20").expect("timestamp")];
        assert!(
            before.is_empty() || before.ends_with("\r\x1b[2K"),
            "a log line written after the bar's text: {line:?}"
        );
    }
    assert!(logged >= 12, "{text:?}");
}
