//! `progress: ffmpeg` with a real ffmpeg encode read at its native rate (`-re`): the engine's
//! telemetry snapshot shows the frame count advancing and reaching the input's probed total.
//! The engine runs in this process (`--once`) so the test can read its snapshot directly.

use std::time::{Duration, Instant};

use shotrouter::engine::telemetry::{Progress, TelemetryHandle};

use crate::env::Env;

#[test]
fn an_ffmpeg_step_reports_frames_advancing_to_the_probed_total() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("shots")).expect("root");
    // 36 frames at 24 fps: 1.5 s under `-re`, so ffmpeg reports a few times on the way.
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=24",
        ])
        .args(["-frames:v", "36", "-c:v", "mpeg4", "-y"])
        .arg(env.path("in.mov"))
        .status()
        .expect("ffmpeg runs");
    assert!(made.success());
    // The step's argv keeps every character of the name; the progress arguments go after
    // `ffmpeg` alone. A second step holds the job open so its last progress can be read.
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: review\n    match: \"*.mov\"\n    progress: ffmpeg\n    steps:\n      - [ffmpeg, -v, error, -re, -i, \"{path}\", -f, null, \"-\"]\n      - [sleep, \"1\"]\n",
    );
    std::fs::rename(env.path("in.mov"), env.path("shots/a \"b\" $(c).mov")).expect("move");
    let telemetry = TelemetryHandle::default();
    let options = shotrouter::engine::Options {
        rules_path: env.path("rules.yaml"),
        once: true,
        grace: Duration::from_secs(5),
        location: shotrouter::store::Location::Folder(env.path("state")),
        state_dir: env.path("state"),
        store: true,
        no_run: false,
        keep_logs: None,
        progress: None,
        telemetry: telemetry.clone(),
    };
    let engine = std::thread::spawn(move || {
        shotrouter::engine::lifecycle::run(options).map_err(|e| e.to_string())
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<Progress> = Vec::new();
    while !engine.is_finished() {
        assert!(Instant::now() < deadline, "the job did not end: {seen:?}");
        let snapshot = telemetry.snapshot();
        for job in snapshot.active.values() {
            if let Some(progress) = job.progress
                && seen.last() != Some(&progress)
            {
                seen.push(progress);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let ran = engine.join().expect("engine thread");
    assert!(ran.is_ok(), "the engine ran: {ran:?}");
    let frames: Vec<u64> = seen.iter().map(|p| p.frame).collect();
    assert!(
        frames.windows(2).all(|w| w[0] <= w[1]),
        "frames only advance: {frames:?}"
    );
    assert!(
        frames.iter().any(|&f| f > 0 && f < 36),
        "seen on the way, not only at the end: {frames:?}"
    );
    let last = seen.last().expect("some progress");
    assert_eq!(last.frame, 36, "reached the end: {seen:?}");
    assert_eq!(last.total_frames, Some(36), "the total is the probed count");
    assert!(
        seen.iter().any(|p| p.fps_milli > 0),
        "speed reported: {seen:?}"
    );
    let log_dir = env.path("state/logs/review");
    let log = std::fs::read_dir(&log_dir)
        .expect("logs")
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "log"))
        .expect("a job log");
    let text = std::fs::read_to_string(log.path()).expect("log");
    assert!(
        text.contains("$ ffmpeg -progress file:") && text.contains(" -nostats -v error -re -i "),
        "{text}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&log_dir)
        .expect("logs")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".progress"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "progress files removed: {leftovers:?}"
    );
}
