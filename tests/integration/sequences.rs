//! Image sequences through the real daemon, real inotify, real ffmpeg and ffprobe: frames are
//! rendered as 16-bit TIFFs, delivered the way a renderer writes them, and every product is
//! read back with ffprobe (decoding it to count frames).

use std::path::Path;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::env::{Env, stdout, wait_until};
use crate::media::{
    decoded_frames, deliver, field, frames_in, number, probe, render_tiffs, renumber, timecode,
};

const LIMIT: Duration = Duration::from_secs(120);

/// A ProRes HQ rule over sequences in `*/comp/`, with `extra` rule keys.
fn prores_rules(timecode: &str, extra: &str, framerate: &str) -> String {
    format!(
        r#"version: 1
watch: [shots]
timecode: {timecode}
rules:
  - name: prores
    match: "*/comp/*.tif"
{extra}
    output: "{{dir}}/../review/{{seq.name}}.mov"
    run: [ffmpeg, -nostdin, -v, error, -y, -framerate, "{framerate}", -start_number, "{{seq.start}}",
          -i, "{{seq.pattern}}", -vf, "scale=out_color_matrix=bt709:out_range=tv,format=yuv422p10le",
          -c:v, prores_ks, -profile:v, "3", -pix_fmt, yuv422p10le, -timecode, "{{timecode}}", "{{out}}"]
    verify: {{codec: prores, profile: HQ, frames: "{{seq.count}}", timecode: "{{timecode}}"}}
"#
    )
}

/// A temp folder with `rules` and an empty watched `shots/`.
fn sequence_env(rules: String) -> Env {
    let env = Env::new();
    env.write("rules.yaml", rules);
    std::fs::create_dir_all(env.path("shots")).expect("mkdir");
    env
}

/// Renders `count` 320x180 frames `name.NNNN.tif` from `first` into `env`'s folder `stage`.
fn render_small(env: &Env, stage: &str, name: &str, first: i64, count: usize, pattern: &str) {
    render_tiffs(&env.path(stage), name, first, count, "320x180", pattern);
}

fn jobs(env: &Env, status: &str) -> String {
    stdout(&env.run(&[
        "jobs",
        "--rules",
        "rules.yaml",
        "--status",
        status,
        "--json",
    ]))
}

#[test]
fn tiff_sequence_becomes_one_verified_prores_with_timecode() {
    let env = sequence_env(prores_rules(
        r#"{fps: 24, start: "01:00:00:00", at_frame: 1001}"#,
        "    sequence: true\n    settle: 1s",
        "24",
    ));
    render_small(&env, "stage", "sh010_comp_v001", 1001, 48, "testsrc2");
    let daemon = Daemon::start(&env, &[], &[]);
    deliver(
        &frames_in(&env.path("stage")),
        &env.path("shots/sh010/comp"),
    );
    daemon.wait_idle_with(1, LIMIT);
    let movie = probe(&env.path("shots/sh010/review/sh010_comp_v001.mov"));
    assert_eq!(field(&movie, "codec_name"), "prores");
    assert_eq!(field(&movie, "profile"), "HQ");
    assert_eq!(field(&movie, "pix_fmt"), "yuv422p10le");
    assert_eq!(decoded_frames(&movie), 48);
    assert_eq!(timecode(&movie), "01:00:00:00");
    // One job for 48 frames, recorded against the sequence, not per frame.
    let done = jobs(&env, "done");
    assert_eq!(
        done.matches("sh010_comp_v001.####.tif").count(),
        1,
        "{done}"
    );
    daemon.stop();
}

#[test]
fn drop_frame_timecode_is_computed_for_the_first_frame_and_read_back() {
    // Frame 1001 is 00:59:59;28, so frame 1003 (the first rendered) is 01:00:00;00.
    let env = sequence_env(prores_rules(
        r#"{fps: 29.97, start: "00:59:59;28", at_frame: 1001}"#,
        "    sequence: true\n    settle: 1s",
        "30000/1001",
    ));
    render_small(&env, "stage", "sh020_comp_v001", 1003, 24, "testsrc2");
    let daemon = Daemon::start(&env, &[], &[]);
    deliver(
        &frames_in(&env.path("stage")),
        &env.path("shots/sh020/comp"),
    );
    daemon.wait_idle_with(1, LIMIT);
    let movie = probe(&env.path("shots/sh020/review/sh020_comp_v001.mov"));
    assert_eq!(timecode(&movie), "01:00:00;00");
    assert_eq!(field(&movie, "r_frame_rate"), "30000/1001");
    assert_eq!(decoded_frames(&movie), 24);
    daemon.stop();
}

#[test]
fn gaps_are_held_to_keep_sync_or_fail_the_job_by_rule() {
    let rules = prores_rules(
        r#"{fps: 24, start: "01:00:00:00", at_frame: 1001}"#,
        "    sequence: {on_gaps: hold}\n    settle: 1s",
        "24",
    ) + r#"  - name: strict
    match: "*/plates/*.tif"
    sequence: {on_gaps: fail}
    settle: 1s
    output: "{dir}/../review/{seq.name}_strict.mov"
    run: [ffmpeg, -nostdin, -v, error, -y, -start_number, "{seq.start}", -i, "{seq.pattern}", -c:v, prores_ks, "{out}"]
"#;
    let env = sequence_env(rules);
    render_small(&env, "stage", "sh030_comp_v001", 1001, 24, "testsrc2");
    let mut frames = frames_in(&env.path("stage"));
    frames.retain(|f| {
        !f.to_string_lossy().contains(".1010.") && !f.to_string_lossy().contains(".1011.")
    });
    assert_eq!(frames.len(), 22);
    let daemon = Daemon::start(&env, &[], &[]);
    deliver(&frames, &env.path("shots/sh030/comp"));
    deliver(&frames, &env.path("shots/sh030/plates"));
    daemon.wait_idle_with(1, LIMIT);
    wait_until("the strict rule to refuse the gap", LIMIT, || {
        daemon.log_text().contains("missing frames 1010-1011")
    });
    // hold: 24 frames, 1010 and 1011 repeat 1009, so editorial stays in sync.
    let held = probe(&env.path("shots/sh030/review/sh030_comp_v001.mov"));
    assert_eq!(decoded_frames(&held), 24);
    assert_eq!(timecode(&held), "01:00:00:00");
    // fail: a failed job naming the frames, and nothing run.
    let failed = jobs(&env, "failed");
    assert!(failed.contains("missing frames 1010-1011"), "{failed}");
    assert!(
        !env.path("shots/sh030/review/sh030_comp_v001_strict.mov")
            .exists()
    );
    daemon.stop();
}

#[test]
fn a_re_rendered_frame_fires_the_sequence_again_as_a_new_version() {
    let env = sequence_env(prores_rules(
        r#"{fps: 24, start: "01:00:00:00", at_frame: 1001}"#,
        "    sequence: true\n    settle: 1s",
        "24",
    ));
    render_small(&env, "stage", "sh040_comp_v001", 1001, 24, "testsrc2");
    let daemon = Daemon::start(&env, &[], &[]);
    deliver(
        &frames_in(&env.path("stage")),
        &env.path("shots/sh040/comp"),
    );
    daemon.wait_idle_with(1, LIMIT);
    let movie = env.path("shots/sh040/review/sh040_comp_v001.mov");
    let first = std::fs::read(&movie).expect("first movie");
    // The comp artist re-renders frames 1005-1006 with a fix.
    render_small(&env, "fix", "sh040_comp_v001", 1005, 2, "testsrc");
    deliver(&frames_in(&env.path("fix")), &env.path("shots/sh040/comp"));
    daemon.wait_idle_with(2, LIMIT);
    let second = std::fs::read(&movie).expect("second movie");
    assert_ne!(
        first, second,
        "the movie was made again from the new frames"
    );
    assert_eq!(
        decoded_frames(&probe(&movie)),
        24,
        "the whole sequence, not the 2 new frames"
    );
    let done = jobs(&env, "done");
    assert_eq!(
        done.matches("sh040_comp_v001.####.tif").count(),
        2,
        "{done}"
    );
    // A version bump is a new sequence with a movie of its own.
    render_small(&env, "v2", "sh040_comp_v002", 1001, 24, "testsrc2");
    deliver(&frames_in(&env.path("v2")), &env.path("shots/sh040/comp"));
    daemon.wait_idle_with(3, LIMIT);
    assert_eq!(
        decoded_frames(&probe(&env.path("shots/sh040/review/sh040_comp_v002.mov"))),
        24
    );
    daemon.stop();
}

#[test]
fn a_complete_expected_range_fires_at_once_and_negative_frames_keep_their_order() {
    // A settle of 10 minutes: only a complete `expect:` range can fire within the test's limit.
    let env = sequence_env(prores_rules(
        r#"{fps: 24, start: "01:00:00:00", at_frame: 0}"#,
        "    sequence: {expect: \"-3-4\"}\n    settle: 10m",
        "24",
    ));
    render_small(&env, "stage", "sh050_anim_v001", 0, 8, "testsrc2");
    let frames = renumber(&frames_in(&env.path("stage")), "sh050_anim_v001", -3);
    let mut ordered = frames.clone();
    ordered.reverse(); // delivered last frame first: arrival order must not matter
    let daemon = Daemon::start(&env, &[], &[]);
    deliver(&ordered, &env.path("shots/sh050/comp"));
    daemon.wait_idle_with(1, Duration::from_secs(60));
    let movie = probe(&env.path("shots/sh050/review/sh050_anim_v001.mov"));
    assert_eq!(decoded_frames(&movie), 8);
    // Frame -3 is three frames before 01:00:00:00.
    assert_eq!(timecode(&movie), "00:59:59:21");
    daemon.stop();
}

#[test]
fn a_product_that_fails_verification_is_not_published() {
    // ffmpeg is told to stop after 5 frames and exits 0; verify must catch it.
    let rules = prores_rules(
        r#"{fps: 24, start: "01:00:00:00", at_frame: 1001}"#,
        "    sequence: true\n    settle: 1s",
        "24",
    )
    .replace("-timecode,", "-frames:v, \"5\", -timecode,");
    let env = sequence_env(rules);
    render_small(&env, "stage", "sh060_comp_v001", 1001, 12, "testsrc2");
    let daemon = Daemon::start(&env, &[], &[]);
    deliver(
        &frames_in(&env.path("stage")),
        &env.path("shots/sh060/comp"),
    );
    // Not merely "idle:": the daemon may report idle once before the frames arrive.
    wait_until("the job to fail", LIMIT, || {
        daemon
            .log_text()
            .lines()
            .any(|l| l.contains("idle:") && l.contains("failed=1"))
    });
    let failed = jobs(&env, "failed");
    assert!(failed.contains("frames is 5, expected 12"), "{failed}");
    let review = env.path("shots/sh060/review");
    let left: Vec<_> = std::fs::read_dir(&review)
        .map(|d| d.map(|e| e.expect("entry").file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "nothing published and no temp file left: {left:?}"
    );
    daemon.stop();
}

/// The example show's rules, pointed at a temp tree, with shorter settle times.
fn example_show(env: &Env) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/example-show.yaml"),
    )
    .expect("example show rules");
    let shots = env.path("shots");
    let san = env.path("san");
    let text = text
        .replace("/mnt/shows/bigfish/shots", &shots.to_string_lossy())
        .replace("/mnt/san/bigfish", &san.to_string_lossy())
        .replace("settle: 10s", "settle: 1s")
        .replace("settle: 5s", "settle: 1s");
    env.write("rules.yaml", text);
    std::fs::create_dir_all(&shots).expect("mkdir");
    std::fs::create_dir_all(&san).expect("mkdir");
}

#[test]
fn example_show_delivers_prores_dnxhd_mxf_proxy_and_san_copies() {
    let env = Env::new();
    example_show(&env);
    // DNxHD is bound to HD sizes: 8 frames at 1920x1080.
    render_tiffs(
        &env.path("stage"),
        "sh0010_comp_v003",
        1001,
        8,
        "1920x1080",
        "testsrc2",
    );
    let daemon = Daemon::start(&env, &[], &[]);
    let shot = env.path("shots/sq010/sh0010");
    deliver(&frames_in(&env.path("stage")), &shot.join("comp/v003"));
    // Editorial drops an MXF with its own timecode into the ingest folder (written, then moved).
    let ingest = env.path("incoming.mxf");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
            "-frames:v",
            "10",
        ])
        .args([
            "-c:v",
            "dnxhd",
            "-profile:v",
            "dnxhr_sq",
            "-pix_fmt",
            "yuv422p",
            "-timecode",
            "10:00:00:00",
        ])
        .arg(&ingest)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    std::fs::create_dir_all(shot.join("editorial/ingest")).expect("mkdir");
    std::fs::rename(&ingest, shot.join("editorial/ingest/A001C003.mxf")).expect("move in");
    // review-prores, avid-dnxhd, ingest-proxy, and two SAN copies.
    daemon.wait_idle_with(5, LIMIT);

    let review = probe(&shot.join("review/sh0010_comp_v003.mov"));
    assert_eq!(
        (field(&review, "codec_name"), field(&review, "profile")),
        ("prores", "HQ")
    );
    assert_eq!(decoded_frames(&review), 8);
    assert_eq!(timecode(&review), "01:00:00:00");
    assert_eq!(
        review["format"]["tags"]["comment"],
        "KeyKode KU 22 9012 1234+05"
    );

    let avid = probe(&shot.join("editorial/avid/sh0010_comp_v003.mxf"));
    assert_eq!(
        (field(&avid, "codec_name"), field(&avid, "profile")),
        ("dnxhd", "DNXHD")
    );
    assert_eq!(
        (number(&avid, "width"), number(&avid, "height")),
        (1920, 1080)
    );
    assert_eq!(decoded_frames(&avid), 8);
    assert_eq!(timecode(&avid), "01:00:00:00");

    let proxy = probe(&shot.join("editorial/proxy/A001C003_dnxhd36.mxf"));
    assert_eq!(field(&proxy, "codec_name"), "dnxhd");
    assert_eq!(
        (number(&proxy, "width"), number(&proxy, "height")),
        (1920, 1080)
    );
    assert_eq!(decoded_frames(&proxy), 10);
    assert_eq!(timecode(&proxy), "10:00:00:00");

    for (product, copy) in [
        (
            shot.join("review/sh0010_comp_v003.mov"),
            env.path("san/review/sq010/sh0010/sh0010_comp_v003.mov"),
        ),
        (
            shot.join("editorial/avid/sh0010_comp_v003.mxf"),
            env.path("san/editorial/avid/sq010/sh0010/sh0010_comp_v003.mxf"),
        ),
    ] {
        assert_eq!(
            std::fs::read(&product).expect("product"),
            std::fs::read(&copy).expect("SAN copy")
        );
    }
    let san_names: Vec<String> = walk(&env.path("san"));
    assert!(
        san_names.iter().all(|n| !n.starts_with('.')),
        "no temp file visible on the SAN: {san_names:?}"
    );
    daemon.stop();
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn restarts_neither_rerun_a_finished_sequence_nor_miss_one_changed_while_down() {
    let env = sequence_env(prores_rules(
        r#"{fps: 24, start: "01:00:00:00", at_frame: 1001}"#,
        "    sequence: true\n    settle: 1s",
        "24",
    ));
    render_small(&env, "stage", "sh070_comp_v001", 1001, 12, "testsrc2");
    let daemon = Daemon::start(&env, &[], &[]);
    deliver(
        &frames_in(&env.path("stage")),
        &env.path("shots/sh070/comp"),
    );
    daemon.wait_idle_with(1, LIMIT);
    assert_eq!(daemon.stop(), Some(0));

    // Restart with nothing changed: the sequence is known and done.
    let daemon = Daemon::start(&env, &[], &[]);
    daemon.wait_idle_with(0, LIMIT);
    assert_eq!(daemon.stop(), Some(0));
    assert_eq!(jobs(&env, "done").matches("\"id\"").count(), 1);

    // A frame re-rendered while the daemon is down: caught up at the next start.
    render_small(&env, "fix", "sh070_comp_v001", 1004, 1, "testsrc");
    deliver(&frames_in(&env.path("fix")), &env.path("shots/sh070/comp"));
    let daemon = Daemon::start(&env, &[], &[]);
    daemon.wait_idle_with(1, LIMIT);
    assert_eq!(jobs(&env, "done").matches("\"id\"").count(), 2);
    daemon.stop();
}
