//! Hostile inputs against a real daemon: a rules edit that is a YAML alias bomb, and file names
//! built to forge log lines.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::daemon::{Daemon, argvdump, records};
use crate::env::{Env, wait_until};

const LIMIT: Duration = Duration::from_secs(30);

/// Rules with one rule that records `NAME {rel}` for every `*.EXT`.
fn recording_rule(env: &Env, name: &str, ext: &str) -> String {
    format!(
        "version: 1\nwatch: [shots]\nrules:\n  - name: {name}\n    match: \"**/*.{ext}\"\n    run: [{}, {}, \"{name}\", \"{{rel}}\"]\n",
        argvdump().display(),
        env.path("dump.log").display()
    )
}

/// The classic "billion laughs" after a valid header: nine levels of nine aliases.
fn alias_bomb() -> String {
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

/// The daemon's peak resident memory in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn alias_bomb_reload_is_refused_at_its_alias_and_the_old_rules_keep_routing() {
    let env = Env::new();
    env.write("rules.yaml", recording_rule(&env, "first", "a"));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    let bomb = alias_bomb();
    assert!(bomb.len() < 600, "{} bytes", bomb.len());
    env.write("rules.yaml", &bomb);
    wait_until("the refused reload to be logged", LIMIT, || {
        daemon.log_text().contains("rules reload failed")
    });
    let log = daemon.log_text();
    // `g: &g [*f,...` is line 9; its first alias, at column 8, passes the budget.
    assert!(log.contains("rules.yaml:9:8"), "{log}");
    assert!(log.contains("alias `*f`"), "{log}");
    assert!(
        peak_rss_kib(daemon.pid()) < 512 * 1024,
        "the bomb stayed bounded: peak {} KiB",
        peak_rss_kib(daemon.pid())
    );
    // Alive, and routing with the old rules.
    env.write("shots/one.a", "x");
    daemon.wait_idle_with(1, LIMIT);
    assert_eq!(
        records(&env.path("dump.log")),
        vec![vec![b"first".to_vec(), b"one.a".to_vec()]]
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn deeply_nested_rules_edit_is_refused_and_the_daemon_lives() {
    let env = Env::new();
    env.write("rules.yaml", recording_rule(&env, "first", "a"));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nx:\n  {}y\n",
            "- ".repeat(200_000)
        ),
    );
    wait_until("the refused reload to be logged", LIMIT, || {
        daemon.log_text().contains("rules reload failed")
    });
    assert!(
        daemon.log_text().contains("nested deeper than 256 levels"),
        "{}",
        daemon.log_text()
    );
    env.write("shots/one.a", "x");
    daemon.wait_idle_with(1, LIMIT);
    assert_eq!(records(&env.path("dump.log")).len(), 1);
    assert_eq!(daemon.stop(), Some(0));
}

/// One parsed text-log line.
#[derive(Debug)]
struct Line {
    level: String,
    message: String,
    fields: BTreeMap<String, String>,
}

/// Reads a quoted value at the start of `text` (which starts with `"`), undoing the escapes;
/// returns it and the rest.
fn unquote(text: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &text[i + 1..])),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('e') => out.push('\x1b'),
                Some('x') => {
                    let hex: String = (0..2)
                        .filter_map(|_| chars.next().map(|(_, c)| c))
                        .collect();
                    let code =
                        u32::from_str_radix(&hex, 16).map_err(|e| format!("\\x{hex}: {e}"))?;
                    out.push(char::from_u32(code).ok_or("bad \\x")?);
                }
                Some('u') => {
                    let mut hex = String::new();
                    for (_, c) in chars.by_ref() {
                        match c {
                            '{' => {}
                            '}' => break,
                            c => hex.push(c),
                        }
                    }
                    let code =
                        u32::from_str_radix(&hex, 16).map_err(|e| format!("\\u{hex}: {e}"))?;
                    out.push(char::from_u32(code).ok_or("bad \\u")?);
                }
                other => return Err(format!("unknown escape {other:?}")),
            },
            c if c.is_control() => return Err(format!("raw control {c:?} in a quoted value")),
            c => out.push(c),
        }
    }
    Err("unclosed quote".into())
}

fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_./:@+,".contains(c)
}

/// Parses `TIMESTAMP LEVEL TARGET: MESSAGE key=value ...` as docs/operations.md describes it.
fn parse_line(line: &str) -> Result<Line, String> {
    let (stamp, rest) = line.split_once(' ').ok_or("no timestamp")?;
    if !(stamp.ends_with('Z') && stamp.starts_with(|c: char| c.is_ascii_digit())) {
        return Err(format!("bad timestamp {stamp:?}"));
    }
    let (level, rest) = rest
        .trim_start_matches(' ')
        .split_once(' ')
        .ok_or("no level")?;
    if !["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level) {
        return Err(format!("bad level {level:?}"));
    }
    let (target, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let valid_target = target.len() > 1
        && target.ends_with(':')
        && target
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_:".contains(c));
    if !valid_target {
        return Err(format!("bad target {target:?}"));
    }
    let (message, mut rest) = if rest.starts_with('"') {
        unquote(rest).map_err(|e| format!("message: {e}"))?
    } else {
        // A bare message runs up to the first word holding `=`, which starts the fields.
        let mut end = rest.len();
        let mut at = 0usize;
        for word in rest.split(' ') {
            if word.contains('=') {
                end = at.saturating_sub(1);
                break;
            }
            at += word.len() + 1;
        }
        let message = &rest[..end];
        if message.contains('"') || message.chars().any(char::is_control) {
            return Err(format!(
                "bare message {message:?} holds a quote or a control"
            ));
        }
        (message.to_string(), &rest[end..])
    };
    let mut fields = BTreeMap::new();
    while !rest.is_empty() {
        let r = rest.strip_prefix(' ').unwrap_or(rest);
        let (key, r) = r.split_once('=').ok_or(format!("no `=` in {r:?}"))?;
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad key {key:?}"));
        }
        let (value, r) = if r.starts_with('"') {
            unquote(r).map_err(|e| format!("{key}: {e}"))?
        } else {
            let end = r.find(' ').unwrap_or(r.len());
            let value = &r[..end];
            if value.is_empty() || !value.chars().all(plain) {
                return Err(format!("{key}: bare value {value:?} is not a plain token"));
            }
            (value.to_string(), &r[end..])
        };
        if !(r.is_empty() || r.starts_with(' ')) {
            return Err(format!("{key}: no space after its value, at {r:?}"));
        }
        if fields.insert(key.to_string(), value).is_some() {
            return Err(format!("field {key} given twice"));
        }
        rest = r;
    }
    Ok(Line {
        level: level.to_string(),
        message,
        fields,
    })
}

/// File names built to break or forge log lines: a newline, an ESC sequence, fake fields and a
/// whole fake `end … status=ok` event, a quote and a backslash, and bytes that are not UTF-8.
fn hostile_names() -> Vec<Vec<u8>> {
    vec![
        b"new\nline.dat".to_vec(),
        b"esc\x1b[31mred\x1b[0m.dat".to_vec(),
        b"x status=ok job=999\nend.dat".to_vec(),
        b"f.dat\n2026-11-29T00:00:00.000000Z  INFO shotrouter::engine::outcomes: end job=999 rule=record status=ok duration_ms=1 f.dat".to_vec(),
        b"say \"hi\" \\o.dat".to_vec(),
        b"latin\xe9\xff.dat".to_vec(),
    ]
}

fn drop_hostile_files(env: &Env) -> Vec<PathBuf> {
    hostile_names()
        .into_iter()
        .map(|name| {
            let path = env.path("shots").join(OsStr::from_bytes(&name));
            std::fs::write(&path, b"x").expect("write a hostile name");
            path
        })
        .collect()
}

fn lossy(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[test]
fn hostile_file_names_cannot_break_or_forge_text_log_lines() {
    let env = Env::new();
    env.write("rules.yaml", recording_rule(&env, "record", "dat"));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    let paths = drop_hostile_files(&env);
    daemon.wait_idle_with(paths.len(), LIMIT);
    assert_eq!(daemon.stop(), Some(0));
    let bytes = std::fs::read(env.path("daemon.log")).expect("log");
    assert!(!bytes.contains(&0x1b), "no raw ESC in the log");
    let text = String::from_utf8(bytes).expect("the text log is UTF-8");
    let lines: Vec<Line> = text
        .lines()
        .map(|l| parse_line(l).unwrap_or_else(|e| panic!("{e}\nin line {l:?}\nof\n{text}")))
        .collect();
    let starts: Vec<&Line> = lines.iter().filter(|l| l.message == "start").collect();
    let ends: Vec<&Line> = lines.iter().filter(|l| l.message == "end").collect();
    let want: BTreeSet<String> = paths.iter().map(|p| lossy(p)).collect();
    for events in [&starts, &ends] {
        let logged: BTreeSet<String> = events.iter().map(|l| l.fields["path"].clone()).collect();
        assert_eq!(
            logged, want,
            "each job's start and end, path intact:\n{text}"
        );
    }
    let jobs: BTreeSet<&str> = starts.iter().map(|l| l.fields["job"].as_str()).collect();
    assert_eq!(jobs.len(), paths.len());
    // `status=ok` is a field only of the real ends, and no event names the forged job.
    for line in &lines {
        if line.fields.get("status").map(String::as_str) == Some("ok") {
            assert_eq!(line.message, "end");
            assert!(jobs.contains(line.fields["job"].as_str()), "{line:?}");
        }
        assert_ne!(
            line.fields.get("job").map(String::as_str),
            Some("999"),
            "{line:?}"
        );
        assert!(["INFO", "WARN", "ERROR"].contains(&line.level.as_str()));
    }
    assert_eq!(ends.len(), paths.len(), "{text}");
}

#[test]
fn hostile_file_names_stay_inside_json_log_strings() {
    let env = Env::new();
    env.write("rules.yaml", recording_rule(&env, "record", "dat"));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &["--log-format", "json"], &[]);
    let paths = drop_hostile_files(&env);
    wait_until("every job's end", LIMIT, || {
        daemon.log_text().matches("\"message\":\"end\"").count() >= paths.len()
    });
    assert_eq!(daemon.stop(), Some(0));
    let text = daemon_log(&env);
    let mut ended = BTreeSet::new();
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{e}: a line is not one JSON object: {line:?}"));
        let fields = &event["fields"];
        if fields["message"] == "end" {
            assert_eq!(fields["status"], "ok", "{line}");
            ended.insert(fields["path"].as_str().expect("path").to_string());
        }
        assert_ne!(fields["job"], 999, "{line}");
    }
    let want: BTreeSet<String> = paths.iter().map(|p| lossy(p)).collect();
    assert_eq!(ended, want);
}

fn daemon_log(env: &Env) -> String {
    String::from_utf8(std::fs::read(env.path("daemon.log")).expect("log")).expect("UTF-8 log")
}
