//! Cut files dropped into the watched tree (`cuts.files`, issue 22) and the notify events of
//! the cut, through a real `shotrouter watch` daemon on real inotify and a local webhook: an
//! EDL that arrives is stored as a revision (`cut show --json`); the same bytes again, or a
//! restart re-seeing old files, make none; a changed EDL that extends a shot is told as
//! `extended`; a broken EDL is logged with its file and line, told as `failed`, and the daemon
//! goes on; frames outside the cut are told once per shot as `outside_cut`.

use std::time::Duration;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::env::{Env, stderr, stdout, wait_until};
use crate::notify::Hook;

const LIMIT: Duration = Duration::from_secs(60);

/// Revision 1: `sh010` 48 frames (cut 1009-1056, handles 1001-1064), `sh020` 24 frames.
const REV1: &str = "TITLE: reel1\nFCM: NON-DROP FRAME\n\n\
    001  AX       V     C        01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n\
    * FROM CLIP NAME: sh010_anim\n\
    002  AX       V     C        02:00:00:00 02:00:01:00 01:00:02:00 01:00:03:00\n\
    * FROM CLIP NAME: sh020_anim\n";

/// Revision 2: `sh010` 12 frames longer (cut to 1068, kept to 1076): frames 1065-1076 are new.
const REV2: &str = "TITLE: reel1\nFCM: NON-DROP FRAME\n\n\
    001  AX       V     C        01:00:00:00 01:00:02:12 01:00:00:00 01:00:02:12\n\
    * FROM CLIP NAME: sh010_anim\n\
    002  AX       V     C        02:00:00:00 02:00:01:00 01:00:02:12 01:00:03:12\n\
    * FROM CLIP NAME: sh020_anim\n";

fn rules(hook: &Hook, events: &str) -> String {
    format!(
        r#"version: 1
watch: [shots]
cuts:
  shot: "^(?P<shot>.+)_anim$"
  fps: 24
  files: "editorial/**/*.edl"
notify:
  - on: [{events}]
    webhook: "{url}"
rules:
  - name: incut
    regex: '^(?P<shot>[^/]+)/plates/p\.[0-9]+\.exr$'
    frames: in_cut
    run: ["true"]
"#,
        url = hook.url
    )
}

/// `cut show NAME --json`, or `None` while the store holds no such cut.
fn show(env: &Env, name: &str) -> Option<Value> {
    let out = env.run(&["cut", "show", name, "--json", "--rules", "rules.yaml"]);
    if out.status.code() != Some(0) {
        return None;
    }
    Some(serde_json::from_str(&stdout(&out)).expect("JSON"))
}

fn latest_revision(env: &Env, name: &str) -> Option<i64> {
    show(env, name).and_then(|v| v["revision"].as_i64())
}

/// How many lines of the daemon's log contain `text`.
fn lines_with(daemon: &Daemon, text: &str) -> usize {
    daemon
        .log_text()
        .lines()
        .filter(|l| l.contains(text))
        .count()
}

fn events(hook: &Hook, event: &str) -> Vec<Value> {
    hook.bodies()
        .into_iter()
        .filter(|b| b["event"] == event)
        .collect()
}

#[test]
fn cut_files_are_imported_once_per_content_extensions_notify_and_broken_ones_do_not_stop_the_daemon()
 {
    let env = Env::new();
    let hook = Hook::start(0);
    env.write("rules.yaml", rules(&hook, "extended, failed"));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);

    // Arrives: revision 1, read from the file where it landed.
    env.write("shots/editorial/reel1.edl", REV1);
    wait_until("revision 1 of reel1", LIMIT, || {
        latest_revision(&env, "reel1") == Some(1)
    });
    let rev1 = show(&env, "reel1").expect("stored");
    assert!(
        rev1["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("shots/editorial/reel1.edl")),
        "{rev1}"
    );
    assert_eq!(rev1["shots"][0]["shot"], "sh010");
    assert_eq!(rev1["shots"][0]["tail_out"], 1064);

    // The same bytes saved again: no revision.
    env.write("shots/editorial/reel1.edl", REV1);
    wait_until("the unchanged file noticed", LIMIT, || {
        lines_with(&daemon, "cut file unchanged; no new revision") >= 1
    });
    assert_eq!(latest_revision(&env, "reel1"), Some(1));

    // Changed, extending sh010: revision 2, and the webhook hears which frames are needed.
    env.write("shots/editorial/reel1.edl", REV2);
    wait_until("an extended notice", LIMIT, || {
        !events(&hook, "extended").is_empty()
    });
    assert_eq!(latest_revision(&env, "reel1"), Some(2));
    let told = events(&hook, "extended");
    assert_eq!(told.len(), 1, "{told:#?}");
    let notice = &told[0];
    assert_eq!(
        (notice["cut"].as_str(), notice["revision"].as_i64()),
        (Some("reel1"), Some(2))
    );
    assert_eq!(
        (notice["job"].as_str(), notice["attempt"].as_u64()),
        (Some(""), Some(0))
    );
    assert!(
        notice["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("editorial/reel1.edl"))
    );
    let shots = notice["shots"].as_array().expect("shots");
    assert_eq!(shots.len(), 1, "only sh010 is extended: {notice}");
    assert_eq!(shots[0]["shot"], "sh010");
    assert_eq!(shots[0]["tail_out"], 1076);
    assert_eq!(shots[0]["previous_tail_out"], 1064);
    assert_eq!(shots[0]["frames"], "1065-1076");
    assert_eq!(shots[0]["count"], 12);
    // The watcher routes by the new ranges at once (its own import reads the cuts again).
    assert!(daemon.log_text().contains("routing by the latest cuts"));

    // A broken EDL: logged with file and line, told as `failed`, the daemon goes on.
    env.write(
        "shots/editorial/bad.edl",
        "TITLE: bad\nthis is not an event\n",
    );
    wait_until("the broken file's error", LIMIT, || {
        daemon.log_text().contains("bad.edl`: line 2:")
    });
    wait_until("a failed notice for the cut file", LIMIT, || {
        !events(&hook, "failed").is_empty()
    });
    let failed = &events(&hook, "failed")[0];
    assert_eq!(
        (failed["rule"].as_str(), failed["cut"].as_str()),
        (Some("cuts"), Some("bad"))
    );
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("bad.edl`: line 2:")),
        "{failed}"
    );
    assert!(show(&env, "bad").is_none(), "nothing stored for it");
    // Still running, and still importing.
    env.write("shots/editorial/reel2.edl", REV1);
    wait_until("reel2 imported after the broken file", LIMIT, || {
        latest_revision(&env, "reel2") == Some(1)
    });
    assert_eq!(daemon.stop(), Some(0));

    // While it is down, an old copy of revision 1 lands beside the current one: a restart
    // re-sees all three files and stores nothing new, whatever order its scan lists them in.
    env.write("shots/editorial/old/reel1.edl", REV1);
    let daemon = Daemon::start(&env, &[], &[]);
    wait_until("the restart to re-see the cut files", LIMIT, || {
        lines_with(&daemon, "cut file unchanged; no new revision") >= 3
    });
    assert_eq!(latest_revision(&env, "reel1"), Some(2));
    assert_eq!(latest_revision(&env, "reel2"), Some(1));
    assert_eq!(
        events(&hook, "extended").len(),
        1,
        "a restart tells nothing again"
    );
    let log = daemon.log_text();
    assert!(!log.contains("imported a cut file"), "{log}");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn an_extension_imported_by_the_cli_is_notified_by_the_daemon() {
    let env = Env::new();
    let hook = Hook::start(0);
    env.write("rules.yaml", rules(&hook, "extended"));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    env.write("rev1.edl", REV1);
    env.write("rev2.edl", REV2);
    for file in ["rev1.edl", "rev2.edl"] {
        let out = env.run(&[
            "cut",
            "import",
            file,
            "--name",
            "seq",
            "--rules",
            "rules.yaml",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    wait_until("the daemon to tell revision 2's extension", LIMIT, || {
        !events(&hook, "extended").is_empty()
    });
    let told = events(&hook, "extended");
    assert_eq!(
        (told[0]["cut"].as_str(), told[0]["revision"].as_i64()),
        (Some("seq"), Some(2))
    );
    assert_eq!(told[0]["shots"][0]["frames"], "1065-1076");
    // Both revisions may land between two polls: each is diffed against its own previous one.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(events(&hook, "extended").len(), 1);
    drop(daemon);
}

#[test]
fn frames_outside_the_cut_notify_once_per_shot_with_count_and_range() {
    let env = Env::new();
    let hook = Hook::start(0);
    env.write("rules.yaml", rules(&hook, "outside_cut"));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let daemon = Daemon::start(&env, &[], &[]);
    env.write("shots/editorial/reel1.edl", REV1);
    wait_until("the watcher to route by the dropped cut", LIMIT, || {
        daemon.log_text().contains("routing by the latest cuts")
    });
    // 40 frames of sh010 before its head_in, 3 of sh020 after its tail_out, frames in the cut.
    for frame in 950..990 {
        env.write(format!("shots/sh010/plates/p.{frame:04}.exr"), "x");
    }
    for frame in [1041, 1045, 1050] {
        env.write(format!("shots/sh020/plates/p.{frame}.exr"), "x");
    }
    for frame in [1010, 1020] {
        env.write(format!("shots/sh010/plates/p.{frame}.exr"), "x");
    }
    wait_until("one outside_cut notice per shot", LIMIT, || {
        events(&hook, "outside_cut").len() >= 2
    });
    let mut told = events(&hook, "outside_cut");
    told.sort_by_key(|b| b["shot"].as_str().unwrap_or_default().to_string());
    let summary: Vec<_> = told
        .iter()
        .map(|b| {
            (
                b["shot"].as_str().unwrap_or_default().to_string(),
                b["count"].as_u64(),
                b["first_frame"].as_i64(),
                b["last_frame"].as_i64(),
                b["revision"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("sh010".to_string(), Some(40), Some(950), Some(989), Some(1)),
            (
                "sh020".to_string(),
                Some(3),
                Some(1041),
                Some(1050),
                Some(1)
            )
        ]
    );
    assert_eq!(told[0]["rule"], "incut");
    assert_eq!(told[0]["cut"], "reel1");
    // More frames outside of the same shots and revision: no more messages.
    for frame in 900..910 {
        env.write(format!("shots/sh010/plates/p.{frame:04}.exr"), "x");
    }
    env.write("shots/sh020/plates/p.1060.exr", "x");
    wait_until("the later frames recorded skipped", LIMIT, || {
        let out = env.run(&[
            "jobs",
            "--status",
            "skipped",
            "--json",
            "--limit",
            "1000",
            "--rules",
            "rules.yaml",
        ]);
        serde_json::from_str::<Value>(&stdout(&out))
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            == Some(40 + 3 + 10 + 1)
    });
    // Past the quiet time a notice would have taken.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        events(&hook, "outside_cut").len(),
        2,
        "{:#?}",
        hook.bodies()
    );
    drop(daemon);
}

#[test]
fn frames_outside_the_cut_gathered_by_a_once_run_are_told_before_it_exits() {
    let env = Env::new();
    let hook = Hook::start(0);
    env.write("rules.yaml", rules(&hook, "outside_cut"));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    // A first run makes the store; the cut is imported into it; the frames come after.
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    env.write("reel1.edl", REV1);
    let out = env.run(&["cut", "import", "reel1.edl", "--rules", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for frame in [990, 991, 1100] {
        env.write(format!("shots/sh010/plates/p.{frame:04}.exr"), "x");
    }
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Told before the run ended (not 2 s of quiet later, by a process that is gone); the
    // listener's thread may store the body a moment after it answered.
    wait_until("the once run's notice", Duration::from_secs(5), || {
        !events(&hook, "outside_cut").is_empty()
    });
    let told = events(&hook, "outside_cut");
    assert_eq!(told.len(), 1, "{}", stderr(&out));
    assert_eq!(
        (told[0]["shot"].as_str(), told[0]["count"].as_u64()),
        (Some("sh010"), Some(3))
    );
    assert_eq!(
        (
            told[0]["first_frame"].as_i64(),
            told[0]["last_frame"].as_i64()
        ),
        (Some(990), Some(1100))
    );
}
