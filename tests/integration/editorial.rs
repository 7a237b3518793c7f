//! Editorial deliveries with independent tools: ALEs read back by OpenTimelineIO's ALE adapter
//! (and, beside the example show's Avid MXF, checked against what ffprobe reads from the MXF
//! and the review movie), DPX/EXR frames stamped by the example show's rule read back by
//! `oiiotool` and `exrheader` and by shotrouter's own header verify (against the shared
//! timecode and KeyKode vectors), a wrongly stamped frame refused, and Avid names turned into a
//! DNxHD ffmpeg accepts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::env::{Env, stderr, stdout};
use crate::media::{decoded_frames, deliver, frames_in, probe, render_tiffs, timecode};

const LIMIT: Duration = Duration::from_secs(120);

const TIMECODE_VECTORS: &str = include_str!("../data/timecode-vectors.csv");
const KEYKODE_VECTORS: &str = include_str!("../data/keykode-vectors.csv");

/// The timecode vector of `frame` at `fps` (`drop` for drop-frame).
fn timecode_vector(fps: &str, drop: bool, frame: i64) -> String {
    let drop = if drop { "1" } else { "0" };
    TIMECODE_VECTORS
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f[0] == fps && f[1] == drop && f[2] == frame.to_string())
        .map(|f| f[3].to_string())
        .unwrap_or_else(|| panic!("no timecode vector for frame {frame} at {fps}"))
}

/// The KeyKode vector `offset` frames from `start` in `format`: (text, perforation offset).
fn keykode_vector(format: &str, start: &str, offset: i64) -> (String, String) {
    KEYKODE_VECTORS
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| {
            f[0] == "keykode" && f[1] == format && f[2] == start && f[3] == offset.to_string()
        })
        .map(|f| (f[4].to_string(), f[5].to_string()))
        .unwrap_or_else(|| panic!("no keykode vector for {start} +{offset} ({format})"))
}

/// The python that has OpenTimelineIO: `scripts/deps test`'s venv, else the system's.
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/editorial-venv/bin/python3");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// What OpenTimelineIO's ALE adapter reads from `ale` (see tests/tools/read_ale.py).
fn read_ale(ale: &Path) -> serde_json::Value {
    let out = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/read_ale.py"))
        .arg(ale)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "OpenTimelineIO cannot read {}: {}",
        ale.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("read_ale.py JSON")
}

/// `count` small frames `name.NNNN.ext` from `first` in `dir`, written by ffmpeg (DPX, EXR) or
/// as bytes for any other extension.
pub(crate) fn frames(dir: &Path, name: &str, ext: &str, first: i64, count: i64) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    (first..first + count)
        .map(|n| {
            let path = dir.join(format!("{name}.{n:04}.{ext}"));
            match ext {
                "dpx" | "exr" => {
                    let pix_fmt = if ext == "dpx" { "rgb48le" } else { "gbrpf32le" };
                    let status = Command::new("ffmpeg")
                        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi"])
                        .args(["-i", "testsrc=size=64x36:rate=24", "-frames:v", "1"])
                        .args(["-pix_fmt", pix_fmt])
                        .arg(&path)
                        .status()
                        .expect("ffmpeg runs");
                    assert!(
                        status.success(),
                        "ffmpeg could not write {}",
                        path.display()
                    );
                }
                _ => std::fs::write(&path, format!("frame {n}")).expect("write frame"),
            }
            path
        })
        .collect()
}

/// `shotrouter jobs --status STATUS --json`.
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

/// Three sequence rules, one per rate, each publishing a product with an ALE beside it.
const ALE_RULES: &str = r#"version: 1
watch: [shots]
rules:
  - name: clip24
    match: "r24/*.dpx"
    sequence: true
    settle: 200ms
    timecode: {fps: 24, start: "00:00:00:00", at_frame: 1001}
    keykode: {start: "KL 10 0001 0100+00", format: 65mm-5perf-120, at_frame: 1001}
    output: "{root}/out/{seq.name}.mov"
    ale: "{root}/out/{seq.name}.ale"
    run: [cp, "{path}", "{out}"]
  - name: clip23976
    match: "r23976/*.dpx"
    sequence: true
    settle: 200ms
    timecode: {fps: 23.976, start: "00:00:00:01", at_frame: 1001}
    keykode: {start: "KU 22 9012 1234+00", format: 35mm-3perf, at_frame: 1001}
    output: "{root}/out/{seq.name}.mov"
    ale: "{root}/out/{seq.name}.ale"
    run: [cp, "{path}", "{out}"]
  - name: clip2997df
    match: "r2997/*.dpx"
    sequence: true
    settle: 200ms
    timecode: {fps: 29.97, start: "00:00:59;29", at_frame: 1001}
    keykode: {start: "KJ 23 1234 5678+31", format: 35mm-2perf, at_frame: 1001}
    output: "{root}/out/{seq.name}.mov"
    ale: "{root}/out/{seq.name}.ale"
    run: [cp, "{path}", "{out}"]
"#;

#[test]
fn ale_reads_back_in_opentimelineio_at_24_23976_and_2997_drop_frame() {
    let env = Env::new();
    env.write("rules.yaml", ALE_RULES);
    let shots = env.path("shots");
    // Lengths chosen so that every Start/End and KN value is a row of the shared vectors.
    frames(&shots.join("r24"), "sh010 'a'", "dpx", 1001, 24);
    frames(&shots.join("r23976"), "sh020", "dpx", 1001, 22);
    frames(&shots.join("r2997"), "sh030", "dpx", 1001, 1);
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // (clip, fps, frames, start, exclusive end, KN start, KN end, KN duration)
    let (kl, kl_24) = (
        "KL 10 0001 0100+00".to_string(),
        keykode_vector("65mm-5perf-120", "KL 10 0001 0100+00", 24).0,
    );
    let kj_1 = keykode_vector("35mm-2perf", "KJ 23 1234 5678+31", 1).0;
    let cases = [
        (
            "sh010 'a'",
            "24",
            24,
            timecode_vector("24", false, 0),
            timecode_vector("24", false, 24),
            kl,
            kl_24,
            "24",
        ),
        (
            "sh020",
            "23.976",
            22,
            timecode_vector("23.976", false, 1),
            timecode_vector("23.976", false, 23),
            "KU 22 9012 1234+00".to_string(),
            keykode_vector("35mm-3perf", "KU 22 9012 1234+00", 22).0,
            // 22 frames of 3-perf: one foot (21 frames and a perforation) and one frame.
            "1+01.1",
        ),
        (
            // One frame at the end of a minute: the next label is `;02`, `;00` and `;01` dropped.
            "sh030",
            "29.97",
            1,
            timecode_vector("29.97", true, 1799),
            timecode_vector("29.97", true, 1800),
            "KJ 23 1234 5678+31".to_string(),
            kj_1,
            "0+01",
        ),
    ];
    for (clip, fps, count, start, end, kn_start, kn_end, kn_duration) in cases {
        let ale = shots.join(format!("out/{clip}.ale"));
        let text = std::fs::read_to_string(&ale).expect("ALE published");
        assert!(text.starts_with("Heading\nFIELD_DELIM\tTABS\n"), "{text}");
        let read = read_ale(&ale);
        assert_eq!(read["header"]["FPS"], fps, "{clip}");
        let clips = read["clips"].as_array().expect("clips");
        assert_eq!(clips.len(), 1, "one row per delivered clip: {read}");
        let c = &clips[0];
        assert_eq!(c["name"], clip);
        assert_eq!(c["source_file"], format!("{clip}.mov"));
        assert_eq!(
            (c["start"].as_str(), c["end"].as_str(), c["frames"].as_i64()),
            (Some(start.as_str()), Some(end.as_str()), Some(count)),
            "{clip}: {c}"
        );
        let columns = &c["columns"];
        assert_eq!(columns["Tape"], clip);
        assert_eq!(columns["Tracks"], "V");
        assert_eq!(
            (
                columns["KN Start"].as_str(),
                columns["KN End"].as_str(),
                columns["KN Duration"].as_str()
            ),
            (
                Some(kn_start.as_str()),
                Some(kn_end.as_str()),
                Some(kn_duration)
            ),
            "{clip}"
        );
        assert!(shots.join(format!("out/{clip}.mov")).exists());
    }
    let leftovers: Vec<_> = std::fs::read_dir(shots.join("out"))
        .expect("out")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
}

/// The example show's rules pointed at `env`, with its clock moved so that frames 1439 and
/// 1440 carry rows of the shared vectors (timecode frames 1439/1440 at 24, KeyKode +0/+1).
fn example_show(env: &Env) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/example-show.yaml"),
    )
    .expect("example show rules");
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the example show has `{from}`");
        text.replace(from, to)
    };
    let text = replace(
        text,
        "/mnt/shows/bigfish/shots",
        &env.path("shots").to_string_lossy(),
    );
    let text = replace(text, "/mnt/san/bigfish", &env.path("san").to_string_lossy());
    let text = replace(text, "settle: 10s", "settle: 1s");
    let text = replace(
        text,
        r#"timecode: {fps: 24, start: "01:00:00:00", at_frame: 1001}"#,
        r#"timecode: {fps: 24, start: "00:00:59:23", at_frame: 1439}"#,
    );
    let text = replace(
        text,
        "format: 35mm-4perf, at_frame: 1001,",
        "format: 35mm-4perf, at_frame: 1439,",
    );
    env.write("rules.yaml", text);
    std::fs::create_dir_all(env.path("shots")).expect("mkdir");
    std::fs::create_dir_all(env.path("san")).expect("mkdir");
}

/// `oiiotool --info -v`'s value for `key` (`smpte:TimeCode`).
fn oiio_attribute(path: &Path, key: &str) -> String {
    let out = Command::new("oiiotool")
        .args(["--info", "-v"])
        .arg(path)
        .output()
        .expect("oiiotool runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{key}: "))
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("oiiotool shows no {key} for {}", path.display()))
}

/// `exrheader`'s `time` line of `timeCode` and the `keyCode` lines, as one text.
fn exrheader(path: &Path) -> String {
    let out = Command::new("exrheader")
        .arg(path)
        .output()
        .expect("exrheader runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn example_show_stamps_plates_and_writes_an_ale_that_agrees_with_its_products() {
    let env = Env::new();
    example_show(&env);
    let stage = env.path("stage");
    let mut made = frames(&stage, "A001 \"plate\" $(x)", "dpx", 1439, 2);
    made.extend(frames(&stage, "A001 \"plate\" $(x)", "exr", 1439, 2));
    // DNxHD is bound to HD sizes: 8 comp frames at 1920x1080 for the Avid MXF and its ALE.
    render_tiffs(
        &env.path("comp"),
        "sh0010_comp_v003",
        1001,
        8,
        "1920x1080",
        "testsrc2",
    );
    let daemon = Daemon::start(&env, &[], &[]);
    let scan = env.path("shots/sq010/sh0010/plates/scan");
    std::fs::create_dir_all(&scan).expect("mkdir");
    for frame in &made {
        std::fs::rename(frame, scan.join(frame.file_name().expect("name"))).expect("move in");
    }
    deliver(
        &frames_in(&env.path("comp")),
        &env.path("shots/sq010/sh0010/comp/v003"),
    );
    // 4 stamped plates; the review movie, the Avid MXF and their two SAN copies.
    daemon.wait_idle_with(8, LIMIT);
    daemon.stop();

    // The ALE beside the MXF, read by OpenTimelineIO, against the MXF and the review movie as
    // ffprobe reads them: the same clip, start timecode and length, and the KeyKode the movie's
    // comment carries.
    let avid = env.path("shots/sq010/sh0010/editorial/avid");
    let mxf = probe(&avid.join("sh0010_comp_v003.mxf"));
    let review = probe(&env.path("shots/sq010/sh0010/review/sh0010_comp_v003.mov"));
    let read = read_ale(&avid.join("sh0010_comp_v003.ale"));
    assert_eq!(read["header"]["FPS"], "24");
    let clip = &read["clips"][0];
    assert_eq!(clip["name"], "sh0010_comp_v003");
    assert_eq!(clip["source_file"], "sh0010_comp_v003.mxf");
    assert_eq!(clip["start"].as_str(), Some(timecode(&mxf).as_str()));
    assert_eq!(timecode(&mxf), timecode_vector("24", false, 1001));
    assert_eq!(clip["frames"].as_u64(), Some(decoded_frames(&mxf)));
    // MediaInfo, a second reader of the MXF: the material package's first timecode and the
    // frame count are the ALE's too.
    let (first, frames) = mediainfo_timecode(&avid.join("sh0010_comp_v003.mxf"));
    assert_eq!(clip["start"].as_str(), Some(first.as_str()));
    assert_eq!(clip["frames"].as_u64(), Some(frames));
    let comment = review["format"]["tags"]["comment"].as_str().unwrap_or("");
    assert_eq!(
        Some(comment),
        clip["columns"]["KN Start"]
            .as_str()
            .map(|k| format!("KeyKode {k}"))
            .as_deref()
    );
    assert_eq!(clip["columns"]["KN Duration"], "0+08");

    let stamped = env.path("shots/sq010/sh0010/plates/stamped");
    for (frame, offset) in [(1439, 0), (1440, 1)] {
        let timecode = timecode_vector("24", false, frame);
        let (keykode, perfs) = keykode_vector("35mm-4perf", "KU 22 9012 1234+05", offset);
        let count = &keykode[11..15];
        for ext in ["dpx", "exr"] {
            let path = stamped.join(format!("A001 \"plate\" $(x).{frame}.{ext}"));
            assert_eq!(
                oiio_attribute(&path, "smpte:TimeCode"),
                timecode,
                "{ext} {frame}"
            );
            assert_eq!(
                oiio_attribute(&path, "smpte:KeyCode"),
                format!("1, 22, 229012, {count}, {perfs}, 4, 64"),
                "{ext} {frame}"
            );
            if ext == "exr" {
                let header = exrheader(&path);
                assert!(header.contains(&format!("time {timecode}")), "{header}");
                assert!(
                    header.contains(&format!("perf offset {perfs}\n")),
                    "{header}"
                );
                assert!(
                    header.contains(&format!("count {}\n", count.trim_start_matches('0'))),
                    "{header}"
                );
            }
        }
        // shotrouter read the same from each header before publishing.
        let kind = ["DPX", "EXR"];
        let done = jobs(&env, "done");
        for kind in kind {
            let line = format!(
                "{kind} header timecode {timecode}, keykode {} (mfg 1, type 22)",
                &keykode[3..]
            );
            let logs = std::fs::read_dir(env.path(".shotrouter/logs/plate-stamp"))
                .expect("job logs")
                .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("log"))
                .collect::<String>();
            assert!(
                logs.contains(&format!("== verified: {line}")),
                "{line}\n{logs}\n{done}"
            );
        }
    }
}

#[test]
fn a_frame_stamped_wrong_fails_verify_and_is_not_published() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        r#"version: 1
watch: [shots]
timecode: {fps: 24, start: "00:00:59:23", at_frame: 1439}
keykode: {start: "KU 22 9012 1234+05", format: 35mm-4perf, at_frame: 1439, mfg: 1, type: 22}
rules:
  - name: stamp
    match: "scan/*.dpx"
    output: "{root}/stamped/{name}"
    # The timecode of frame 1001 on every frame, another maker, and the perforations off by 4.
    run: [oiiotool, "{path}", --attrib:type=timecode, smpte:TimeCode, "00:00:41:17",
          --attrib:type=keycode, smpte:KeyCode, "2,{keykode.type},{keykode.prefix},{keykode.count},24,4,64",
          -o, "{out}"]
    verify: {timecode: "{frame.timecode}", keykode: "{frame.keykode}"}
"#,
    );
    frames(&env.path("shots/scan"), "plate", "dpx", 1439, 1);
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed = jobs(&env, "failed");
    assert!(
        failed.contains(
            "verification failed: timecode in the header is 00:00:41:17, expected 00:00:59:23; keykode in the header is 22 9012 1234+06, expected 22 9012 1234+05; keykode in the header is of stock mfg 2, type 22; the rule's is mfg 1, type 22"
        ),
        "{failed}"
    );
    let stamped: Vec<_> = std::fs::read_dir(env.path("shots/stamped"))
        .map(|d| d.map(|e| e.expect("entry").file_name()).collect())
        .unwrap_or_default();
    assert!(
        stamped.is_empty(),
        "nothing published, no temp left: {stamped:?}"
    );
}

#[test]
fn an_avid_name_becomes_a_dnxhd_ffmpeg_accepts_and_a_wrong_one_stops_the_load() {
    let env = Env::new();
    let rules = r#"version: 1
watch: [shots]
rules:
  - name: avid
    match: "in/*.txt"
    avid: {codec: "DNxHD 220x", fps: 29.97}
    output: "{root}/avid/{stem}.mxf"
    run: [ffmpeg, -nostdin, -v, error, -y, -f, lavfi, -i, "testsrc2=size=1920x1080:rate=30000/1001",
          -frames:v, "2", -c:v, dnxhd, -profile:v, "{avid.profile}", -b:v, "{avid.bitrate}",
          -pix_fmt, "{avid.pix_fmt}", "{out}"]
    verify: {codec: dnxhd, pix_fmt: "{avid.pix_fmt}", frames: "2"}
"#;
    env.write("rules.yaml", rules);
    env.write("shots/in/sh010.txt", "go");
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The CID is the 4 bytes at 0x28 of a coded frame: 1235 is 1080p 10-bit, "220x" at 29.97.
    let frame = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(env.path("shots/avid/sh010.mxf"))
        .args(["-c", "copy", "-frames:v", "1", "-f", "rawvideo", "-"])
        .output()
        .expect("ffmpeg runs");
    let cid = u32::from_be_bytes(frame.stdout[0x28..0x2c].try_into().expect("4 bytes"));
    assert_eq!(cid, 1235);

    env.write("rules.yaml", rules.replace("fps: 29.97", "fps: 25"));
    let out = env.run(&["check", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: `DNxHD 220x` is not an Avid DNxHD name at 25 fps; at 25 fps: DNxHD 36, DNxHD 120, DNxHD 185, DNxHD 185x
 --> rules.yaml:6:19
  |
6 |     avid: {codec: \"DNxHD 220x\", fps: 25}
  |                   ^
  = note: in rules[0].avid.codec (rule `avid`)
  = help: an Avid DNxHD name is its bit rate at one frame rate: pick one listed, or change `fps`

1 error in rules.yaml
"
    );
}

#[test]
fn a_big_endian_dpx_is_verified_from_its_header_too() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        r#"version: 1
watch: [shots]
timecode: {fps: 29.97, start: "00:00:33;11", at_frame: 1001}
keykode: {start: "KU 22 9012 1234+00", format: 35mm-3perf, at_frame: 1001, mfg: 1, type: 22}
rules:
  - name: stamp
    match: "scan/*.dpx"
    output: "{root}/stamped/{name}"
    run: [oiiotool, "{path}", --attrib, oiio:Endian, big,
          --attrib:type=keycode, smpte:KeyCode, "{keykode.mfg},{keykode.type},{keykode.prefix},{keykode.count},{keykode.perf_offset},{keykode.perfs_per_frame},{keykode.perfs_per_count}",
          -o, "{out}"]
    verify: {keykode: "{frame.keykode}"}
"#,
    );
    // 3-perf, 22 frames on: the key falls between frames, so the offset keeps 2 perforations.
    frames(&env.path("shots/scan"), "plate", "dpx", 1023, 1);
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stamped = env.path("shots/stamped/plate.1023.dpx");
    let bytes = std::fs::read(&stamped).expect("published");
    assert_eq!(&bytes[..4], b"SDPX", "big-endian");
    let (keykode, perfs) = keykode_vector("35mm-3perf", "KU 22 9012 1234+00", 22);
    assert_eq!(keykode, "KU 22 9012 1235+00.2");
    // DPX stores no perforations per frame: oiiotool reports its own default after these five.
    let read = oiio_attribute(&stamped, "smpte:KeyCode");
    assert!(
        read.starts_with(&format!("1, 22, 229012, 1235, {perfs}, ")),
        "{read}"
    );
    let log = std::fs::read_dir(env.path(".shotrouter/logs/stamp"))
        .expect("job logs")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("log"))
        .collect::<String>();
    // ffmpeg's DPX writer leaves a stray value in the TV header; both readers see the same one.
    let timecode = oiio_attribute(&stamped, "smpte:TimeCode");
    assert!(
        log.contains(&format!(
            "== verified: DPX header timecode {timecode}, keykode 22 9012 1235+00.2 (mfg 1, type 22)"
        )),
        "{log}"
    );
}

/// The first timecode of an MXF's material package and its frame count, as MediaInfo reads
/// them (`mediainfo --Output=JSON`).
fn mediainfo_timecode(mxf: &std::path::Path) -> (String, u64) {
    let out = std::process::Command::new("mediainfo")
        .arg("--Output=JSON")
        .arg(mxf)
        .output()
        .expect("mediainfo runs (scripts/deps test installs it)");
    assert!(out.status.success(), "mediainfo failed");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("mediainfo JSON");
    let tracks = info["media"]["track"].as_array().expect("tracks");
    let material = tracks
        .iter()
        .find(|t| t["TimeCode_Settings"] == "Material Package")
        .unwrap_or_else(|| panic!("no material package timecode in {info}"));
    let first = material["TimeCode_FirstFrame"]
        .as_str()
        .expect("first")
        .to_string();
    let frames = material["FrameCount"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("frame count");
    (first, frames)
}
