//! `shotrouter conform` against the real binary, a real store and real ffmpeg (issue 22):
//! per-shot review movies in several versions are published by a real `watch --once` (a rule
//! copying renders into `review/`), a cut with a shot used twice, a double-speed item, a freeze
//! and a gap is imported with `cut import`, and the conformed movie is decoded frame by frame
//! (`ffmpeg -f framemd5`): each frame must be the product frame the cut shows, from the version
//! picked. Its `.otio` is read back by OpenTimelineIO's own Python reader. File names hold
//! spaces, quotes, `$(x)` and `<script>`: they reach ffmpeg as argv elements, never a shell.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::edit::otio_python;
use crate::env::{Env, stderr, stdout};
use crate::helpers::require::require_program;
use crate::media::{decoded_frames, field, probe, timecode};

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
"#;

/// The hostile name of `sh020`'s highest version.
const HOSTILE: &str = "sh020_it's $(x) <script>_v003.mov";

/// A 46-frame 64x36 FFV1 "render" of frames 1001-1046 (timecode `00:00:41:17` is frame 1001 at
/// 24 fps); `seed` makes every frame of every render distinct.
fn render(env: &Env, shot: &str, name: &str, seed: u32) {
    let dir = env.path(format!("shots/{shot}/render"));
    std::fs::create_dir_all(&dir).expect("mkdir");
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
        .arg(dir.join(name))
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg cannot render {name}");
}

/// The md5 of every decoded frame of `path` (or of a lavfi graph with `lavfi`).
fn framemd5(input: &[&str]) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error"])
        .args(input)
        .args(["-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().expect("md5").trim().to_string())
        .collect()
}

fn md5s_of(path: &Path) -> Vec<String> {
    framemd5(&["-i", path.to_str().expect("utf-8")])
}

fn review(env: &Env, shot: &str, name: &str) -> PathBuf {
    env.path(format!("shots/{shot}/review/{name}"))
}

fn watch_once(env: &Env) {
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The store, the renders and the cut: `sh010` v001 and v002; `sh020` v003 (hostile name)
/// published before v002; `sh030` v001; cut `seq` from tests/data/edit/conform.edl.
fn show() -> Env {
    let env = Env::new();
    env.write("rules.yaml", RULES);
    render(&env, "sh010", "sh010_anim_v001.mov", 0);
    render(&env, "sh010", "sh010_anim_v002.mov", 50);
    render(&env, "sh020", HOSTILE, 100);
    render(&env, "sh030", "sh030_anim_v001.mov", 200);
    watch_once(&env);
    // Published later, but a lower version: `--pick latest` must not take it.
    render(&env, "sh020", "sh020_anim_v002.mov", 150);
    watch_once(&env);
    assert!(review(&env, "sh020", "sh020_anim_v002.mov").is_file());
    let edl = format!("{}/tests/data/edit/conform.edl", env!("CARGO_MANIFEST_DIR"));
    let out = env.run(&[
        "cut",
        "import",
        "--rules",
        "rules.yaml",
        &edl,
        "--name",
        "seq",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    env
}

fn conform(env: &Env, args: &[&str]) -> std::process::Output {
    let mut all = vec!["conform", "--rules", "rules.yaml", "--from", "review"];
    all.extend_from_slice(args);
    env.run(&all)
}

#[test]
fn the_conformed_movie_is_the_picked_versions_frames_in_cut_order() {
    if !require_program("ffmpeg", "ffmpeg") || !require_program("ffprobe", "ffmpeg") {
        return;
    }
    let Some(python) = otio_python() else { return };
    let env = show();
    let output = "conform out $(x) 'q'.mov";
    let out = conform(
        &env,
        &["seq", "--output", output, "--codec", "ffv1", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let picked: Vec<(String, String, u64)> = report["shots"]
        .as_array()
        .expect("shots")
        .iter()
        .map(|s| {
            (
                s["shot"].as_str().unwrap().to_string(),
                s["product"].as_str().unwrap().to_string(),
                s["version"].as_u64().unwrap(),
            )
        })
        .collect();
    let sh010 = review(&env, "sh010", "sh010_anim_v002.mov");
    let sh020 = review(&env, "sh020", HOSTILE);
    let sh030 = review(&env, "sh030", "sh030_anim_v001.mov");
    assert_eq!(
        picked,
        [
            ("sh010".into(), sh010.display().to_string(), 2),
            ("sh020".into(), sh020.display().to_string(), 3),
            ("sh030".into(), sh030.display().to_string(), 1),
        ]
    );

    // Expected: every record frame from its product, index = shot frame - 1001.
    let (a, b, c) = (md5s_of(&sh010), md5s_of(&sh020), md5s_of(&sh030));
    let movie = env.path(output);
    let probed = probe(&movie);
    let black = framemd5(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=64x36:r=24",
        "-frames:v",
        "1",
        "-pix_fmt",
        field(&probed, "pix_fmt"),
    ]);
    let mut expected = Vec::new();
    expected.extend((8..20).map(|i| a[i].clone())); // sh010 1009-1020
    expected.extend((0..6).map(|k| b[8 + 2 * k].clone())); // sh020 at 2x: 1009, 1011, ... 1019
    expected.extend((0..4).map(|_| c[8].clone())); // sh030 frozen on 1009
    expected.extend((0..2).map(|_| black[0].clone())); // the gap
    expected.extend((32..38).map(|i| a[i].clone())); // sh010 again: 1033-1038
    let got = md5s_of(&movie);
    assert_eq!(got.len(), 30);
    for (n, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "record frame {n} is not the frame the cut shows");
    }
    assert_eq!(decoded_frames(&probed), 30);
    assert_eq!(timecode(&probed), "01:00:00:00");
    assert_eq!(
        std::fs::read_dir(env.root())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with('.')
                && e.file_name().to_string_lossy().contains("conform-"))
            .count(),
        0,
        "temp files are left"
    );

    // The .otio, as OpenTimelineIO reads it.
    let otio = env.path("conform out $(x) 'q'.otio");
    let script = r#"
import json, sys, urllib.parse
import opentimelineio as otio
t = otio.adapters.read_from_file(sys.argv[1])
rows = []
for item in t.tracks[0]:
    r = item.source_range
    row = {"kind": type(item).__name__, "start": r.start_time.value, "duration": r.duration.value}
    if isinstance(item, otio.schema.Clip):
        row["url"] = urllib.parse.unquote(item.media_reference.target_url)
        row["version"] = item.metadata["shotrouter"]["version"]
        row["speed"] = [e.time_scalar for e in item.effects]
    rows.append(row)
print(json.dumps({"start": t.global_start_time.value, "duration": t.duration().value, "rows": rows}))
"#;
    let read = Command::new(&python)
        .args(["-c", script])
        .arg(&otio)
        .output()
        .expect("python runs");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let t: Value = serde_json::from_slice(&read.stdout).expect("JSON");
    assert_eq!(t["start"], 86400.0);
    assert_eq!(t["duration"], 30.0);
    let row = |kind: &str, start: f64, duration: f64, url: &Path, version: u64, speed: &[f64]| {
        serde_json::json!({"kind": kind, "start": start, "duration": duration,
            "url": format!("file://{}", url.display()), "version": version, "speed": speed})
    };
    assert_eq!(
        t["rows"],
        serde_json::json!([
            row("Clip", 1009.0, 12.0, &sh010, 2, &[]),
            row("Clip", 1009.0, 6.0, &sh020, 3, &[2.0]),
            row("Clip", 1009.0, 4.0, &sh030, 1, &[0.0]),
            {"kind": "Gap", "start": 0.0, "duration": 2.0},
            row("Clip", 1033.0, 6.0, &sh010, 2, &[]),
        ])
    );

    // The default codec: a ProRes HQ review movie, verified the same way.
    let out = conform(&env, &["--output", "review.mov"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("30 frames from 01:00:00:00"),
        "{}",
        stdout(&out)
    );
    let prores = probe(&env.path("review.mov"));
    assert_eq!(field(&prores, "codec_name"), "prores");
    assert_eq!(decoded_frames(&prores), 30);
    assert_eq!(timecode(&prores), "01:00:00:00");
}

#[test]
fn a_missing_shot_or_a_movie_failing_its_check_writes_nothing() {
    if !require_program("ffmpeg", "ffmpeg") {
        return;
    }
    let env = show();
    // rev1.edl shows sh040, which the rule never published.
    let edl = format!("{}/tests/data/edit/rev1.edl", env!("CARGO_MANIFEST_DIR"));
    let out = env.run(&[
        "cut",
        "import",
        "--rules",
        "rules.yaml",
        &edl,
        "--name",
        "rev",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = conform(&env, &["rev", "--output", "rev.mov"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("no published product of rule `review` for 1 shot `sh040`"),
        "{text}"
    );
    assert!(!env.path("rev.mov").exists() && !env.path("rev.otio").exists());

    // An ffmpeg that stops early and exits 0 (as ffmpeg does at a gap): verify refuses it.
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v ffmpeg"])
            .output()
            .expect("sh")
            .stdout,
    )
    .expect("utf-8");
    let wrapper = bin.join("ffmpeg");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/bash\nargs=(\"$@\"); last=${{args[-1]}}; unset 'args[-1]'\nexec {} \"${{args[@]}}\" -frames:v 5 \"$last\"\n",
            real.trim()
        ),
    )
    .expect("write");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env
        .command(&[
            "conform",
            "--rules",
            "rules.yaml",
            "--from",
            "review",
            "seq",
            "--output",
            "short.mov",
        ])
        .env("PATH", path)
        .output()
        .expect("shotrouter runs");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("failed verification") && text.contains("5 frames, the cut lasts 30"),
        "{text}"
    );
    assert!(!env.path("short.mov").exists() && !env.path("short.otio").exists());
    let left: Vec<_> = std::fs::read_dir(env.root())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("conform-"))
        .collect();
    assert!(left.is_empty(), "temp files are left: {left:?}");

    let out = conform(&env, &["seq", "--output", "a.mov", "--pick", "approved"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not supported yet"),
        "{}",
        stderr(&out)
    );
    assert!(!env.path("a.mov").exists());
}

#[test]
fn a_drop_frame_cut_is_stamped_with_its_drop_frame_record_timecode() {
    if !require_program("ffmpeg", "ffmpeg") || !require_program("ffprobe", "ffmpeg") {
        return;
    }
    let Some(python) = otio_python() else { return };
    let env = Env::new();
    env.write(
        "rules.yaml",
        RULES
            .replace("sh[0-9]{3})_", "sh[0-9]{3})")
            .replace("fps: 24", "fps: 29.97"),
    );
    // tests/data/edit/drop_2997.edl: four shots from 00:00:58;00, across the dropped labels.
    for shot in ["sh100", "sh110", "sh120", "sh130"] {
        let dir = env.path(format!("shots/{shot}/render"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi"])
            .args([
                "-i",
                "testsrc2=size=64x36:rate=30000/1001",
                "-frames:v",
                "80",
            ])
            .args(["-c:v", "ffv1", "-timecode", "00:00:33;11"]) // frame 1001 at 29.97 DF
            .arg(dir.join(format!("{shot}_v001.mov")))
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
    }
    watch_once(&env);
    let edl = format!(
        "{}/tests/data/edit/drop_2997.edl",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = env.run(&["cut", "import", "--rules", "rules.yaml", &edl]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = conform(&env, &["--output", "df.mov", "--codec", "ffv1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let probed = probe(&env.path("df.mov"));
    assert_eq!(timecode(&probed), "00:00:58;00");
    assert_eq!(decoded_frames(&probed), 160);
    assert_eq!(field(&probed, "r_frame_rate"), "30000/1001");
    let read = Command::new(&python)
        .args([
            "-c",
            "import sys, opentimelineio as otio\nt = otio.adapters.read_from_file(sys.argv[1])\nprint(otio.opentime.to_timecode(t.global_start_time, 30000 / 1001, drop_frame=True), t.duration().value)",
        ])
        .arg(env.path("df.otio"))
        .output()
        .expect("python runs");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert_eq!(stdout(&read).trim(), "00:00:58;00 160.0");
}
