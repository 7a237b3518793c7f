//! Oversized and hostile rules files (issue 19): `check` and a reloading daemon refuse them
//! early, with the limit and how to raise it, and their peak resident memory stays under
//! 1 GiB, measured (`/usr/bin/time -v` for `check`, `VmHWM` for the daemon).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::daemon::{Daemon, argvdump, records};
use crate::env::{Env, stderr, wait_until};

const LIMIT: Duration = Duration::from_secs(60);

/// 1 GiB in KiB: no rules file may take a process past it.
const GIB_KIB: u64 = 1024 * 1024;

/// A generated rules file of `count` rules (490,000 make about 44 MB).
fn generated_rules(path: &Path, count: usize) {
    let file = std::fs::File::create(path).expect("create");
    let mut out = std::io::BufWriter::new(file);
    out.write_all(b"version: 1\nwatch: [shots]\nrules:\n")
        .expect("write");
    for i in 0..count {
        writeln!(
            out,
            "  - name: rule_{i:07}\n    match: \"**/sh{i:07}/*.exr\"\n    run: [echo, \"{{path}}\", \"{i}\"]"
        )
        .expect("write");
    }
    out.flush().expect("flush");
}

/// A valid header, then a string of 200 KB that 20,000 aliases copy (4 GB if expanded): the
/// node budget alone let this through.
fn long_string_alias_bomb() -> String {
    format!(
        "version: 1\nwatch: [shots]\nvars:\n  a: &a \"{}\"\nrules:\n  - name: r\n    match: \"*.exr\"\n    run: [{}]\n",
        "x".repeat(200_000),
        vec!["*a"; 20_000].join(",")
    )
}

/// The classic "billion laughs" after a valid header: nine levels of nine aliases.
fn billion_laughs() -> String {
    let mut text = String::from("version: 1\nwatch: [shots]\n");
    text.push_str(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let aliases = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{aliases}]\n"));
    }
    text
}

/// Runs `shotrouter check FILE` under `/usr/bin/time -v`: (exit code, its stderr, peak KiB).
fn check_measured(env: &Env, file: &str) -> (Option<i32>, String, u64) {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        assert!(
            std::env::var_os("SHOTROUTER_ALLOW_SKIP").is_some(),
            "/usr/bin/time is missing: run `bash scripts/deps test` (package `time`)"
        );
        return (Some(2), "skipped".into(), 0);
    }
    let output = Command::new(time)
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_shotrouter"))
        .args(["check", file])
        .current_dir(env.root())
        .output()
        .expect("time runs");
    let text = stderr(&output);
    let peak = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak in {text}"));
    let code = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Exit status:"))
        .and_then(|v| v.trim().parse().ok());
    (code, text, peak)
}

/// A process's peak resident memory in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn issue_19_check_refuses_a_huge_rules_file_early_with_the_limit() {
    let env = Env::new();
    generated_rules(&env.path("huge.yaml"), 490_000);
    let (code, text, peak) = check_measured(&env, "huge.yaml");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("rules file `huge.yaml` is 42.4 MiB, past the limit of 4 MiB")
            && text.contains("`SHOTROUTER_MAX_RULES_BYTES=BYTES`"),
        "{text}"
    );
    assert!(peak < GIB_KIB, "check peaked at {peak} KiB");
    // The limit can be raised (and lowered).
    env.write("small.yaml", "version: 1\nwatch: [shots]\nrules: []\n");
    let output = env
        .command(&["check", "small.yaml"])
        .env("SHOTROUTER_MAX_RULES_BYTES", "16")
        .output()
        .expect("check runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("past the limit of 16 bytes"),
        "{}",
        stderr(&output)
    );
    let output = env
        .command(&["check", "small.yaml"])
        .env("SHOTROUTER_MAX_RULES_BYTES", "lots")
        .output()
        .expect("check runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .contains("`SHOTROUTER_MAX_RULES_BYTES` is `lots`, not a positive whole number"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn issue_19_check_refuses_too_many_rules_and_alias_bombs_within_bounded_memory() {
    let env = Env::new();
    // Within 4 MiB but past 10,000 rules.
    generated_rules(&env.path("many.yaml"), 20_000);
    let (code, text, peak) = check_measured(&env, "many.yaml");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("error: 20000 rules, past the limit of 10000"),
        "{text}"
    );
    assert!(text.contains("`SHOTROUTER_MAX_RULES=N`"), "{text}");
    assert!(peak < GIB_KIB, "check peaked at {peak} KiB");

    for (name, text) in [
        ("laughs.yaml", billion_laughs()),
        ("strings.yaml", long_string_alias_bomb()),
    ] {
        env.write(name, &text);
        let (code, out, peak) = check_measured(&env, name);
        assert_eq!(code, Some(2), "{name}: {out}");
        assert!(out.contains("invalid YAML"), "{name}: {out}");
        assert!(peak < GIB_KIB, "{name}: check peaked at {peak} KiB");
    }
}

#[test]
fn issue_19_a_huge_rules_file_on_reload_keeps_the_old_rules() {
    let env = Env::new();
    let good = format!(
        "version: 1\nwatch: [shots]\nrules:\n  - name: first\n    match: \"**/*.a\"\n    run: [{}, {}, first, \"{{rel}}\"]\n",
        argvdump().display(),
        env.path("dump.log").display()
    );
    env.write("rules.yaml", &good);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    // Written beside, then renamed over the rules: the daemon sees one whole file.
    generated_rules(&env.path("huge.tmp"), 490_000);
    std::fs::rename(env.path("huge.tmp"), env.path("rules.yaml")).expect("rename");
    wait_until("the refused reload to be logged", LIMIT, || {
        daemon.log_text().contains("rules reload failed")
    });
    let log = daemon.log_text();
    assert!(log.contains("past the limit of 4 MiB"), "{log}");
    assert!(log.contains("the previous rules stay in force"), "{log}");
    let peak = peak_rss_kib(daemon.pid());
    assert!(peak < GIB_KIB, "the daemon peaked at {peak} KiB");
    // The string bomb next: refused too.
    env.write("bomb.tmp", long_string_alias_bomb());
    std::fs::rename(env.path("bomb.tmp"), env.path("rules.yaml")).expect("rename");
    wait_until("the second refused reload", LIMIT, || {
        daemon.log_text().matches("rules reload failed").count() >= 2
    });
    let peak = peak_rss_kib(daemon.pid());
    assert!(peak < GIB_KIB, "the daemon peaked at {peak} KiB");
    // Alive, and routing with the old rules.
    env.write("shots/one.a", "x");
    daemon.wait_idle_with(1, LIMIT);
    assert_eq!(
        records(&env.path("dump.log")),
        vec![vec![b"first".to_vec(), b"one.a".to_vec()]]
    );
    assert_eq!(daemon.stop(), Some(0));
}
