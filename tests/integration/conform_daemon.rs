//! The `conform:` block through a real `shotrouter watch` (issue 22): per-shot review movies
//! are published by a rule, a cut is imported with `cut import`, and the watcher conforms the
//! cut as a job of rule `conform` (real ffmpeg, the movie read back with ffprobe). A new version
//! of the shots (published in one burst) makes one more conform whose `.otio` names the new
//! versions; a new revision of the cut makes another, of the revision's length, also when it
//! was imported while the watcher was stopped. A revision showing a shot with no product makes
//! a failed conform that says which and is told; `retry` runs it again as the same job. On the
//! SQLite store and on PostgreSQL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::env::{Env, stderr, stdout, wait_until};
use crate::helpers::require::require_program;
use crate::media::{decoded_frames, probe};

const LIMIT: Duration = Duration::from_secs(120);

const RULES: &str = r#"version: 1
watch: [shots]
cuts:
  shot: "^(?P<shot>sh[0-9]{3})_"
  fps: 24
rules:
  - name: review
    match: "*/render/*.mov"
    output: "{dir}/../review/{name}"
    run: [cp, "{path}", "{out}"]
conform:
  from: review
  output: "edit/{cut.name}_r{cut.revision}.mov"
  codec: ffv1
  settle: 3s
notify:
  - on: [done, failed]
    command: [sh, -c, 'echo "$1 $2 $3" >> "$4"', sh, "{event}", "{rule}", "{path}", "NOTICES"]
"#;

/// Revision 1: `sh010` 12 frames then `sh020` 12 frames.
const REV1: &str = "TITLE: seq\nFCM: NON-DROP FRAME\n\n\
001  SH010    V     C        01:00:00:00 01:00:00:12 01:00:00:00 01:00:00:12\n\
* FROM CLIP NAME: sh010_anim\n\
002  SH020    V     C        02:00:00:00 02:00:00:12 01:00:00:12 01:00:01:00\n\
* FROM CLIP NAME: sh020_anim\n";

/// Revision 2: `sh010` trimmed to 8 frames.
const REV2: &str = "TITLE: seq\nFCM: NON-DROP FRAME\n\n\
001  SH010    V     C        01:00:00:00 01:00:00:08 01:00:00:00 01:00:00:08\n\
* FROM CLIP NAME: sh010_anim\n\
002  SH020    V     C        02:00:00:00 02:00:00:12 01:00:00:08 01:00:00:20\n\
* FROM CLIP NAME: sh020_anim\n";

/// Revision 3: `sh020` trimmed to 10 frames.
const REV2B: &str = "TITLE: seq\nFCM: NON-DROP FRAME\n\n\
001  SH010    V     C        01:00:00:00 01:00:00:08 01:00:00:00 01:00:00:08\n\
* FROM CLIP NAME: sh010_anim\n\
002  SH020    V     C        02:00:00:00 02:00:00:10 01:00:00:08 01:00:00:18\n\
* FROM CLIP NAME: sh020_anim\n";

/// Revision 4: a shot nothing was published for yet.
const REV3: &str = "TITLE: seq\nFCM: NON-DROP FRAME\n\n\
001  SH010    V     C        01:00:00:00 01:00:00:08 01:00:00:00 01:00:00:08\n\
* FROM CLIP NAME: sh010_anim\n\
002  SH030    V     C        03:00:00:00 03:00:00:12 01:00:00:08 01:00:00:20\n\
* FROM CLIP NAME: sh030_anim\n";

/// A 46-frame 64x36 FFV1 render of frames 1001-1046 (timecode `00:00:41:17`), made aside and
/// renamed into `shots/SHOT/render/` so the watcher sees it whole.
fn render(env: &Env, shot: &str, name: &str, seed: u32) {
    let aside = env.path(format!("aside/{name}"));
    std::fs::create_dir_all(aside.parent().expect("folder")).expect("mkdir");
    let source = format!(
        "color=c=black:s=64x36:r=24:d=2,geq=lum='mod(N*7+X*3+Y+{seed},256)':cb='mod(N*5+{seed},256)':cr=128"
    );
    let status = Command::new("ffmpeg")
        .args([
            "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", &source,
        ])
        .args([
            "-frames:v",
            "46",
            "-c:v",
            "ffv1",
            "-timecode",
            "00:00:41:17",
        ])
        .arg(&aside)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg cannot render {name}");
    let dir = env.path(format!("shots/{shot}/render"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::rename(&aside, dir.join(name)).expect("rename into the tree");
}

/// `shotrouter ARGS --rules rules.yaml`, or with `--store URL` on a PostgreSQL store (`cut`
/// takes both: the rules name the shots), which must succeed.
fn ok(env: &Env, args: &[&str]) -> String {
    let mut all = args.to_vec();
    let store = std::fs::read_to_string(env.path("store.url")).unwrap_or_default();
    if store.is_empty() || args[0] == "cut" {
        all.extend(["--rules", "rules.yaml"]);
    }
    let state = env.path(".shotrouter");
    if !store.is_empty() {
        all.extend(["--store", store.as_str()]);
        if args[0] == "job" {
            all.extend(["--state", state.to_str().expect("utf-8")]);
        }
    }
    let out = env.run(&all);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Every job of `rule` as JSON.
fn jobs_of(env: &Env, rule: &str) -> Vec<Value> {
    let text = ok(env, &["jobs", "--json", "--limit", "1000"]);
    serde_json::from_str::<Value>(&text)
        .expect("JSON")
        .as_array()
        .expect("an array")
        .iter()
        .filter(|j| j["rule"] == rule)
        .cloned()
        .collect()
}

fn done(env: &Env, rule: &str) -> usize {
    jobs_of(env, rule)
        .iter()
        .filter(|j| j["status"] == "done")
        .count()
}

fn import(env: &Env, edl: &str) {
    env.write("seq.edl", edl);
    ok(env, &["cut", "import", "seq.edl", "--name", "seq"]);
}

fn frames_of(movie: &Path) -> u64 {
    decoded_frames(&probe(movie))
}

#[test]
fn the_watcher_conforms_again_on_publishes_and_revisions() {
    conforms_again_on(None);
}

/// The same on a PostgreSQL store: the conform step is given the watcher's store URL.
#[test]
fn the_watcher_conforms_again_on_the_postgresql_store() {
    let url = crate::pg::fresh_store_url();
    conforms_again_on(Some(&url));
}

fn conforms_again_on(store: Option<&str>) {
    if !require_program("ffmpeg", "ffmpeg") || !require_program("ffprobe", "ffmpeg") {
        return;
    }
    let env = Env::new();
    if let Some(url) = store {
        env.write("store.url", url);
    }
    let notices = env.path("notices.txt");
    env.write(
        "rules.yaml",
        RULES.replace("NOTICES", notices.to_str().expect("utf-8")),
    );
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let extra: Vec<&str> = store.map_or_else(Vec::new, |url| vec!["--store", url]);
    let daemon = Daemon::start(&env, &extra, &[]);

    render(&env, "sh010", "sh010_anim_v001.mov", 0);
    render(&env, "sh020", "sh020_anim_v001.mov", 100);
    wait_until("both shots published", LIMIT, || done(&env, "review") == 2);

    // (b) a new cut: conformed from the published versions.
    import(&env, REV1);
    let r1 = env.path("edit/seq_r1.mov");
    wait_until("the cut conformed", LIMIT, || done(&env, "conform") == 1);
    assert!(r1.is_file(), "{}", daemon.log_text());
    assert_eq!(frames_of(&r1), 24, "the cut's 12 + 12 frames");
    let otio = std::fs::read_to_string(env.path("edit/seq_r1.otio")).expect("the .otio beside");
    assert!(otio.contains("sh010_anim_v001.mov"), "{otio}");
    let job = &jobs_of(&env, "conform")[0];
    assert!(
        job["path"]
            .as_str()
            .expect("path")
            .ends_with("edit/seq_r1.mov"),
        "{job}"
    );
    // No temp output or conform temp left beside the movie.
    let names: Vec<String> = std::fs::read_dir(env.path("edit"))
        .expect("edit")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["seq_r1.mov", "seq_r1.otio"], "{names:?}");

    // (a) new versions of both shots in one burst: one conform, naming them.
    render(&env, "sh010", "sh010_anim_v002.mov", 50);
    render(&env, "sh020", "sh020_anim_v002.mov", 150);
    wait_until("the new versions conformed", LIMIT, || {
        done(&env, "review") == 4 && done(&env, "conform") == 2
    });
    let otio = std::fs::read_to_string(env.path("edit/seq_r1.otio")).expect("the .otio");
    assert!(otio.contains("sh010_anim_v002.mov"), "{otio}");
    assert!(otio.contains("sh020_anim_v002.mov"), "{otio}");
    assert!(!otio.contains("_v001.mov"), "{otio}");
    assert_eq!(frames_of(&r1), 24);
    // Both conforms are jobs on the movie's one record.
    let record = ok(&env, &["files", "--json", r1.to_str().expect("utf-8")]);
    let record: Value = serde_json::from_str(&record).expect("JSON");
    let on_record: Vec<&Value> = record[0]["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["rule"] == "conform" && j["status"] == "done")
        .collect();
    assert_eq!(on_record.len(), 2, "{record:#}");
    assert_eq!(record[0]["produced_by"][0], "conform", "{record:#}");

    // (b) a new revision: its own movie, of its length.
    import(&env, REV2);
    let r2 = env.path("edit/seq_r2.mov");
    wait_until("the revision conformed", LIMIT, || {
        done(&env, "conform") == 3
    });
    assert_eq!(frames_of(&r2), 20, "the revision's 8 + 12 frames");
    let otio = std::fs::read_to_string(env.path("edit/seq_r2.otio")).expect("the .otio");
    assert!(otio.contains("sh010_anim_v002.mov"), "{otio}");
    // The burst made one conform, not one per shot: three in all, every one done.
    let conforms = jobs_of(&env, "conform");
    assert_eq!(conforms.len(), 3, "{conforms:#?}");
    let told = || std::fs::read_to_string(&notices).unwrap_or_default();
    wait_until("the conforms told", LIMIT, || {
        told().matches("done conform ").count() == 3
    });
    assert!(
        told().contains(&format!("done conform {}", r2.display())),
        "{}",
        told()
    );

    // A revision imported while the watcher is stopped: its movie is missing at the next
    // start, so the watcher conforms it then.
    assert_eq!(daemon.stop(), Some(0), "the watcher stops");
    import(&env, REV2B);
    let daemon = Daemon::start(&env, &extra, &[]);
    let r3 = env.path("edit/seq_r3.mov");
    wait_until("the revision conformed after the start", LIMIT, || {
        done(&env, "conform") == 4
    });
    assert_eq!(frames_of(&r3), 18, "the revision's 8 + 10 frames");
    assert_eq!(jobs_of(&env, "conform").len(), 4);

    // A revision showing a shot nothing was published for: the conform fails, saying which,
    // leaves no movie, and is told.
    import(&env, REV3);
    wait_until("the failed conform told", LIMIT, || {
        told().contains("failed conform ")
    });
    let failed: Vec<Value> = jobs_of(&env, "conform")
        .into_iter()
        .filter(|j| j["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let log = ok(&env, &["job", &failed[0]["id"].to_string()]);
    assert!(log.contains("`sh030`"), "{log}");
    assert!(!env.path("edit/seq_r4.mov").exists());

    // `retry` of a conform: the watcher plans it again for the cut whose movie it is and runs
    // it as the same job (it fails again for the same reason).
    let id_value = failed[0]["id"].clone();
    let id = id_value.to_string();
    ok(&env, &["retry", &id]);
    wait_until("the retried conform told", LIMIT, || {
        told().matches("failed conform ").count() == 2
    });
    let job = jobs_of(&env, "conform")
        .into_iter()
        .find(|j| j["id"] == id_value)
        .expect("the job");
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        daemon.log_text().contains("resuming queued conform"),
        "{}",
        daemon.log_text()
    );
    let log = ok(&env, &["job", &id]);
    assert!(log.contains("`sh030`"), "{log}");
    drop(daemon);
}
