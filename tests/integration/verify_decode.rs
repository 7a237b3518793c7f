//! `verify: {decode: true}` (issue 19): a product whose header is right but whose frames are
//! broken passes ffprobe, so the plain verify publishes it; a full decode refuses it and names
//! ffmpeg's first error in the job's failure. Real ffmpeg, real corrupted H.264 .mov.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::env::{Env, stderr, stdout};

/// A 2 s, 48-frame H.264 .mov made by ffmpeg.
fn h264_mov(path: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=320x180:rate=24:duration=2")
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(path)
        .status()
        .expect("ffmpeg runs (install it with `bash scripts/deps`)");
    assert!(status.success(), "ffmpeg could not make the fixture");
}

/// `good` with 2,000 bytes in the middle of its `mdat` overwritten: the header is untouched.
fn corrupt_mid_mdat(good: &Path, bad: &Path) {
    let mut data = std::fs::read(good).expect("read");
    let at = data
        .windows(4)
        .position(|w| w == b"mdat")
        .expect("an mdat box");
    let size = u32::from_be_bytes(data[at - 4..at].try_into().expect("4 bytes")) as usize;
    let middle = at + size / 2;
    data[middle..middle + 2000].fill(0xff);
    std::fs::write(bad, data).expect("write");
}

/// ffprobe's frame count and codec, as the plain verify reads them.
fn probed(path: &Path) -> (bool, String) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "csv=p=0", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=codec_name,nb_frames"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    (out.status.success(), stdout(&out).trim().to_string())
}

#[test]
fn issue_19_verify_decode_refuses_a_product_with_broken_frames_that_ffprobe_accepts() {
    let env = Env::new();
    let good = env.path("good.mov");
    let bad = env.path("bad.mov");
    h264_mov(&good);
    corrupt_mid_mdat(&good, &bad);
    // The old verify would pass it: ffprobe reads the header and is happy.
    assert_eq!(probed(&bad), (true, "h264,48".to_string()));
    let decoded = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(&bad)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        !decoded.status.success(),
        "the fixture is not broken enough"
    );

    env.write(
        "rules.yaml",
        r#"version: 1
watch: [shots]
rules:
  - name: plain
    match: "plain/*.mov"
    output: "{root}/out/plain {stem}.mov"
    run: [cp, "{path}", "{out}"]
    verify: {codec: h264, frames: "48"}
  - name: decoded
    match: "decoded/*.mov"
    output: "{root}/out/decoded {stem}.mov"
    run: [cp, "{path}", "{out}"]
    verify: {codec: h264, frames: "48", decode: true}
"#,
    );
    // Hostile names: the product's path must reach ffmpeg as one argument.
    let hostile = "sh010 $(touch pwned) 'q'";
    for (dir, name, from) in [
        ("plain", hostile, &bad),
        ("decoded", hostile, &bad),
        ("decoded", "fine", &good),
    ] {
        std::fs::create_dir_all(env.path(format!("shots/{dir}"))).expect("dir");
        std::fs::copy(from, env.path(format!("shots/{dir}/{name}.mov"))).expect("copy");
    }
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one job fails: {}",
        stderr(&out)
    );
    assert!(!env.path("pwned").exists() && !env.path("shots/pwned").exists());

    // The plain verify published the broken product; the decode refused it, and only it.
    assert!(env.path(format!("shots/out/plain {hostile}.mov")).exists());
    assert!(
        !env.path(format!("shots/out/decoded {hostile}.mov"))
            .exists()
    );
    assert!(env.path("shots/out/decoded fine.mov").exists());
    let leftovers: Vec<_> = std::fs::read_dir(env.path("shots/out"))
        .expect("out")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "no temp left behind: {leftovers:?}");

    let jobs = env.run(&["jobs", "--json"]);
    let jobs: Value = serde_json::from_str(&stdout(&jobs)).expect("jobs JSON");
    let failed: Vec<&Value> = jobs
        .as_array()
        .expect("a list")
        .iter()
        .filter(|j| j["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{jobs:#}");
    let reason = failed[0].to_string();
    assert!(
        reason.contains("the product does not decode: [") && reason.contains("NAL unit"),
        "the first ffmpeg error is the reason: {reason}"
    );
    assert!(!reason.contains(" @ 0x"), "{reason}");
}

#[test]
fn issue_19_decode_must_be_true_or_false_at_load() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\nrules:\n  - name: r\n    match: \"*.mov\"\n    output: \"{dir}/o.mov\"\n    run: [cp, \"{path}\", \"{out}\"]\n    verify: {decode: yes please}\n",
    );
    let out = env.run(&["check", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: `decode`: invalid type: string \"yes please\", expected `true` or `false`
 --> rules.yaml:8:22
  |
8 |     verify: {decode: yes please}
  |                      ^
  = note: in rules[0].verify.decode (rule `r`)

1 error in rules.yaml
"
    );
}
