//! `media::mov`, the in-process header reader conform uses instead of ffprobe, against real
//! ffprobe on real ffmpeg files: where it answers, every value conform uses must be ffprobe's;
//! where it refuses (conform then runs ffprobe), the test says so.

use std::path::Path;
use std::process::Command;

use shotrouter::media::mov;
use shotrouter::media::probe::{Probed, probe};

use crate::helpers::require::require_program;

/// Makes a 12-frame 320x180 movie at `rate` with ffmpeg; `extra` picks codec and timecode.
fn make(path: &Path, rate: &str, extra: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=320x180:rate={rate}"))
        .args(["-frames:v", "12"])
        .args(extra)
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not make {}", path.display());
}

/// The values conform takes from a probe, the rest left out.
fn used(p: &Probed) -> Probed {
    Probed {
        fps: p.fps,
        frames: p.frames,
        width: p.width,
        height: p.height,
        timecode: p.timecode.clone(),
        ..Probed::default()
    }
}

const PRORES: &[&str] = &["-c:v", "prores_ks", "-profile:v", "3"];

#[test]
fn mov_header_reader_agrees_with_ffprobe_or_refuses() {
    if !require_program("ffmpeg", "ffmpeg") || !require_program("ffprobe", "ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let h264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"];
    // (name, rate, ffmpeg args, whether the reader must answer)
    let cases: Vec<(&str, &str, Vec<&str>, bool)> = vec![
        (
            "p24.mov",
            "24",
            [PRORES, &["-timecode", "01:00:00:00"]].concat(),
            true,
        ),
        (
            "p25.mov",
            "25",
            [PRORES, &["-timecode", "01:00:00:00"]].concat(),
            true,
        ),
        (
            "p2997df.mov",
            "30000/1001",
            [PRORES, &["-timecode", "01:00:00;00"]].concat(),
            true,
        ),
        (
            "p2398.mov",
            "24000/1001",
            [PRORES, &["-timecode", "00:59:59:23"]].concat(),
            true,
        ),
        (
            "pfast.mov",
            "24",
            [
                PRORES,
                &["-timecode", "00:00:41:17", "-movflags", "+faststart"],
            ]
            .concat(),
            true,
        ),
        (
            "h264.mp4",
            "24",
            [&h264[..], &["-timecode", "01:00:00:00"]].concat(),
            false,
        ),
        (
            "h264fast.mp4",
            "24",
            [
                &h264[..],
                &["-timecode", "01:00:00:00", "-movflags", "+faststart"],
            ]
            .concat(),
            false,
        ),
        (
            "h264nob.mp4",
            "24",
            [
                &h264[..],
                &[
                    "-bf",
                    "0",
                    "-timecode",
                    "01:00:00:00",
                    "-movflags",
                    "+faststart",
                ],
            ]
            .concat(),
            true,
        ),
        ("notc.mov", "24", PRORES.to_vec(), false),
    ];
    let mut report = Vec::new();
    for (name, rate, args, answers) in &cases {
        let path = dir.path().join(name);
        make(&path, rate, args);
        let ffprobe = probe(&path, "the test movie").expect("ffprobe reads it");
        let ours = mov::read(&path);
        report.push(format!(
            "{name}: ffprobe {:?}, ours {:?}",
            used(&ffprobe),
            ours.as_ref().map(used)
        ));
        match ours {
            Some(ours) => {
                assert!(
                    answers,
                    "{name}: expected a fallback to ffprobe; {report:#?}"
                );
                assert_eq!(used(&ours), used(&ffprobe), "{name}: {report:#?}");
            }
            None => assert!(!answers, "{name}: expected an answer; {report:#?}"),
        }
    }
    eprintln!("{report:#?}");
}
