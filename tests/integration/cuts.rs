//! `shotrouter cut` against the real binary (issue 22): a revision series of EDLs and an .otio
//! imported into both stores (SQLite and PostgreSQL, each made by a running watcher), their
//! frames and changes, the API's answers equal to the CLI's JSON, `cut ranges --json` equal to
//! ranges computed here from OpenTimelineIO's own reading, FCP XML read through the venv's
//! `otioconvert`, and the refusals: a broken EDL by file and line, an EDL without a rate, AAF
//! without `otioconvert`. Clip names from the cut file are text: `<script>`, quotes and `$(x)`
//! are printed, never run.

use std::collections::BTreeMap;
use std::process::Output;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::edit::{Clip, otio_python, otio_reads};
use crate::env::{Env, stderr, stdout};
use crate::http_api::{get, port_in};

const RULES: &str = "version: 1\nwatch: [shots]\nrules: []\ncuts:\n  shot: \"^(?P<shot>sh[0-9]{3})_\"\n  handles: 8\n  fps: 24\n";

fn data(name: &str) -> String {
    format!("{}/tests/data/edit/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A watcher (which makes the store) with its API, on the SQLite store in the state folder or
/// on a fresh PostgreSQL database; `store` is the `--store` the CLI must give too.
fn watcher(env: &Env, store: Option<&str>) -> (Daemon, u16) {
    env.write("rules.yaml", RULES);
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let mut args = vec!["--http", "127.0.0.1:0"];
    if let Some(url) = store {
        args.extend(["--store", url]);
    }
    let daemon = Daemon::start(env, &args, &[]);
    let port = port_in(&daemon.log_text());
    (daemon, port)
}

/// `shotrouter cut ARGS --rules rules.yaml [--store URL]`.
fn cut(env: &Env, store: Option<&str>, args: &[&str]) -> Output {
    let mut all = vec!["cut"];
    all.extend_from_slice(args);
    all.extend(["--rules", "rules.yaml"]);
    if let Some(url) = store {
        all.extend(["--store", url]);
    }
    env.command(&all)
        .env("COLUMNS", "200")
        .output()
        .expect("shotrouter runs")
}

/// The JSON a successful `cut ... --json` printed.
fn cut_json(env: &Env, store: Option<&str>, args: &[&str]) -> Value {
    let out = cut(env, store, args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// (shot, change, head_in, cut_in, cut_out, tail_out) of each shot of a revision.
fn shots(revision: &Value) -> Vec<(String, String, i64, i64, i64, i64)> {
    revision["shots"]
        .as_array()
        .expect("shots")
        .iter()
        .map(|s| {
            let n = |k: &str| s[k].as_i64().expect("a frame");
            (
                s["shot"].as_str().expect("shot").to_string(),
                s["change"].as_str().expect("change").to_string(),
                n("head_in"),
                n("cut_in"),
                n("cut_out"),
                n("tail_out"),
            )
        })
        .collect()
}

fn row(
    shot: &str,
    change: &str,
    frames: (i64, i64, i64, i64),
) -> (String, String, i64, i64, i64, i64) {
    (
        shot.into(),
        change.into(),
        frames.0,
        frames.1,
        frames.2,
        frames.3,
    )
}

/// Three revisions that extend, trim, omit and reinstate shots, then the API: on `store`.
fn a_revision_series_on(store: Option<&str>) {
    let env = Env::new();
    let (daemon, port) = watcher(&env, store);
    let mut revisions = Vec::new();
    for rev in ["rev1.edl", "rev2.edl", "rev3.edl"] {
        revisions.push(cut_json(
            &env,
            store,
            &["import", &data(rev), "--name", "reel1", "--json"],
        ));
    }
    let numbers: Vec<i64> = revisions
        .iter()
        .map(|r| r["revision"].as_i64().expect("revision"))
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert!(
        shots(&revisions[0]).iter().all(|s| s.1 == "new"),
        "{:?}",
        shots(&revisions[0])
    );
    assert_eq!(
        shots(&revisions[0])[0],
        row("sh010", "new", (1001, 1009, 1056, 1064))
    );
    assert_eq!(
        shots(&revisions[1]),
        [
            // 12 frames longer: 1068 is past tail_out 1064.
            row("sh010", "extended", (1001, 1009, 1068, 1076)),
            // Six frames off each end.
            row("sh020", "cut_change", (1007, 1015, 1050, 1058)),
            // Omitted: the frames it had.
            row("sh030", "omitted", (1001, 1009, 1032, 1040)),
            row("sh040", "no_change", (1001, 1009, 1056, 1064)),
            row("sh050", "new", (1001, 1009, 1032, 1040)),
        ]
    );
    assert_eq!(
        shots(&revisions[2]),
        [
            row("sh010", "no_change", (1001, 1009, 1068, 1076)),
            row("sh020", "cut_change", (999, 1007, 1050, 1058)),
            // Reinstated where rev1 numbered it.
            row("sh030", "reinstated", (1001, 1009, 1032, 1040)),
            row("sh040", "omitted", (1001, 1009, 1056, 1064)),
            row("sh050", "no_change", (1001, 1009, 1032, 1040)),
            row("sh060", "new", (1001, 1009, 1032, 1040)),
        ]
    );
    let unmatched = &revisions[2]["unmatched"];
    assert_eq!(unmatched[0]["clip"], "temp_title", "{unmatched}");
    assert_eq!(unmatched[0]["origin"], "line 10", "{unmatched}");
    let item = &revisions[2]["shots"][1]["items"][0];
    assert_eq!(
        (&item["record_in"], &item["record_out"], &item["speed"]),
        (
            &Value::from("01:00:02:12"),
            &Value::from("01:00:04:08"),
            &Value::from(1.0)
        )
    );

    // Text: the table names every shot, its change and its items; unmatched clips are listed.
    let text = stdout(&cut(&env, store, &["show", "reel1"]));
    assert!(text.contains("cut `reel1` revision 3"), "{text}");
    for want in [
        "reinstated",
        "omitted",
        "sh060_anim",
        "01:00:07:08",
        "temp_title",
        "line 10",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }

    // show --revision, and NAME defaulting to the only cut.
    assert_eq!(
        cut_json(&env, store, &["show", "--revision", "2", "--json"]),
        revisions[1]
    );
    let ranges = cut_json(&env, store, &["ranges", "--json"]);
    let frames: Vec<(&str, &str)> = ranges["shots"]
        .as_array()
        .expect("shots")
        .iter()
        .map(|s| {
            (
                s["shot"].as_str().expect("shot"),
                s["frames"].as_str().expect("frames"),
            )
        })
        .collect();
    assert_eq!(
        frames,
        [
            ("sh010", "1001-1076"),
            ("sh020", "999-1058"),
            ("sh030", "1001-1040"),
            ("sh050", "1001-1040"),
            ("sh060", "1001-1040"),
        ]
    );
    let text = stdout(&cut(&env, store, &["ranges"]));
    assert!(text.contains("sh020  999-1058"), "{text}");

    // The API answers what the CLI prints.
    assert_eq!(get(port, "/api/v1/cuts/reel1").json(), revisions[2]);
    assert_eq!(
        get(port, "/api/v1/cuts/reel1?revision=1").json(),
        revisions[0]
    );
    assert_eq!(get(port, "/api/v1/cuts/reel1/ranges").json(), ranges);
    let list = get(port, "/api/v1/cuts").json();
    assert_eq!(list["cuts"][0]["name"], "reel1", "{list}");
    assert_eq!(list["cuts"][0]["revision"], 3, "{list}");
    let missing = get(port, "/api/v1/cuts/reel1?revision=9");
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(
        missing.body.contains("its revisions are 1 to 3"),
        "{}",
        missing.body
    );
    assert_eq!(get(port, "/api/v1/cuts/reel1?revision=x").status, 400);
    assert_eq!(get(port, "/api/v1/cuts/nope/ranges").status, 404);

    // A second cut: NAME must be given now, and an unknown one is named.
    cut_json(&env, store, &["import", &data("promo.otio"), "--json"]);
    let out = cut(&env, store, &["ranges"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the store holds 2 cuts; name one: `promo`, `reel1`"),
        "{}",
        stderr(&out)
    );
    let out = cut(&env, store, &["show", "reel2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no cut `reel2` in the store; it holds `promo`, `reel1`"),
        "{}",
        stderr(&out)
    );
    drop(daemon);
}

#[test]
fn issue_22_a_revision_series_on_the_sqlite_store() {
    a_revision_series_on(None);
}

#[test]
fn issue_22_a_revision_series_on_the_postgresql_store() {
    let url = crate::pg::fresh_store_url();
    a_revision_series_on(Some(&url));
}

/// Shot ranges computed from OpenTimelineIO's clips alone, by the rules of docs/cuts.md:
/// a shot's `cut_in` is 1009 (1001 + 8) when new, else where the last revision showing it put
/// it plus how far its first source frame moved; each clip shows its source frames from there.
fn ranges_from_otio(
    clips: &[Clip],
    history: &mut BTreeMap<String, (i64, i64)>,
) -> BTreeMap<String, String> {
    let pattern = regex::Regex::new("^(sh[0-9]{3})_").expect("regex");
    let mut by_shot: BTreeMap<String, Vec<&Clip>> = BTreeMap::new();
    for clip in clips.iter().filter(|c| c.4 > c.3) {
        if let Some(m) = pattern.captures(&clip.0) {
            by_shot.entry(m[1].to_string()).or_default().push(clip);
        }
    }
    let mut ranges = BTreeMap::new();
    for (shot, clips) in by_shot {
        let source_in = clips.iter().map(|c| c.1).min().expect("a clip");
        let cut_in = match history.get(&shot) {
            Some((cut_in, before)) => cut_in + (source_in - before),
            None => 1009,
        };
        let cut_out = clips
            .iter()
            .map(|c| cut_in + (c.1 - source_in) + (c.2 - c.1).max(1) - 1)
            .max()
            .expect("a clip");
        ranges.insert(shot.clone(), format!("{}-{}", cut_in - 8, cut_out + 8));
        history.insert(shot, (cut_in, source_in));
    }
    ranges
}

#[test]
fn issue_22_cut_ranges_equal_those_computed_from_opentimelineios_reading() {
    let Some(python) = otio_python() else { return };
    let env = Env::new();
    let (daemon, _) = watcher(&env, None);
    let ours = |name: &str| -> BTreeMap<String, String> {
        let ranges = cut_json(&env, None, &["ranges", name, "--json"]);
        ranges["shots"]
            .as_array()
            .expect("shots")
            .iter()
            .map(|s| {
                (
                    s["shot"].as_str().expect("shot").to_string(),
                    s["frames"].as_str().expect("frames").to_string(),
                )
            })
            .collect()
    };
    let mut history = BTreeMap::new();
    for rev in ["rev1.edl", "rev2.edl", "rev3.edl"] {
        cut_json(
            &env,
            None,
            &["import", &data(rev), "--name", "seq01", "--json"],
        );
        let theirs = ranges_from_otio(&otio_reads(&python, data(rev).as_ref(), "24"), &mut history);
        assert_eq!(ours("seq01"), theirs, "{rev}");
    }
    cut_json(&env, None, &["import", &data("promo.otio"), "--json"]);
    let theirs = ranges_from_otio(
        &otio_reads(&python, data("promo.otio").as_ref(), "24"),
        &mut BTreeMap::new(),
    );
    assert!(theirs.len() >= 4, "{theirs:?}");
    assert_eq!(ours("promo"), theirs, "promo.otio");
    drop(daemon);
}

#[test]
fn issue_22_a_broken_cut_is_refused_by_file_and_line_and_stores_nothing() {
    let env = Env::new();
    let (daemon, _) = watcher(&env, None);
    env.write(
        "bad.edl",
        "TITLE: bad\n\n001  SH010 V C 01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n002  SH020 V C 02:00:00:00 nonsense\n",
    );
    let out = cut(&env, None, &["import", "bad.edl"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "`bad.edl`: line 4: `002  SH020 V C 02:00:00:00 nonsense` is not a CMX 3600 event; expected `NNN REEL V|A C|D nnn|Wnnn nnn SRC-IN SRC-OUT REC-IN REC-OUT`\n"
    );
    // No rate for an EDL: neither --fps nor the rules' cuts.fps.
    env.write("norate.yaml", "version: 1\nwatch: [shots]\nrules: []\n");
    let out = env.run(&[
        "cut",
        "import",
        &data("rev1.edl"),
        "--rules",
        "norate.yaml",
        "--state",
        ".shotrouter",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is an EDL, which carries no frame rate; give `--fps`"),
        "{}",
        stderr(&out)
    );
    // AAF with no otioconvert on PATH.
    env.write("reel.aaf", "not really");
    std::fs::create_dir_all(env.path("empty-bin")).expect("dir");
    let out = env
        .command(&["cut", "import", "reel.aaf", "--rules", "rules.yaml"])
        .env("PATH", env.path("empty-bin"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`reel.aaf` is AAF, which shotrouter reads through OpenTimelineIO's `otioconvert`, and `otioconvert` is not on PATH; install it"),
        "{}",
        stderr(&out)
    );
    // An OTIO clip it cannot read is named.
    env.write(
        "odd.otio",
        r#"{"OTIO_SCHEMA": "Timeline.1", "name": "t", "tracks": {"OTIO_SCHEMA": "Stack.1", "children": [{"OTIO_SCHEMA": "Track.1", "name": "V1", "kind": "Video", "children": [{"OTIO_SCHEMA": "Generator.1", "name": "sh010_bars"}]}]}}"#,
    );
    let out = cut(&env, None, &["import", "odd.otio", "--fps", "24"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("`odd.otio`: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("`Generator.1`"), "{}", stderr(&out));
    let out = cut(&env, None, &["show"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("the store holds no cut yet; import one with `shotrouter cut import FILE`"),
        "{}",
        stderr(&out)
    );
    drop(daemon);
}

#[test]
fn issue_22_hostile_clip_names_are_text() {
    let env = Env::new();
    let (daemon, port) = watcher(&env, None);
    let name = "sh070_<script>alert('x')</script> \"q\" $(touch pwned) `id`";
    env.write(
        "hostile.edl",
        format!(
            "TITLE: x\n001  SH070 V C 07:00:00:00 07:00:01:00 01:00:00:00 01:00:01:00\n* FROM CLIP NAME: {name}\n002  AX V C 00:00:00:00 00:00:01:00 01:00:01:00 01:00:02:00\n* FROM CLIP NAME: $(touch pwned2) <b>\n"
        ),
    );
    let out = cut(&env, None, &["import", "hostile.edl", "--fps", "24"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(name), "{text}");
    assert!(text.contains("$(touch pwned2) <b>"), "{text}");
    assert!(!env.path("pwned").exists() && !env.path("pwned2").exists());
    let api = get(port, "/api/v1/cuts/hostile").json();
    assert_eq!(api["shots"][0]["items"][0]["clip"], name, "{api}");
    assert_eq!(api["unmatched"][0]["clip"], "$(touch pwned2) <b>", "{api}");
    drop(daemon);
}

#[test]
fn issue_22_fcp_xml_is_read_through_otioconvert_with_the_edls_ranges() {
    let Some(python) = otio_python() else { return };
    let bin = python.parent().expect("the venv's bin").to_path_buf();
    if !bin.join("otioconvert").is_file() {
        crate::helpers::require::cannot_run(
            &format!("`otioconvert` is missing from {}", bin.display()),
            crate::helpers::require::DEPS,
        );
        return;
    }
    let env = Env::new();
    let (daemon, _) = watcher(&env, None);
    let xml = env.path("rev3.xml");
    let made = std::process::Command::new(bin.join("otioconvert"))
        .args(["-i", &data("rev3.edl"), "-a", "rate=24", "-o"])
        .arg(&xml)
        .output()
        .expect("otioconvert runs");
    assert!(made.status.success(), "{}", stderr(&made));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env
        .command(&[
            "cut",
            "import",
            "rev3.xml",
            "--name",
            "xml",
            "--json",
            "--rules",
            "rules.yaml",
        ])
        .env("PATH", &path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    cut_json(
        &env,
        None,
        &["import", &data("rev3.edl"), "--name", "edl", "--json"],
    );
    // The same shots and frames as the EDL it was made from.
    let frames = |name: &str| cut_json(&env, None, &["ranges", name, "--json"])["shots"].clone();
    let from_xml = frames("xml");
    assert_eq!(from_xml.as_array().map(Vec::len), Some(5), "{from_xml}");
    assert_eq!(from_xml, frames("edl"));
    drop(daemon);
}
