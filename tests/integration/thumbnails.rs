//! `thumbnail: true` with a real daemon and ffmpeg: a movie's poster frame lands in the state
//! folder under its job's id, and a product ffmpeg cannot draw leaves the job done, with a line
//! in its log instead of a picture.

use serde_json::Value;

use crate::env::{Env, stderr, stdout};
use crate::helpers::require::require_program;

#[test]
fn issue_24_a_thumbnail_is_drawn_for_a_movie_and_never_fails_a_job() {
    if !require_program("ffmpeg", "ffmpeg") || !require_program("ffprobe", "ffmpeg") {
        return;
    }
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: poster\n    match: \"**/*.poster\"\n    output: \"{dir}/{stem}.mp4\"\n    thumbnail: true\n    run: [ffmpeg, -nostdin, -v, error, -f, lavfi, -i, \"testsrc=size=640x360:rate=24:duration=2\", -pix_fmt, yuv420p, -f, mp4, \"{out}\"]\n  - name: note\n    match: \"**/*.note\"\n    output: \"{dir}/{stem}.txt\"\n    thumbnail: true\n    run: [cp, \"{path}\", \"{out}\"]\n",
    );
    env.write("shots/sh010/a.poster", "go");
    env.write("shots/sh010/b.note", "not a picture");
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = env.run(&["jobs", "--json", "--rules", "rules.yaml"]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let jobs: Vec<Value> = serde_json::from_str(&stdout(&listed)).expect("JSON");
    let job = |rule: &str| {
        jobs.iter()
            .find(|j| j["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule} job in {jobs:?}"))
    };
    let state = env.path(".shotrouter");
    for rule in ["poster", "note"] {
        assert_eq!(job(rule)["status"], "done", "{rule}: {:?}", job(rule));
    }
    let poster = job("poster")["id"].as_i64().expect("id");
    let jpeg = std::fs::read(state.join(format!("thumbs/{poster}.jpg"))).expect("thumbnail");
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");
    let note = job("note")["id"].as_i64().expect("id");
    assert!(!state.join(format!("thumbs/{note}.jpg")).exists());
    let log = std::fs::read_to_string(state.join(format!("logs/note/{note}.log"))).expect("log");
    assert!(log.contains("thumbnail not made"), "{log}");
    let leftovers: Vec<_> = std::fs::read_dir(state.join("thumbs"))
        .expect("thumbs")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
