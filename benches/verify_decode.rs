//! What `verify: {decode: true}` costs: the `verify` step on the example show's products
//! (rules/example-show.yaml: the ProRes 422 HQ review movie, the DNxHD 175 Avid MXF, the
//! DNxHD 36 proxy), with its plain checks and with the decode too, on the same files in the
//! same run, interleaved; medians and their ratio.
//!
//! `cargo bench --bench verify_decode` makes 1920x1080 products of 48 frames (2 s at 24 fps);
//! `VERIFY_DECODE_FRAMES` picks another length, `VERIFY_DECODE_RUNS` the runs of each (5).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use shotrouter::deliver::verify::{Expectations, Verify};
use shotrouter::deliver::{DeliveryHooks, Product, Step, StepContext};
use shotrouter::os::version::FileVersion;

struct NoHooks;

impl DeliveryHooks for NoHooks {
    fn publishing(&mut self, _: &Path, _: FileVersion) -> bool {
        true
    }
}

/// A product as the example show's rule makes it: (name, ffmpeg output options, file, the
/// rule's plain verify checks).
type Case = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static [(&'static str, &'static str)],
);

const CASES: [Case; 3] = [
    (
        "review-prores (ProRes 422 HQ .mov)",
        &[
            "-vf",
            "format=yuv422p10le",
            "-c:v",
            "prores_ks",
            "-profile:v",
            "3",
            "-vendor",
            "apl0",
            "-pix_fmt",
            "yuv422p10le",
            "-timecode",
            "01:00:00:00",
        ],
        "review.mov",
        &[
            ("codec", "prores"),
            ("profile", "HQ"),
            ("pix_fmt", "yuv422p10le"),
            ("timecode", "01:00:00:00"),
            ("fps", "24"),
        ],
    ),
    (
        "avid-dnxhd (DNxHD 175 MXF)",
        &[
            "-vf",
            "format=yuv422p",
            "-c:v",
            "dnxhd",
            "-b:v",
            "175M",
            "-timecode",
            "01:00:00:00",
            "-f",
            "mxf",
        ],
        "avid.mxf",
        &[
            ("codec", "dnxhd"),
            ("profile", "DNXHD"),
            ("width", "1920"),
            ("height", "1080"),
            ("timecode", "01:00:00:00"),
        ],
    ),
    (
        "ingest-proxy (DNxHD 36 MXF)",
        &[
            "-vf",
            "format=yuv422p",
            "-c:v",
            "dnxhd",
            "-b:v",
            "36M",
            "-timecode",
            "01:00:00:00",
            "-f",
            "mxf",
        ],
        "proxy.mxf",
        &[
            ("codec", "dnxhd"),
            ("width", "1920"),
            ("height", "1080"),
            ("timecode", "01:00:00:00"),
        ],
    ),
];

fn main() {
    let frames: usize = env_or("VERIFY_DECODE_FRAMES", 48);
    let runs: usize = env_or("VERIFY_DECODE_RUNS", 5).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    println!("verify on the example show's products, 1920x1080, {frames} frames, median of {runs}");
    println!(
        "{:<38} {:>10} {:>14} {:>7}",
        "product", "plain", "with decode", "ratio"
    );
    for (name, options, file, checks) in CASES {
        let path = dir.path().join(file);
        make(&path, frames, options);
        let mut checks: Vec<(String, String)> = checks
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        checks.push(("frames".into(), frames.to_string()));
        let plain = Expectations {
            checks,
            perfs_per_frame: None,
            stock_codes: None,
            decode: false,
        };
        let decoding = Expectations {
            decode: true,
            ..plain.clone()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            a.push(time_verify(&path, &plain));
            b.push(time_verify(&path, &decoding));
        }
        let (a, b) = (median(a), median(b));
        println!(
            "{name:<38} {:>8.0}ms {:>12.0}ms {:>6.1}x",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
}

/// One `verify` step on `path`; panics unless it passes (a bench of a failing verify would
/// time the wrong thing).
fn time_verify(path: &Path, expected: &Expectations) -> Duration {
    let mut product = Product {
        rule: "bench".into(),
        temp_path: path.to_path_buf(),
        final_path: PathBuf::from("/nonexistent/final"),
        published: None,
        extra_files: Vec::new(),
        dir: None,
    };
    let mut log = Vec::new();
    let step = Verify {
        expected: expected.clone(),
    };
    let started = Instant::now();
    let result = step.run(
        &mut product,
        &mut StepContext {
            log: &mut log,
            hooks: &mut NoHooks,
        },
    );
    let took = started.elapsed();
    assert!(
        result.is_ok(),
        "verify failed: {}",
        String::from_utf8_lossy(&log)
    );
    took
}

/// Encodes `frames` of a test pattern as the example show's rule would.
fn make(path: &Path, frames: usize, options: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1920x1080:rate=24")
        .args(["-frames:v", &frames.to_string()])
        .args(options)
        .arg(path)
        .status()
        .expect("ffmpeg runs (bash scripts/deps)");
    assert!(status.success(), "ffmpeg could not make {}", path.display());
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
